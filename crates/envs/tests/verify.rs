//! `verify`: replaying a dataset recorded in the same simulator gives zero error; corrupted
//! rows are found and named; a dataset of another environment is refused.

use ofql_envs::kitchen::state_from_observation;
use ofql_envs::verify::{Recorded, VerifyOptions, VerifyReport, verify};
use ofql_envs::{Env, EnvConfig, EnvId, KitchenOptions, KitchenTask, Step};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A D4RL-like recording: episodes of random actions, row i = state before step i.
#[derive(Clone, Default)]
struct Data {
    qpos: Vec<f64>,
    qvel: Vec<f64>,
    actions: Vec<f64>,
    observations: Vec<f64>,
    next_observations: Vec<f64>,
    /// The controls after each step (recorded for the kitchen only).
    ctrl: Vec<f64>,
    rewards: Vec<f64>,
    terminals: Vec<bool>,
    timeouts: Vec<bool>,
}

impl Data {
    fn record(id: &str, episodes: usize, max_len: usize) -> Data {
        let mut env = Env::new(id.parse().unwrap()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut d = Data::default();
        for _ in 0..episodes {
            let mut obs = env.reset(&mut rng);
            for t in 0..max_len {
                let action: Vec<f64> =
                    (0..env.act_dim()).map(|_| rng.random_range(-1.0..1.0)).collect();
                let (qpos, qvel) = (env.qpos().to_vec(), env.qvel().to_vec());
                let step = env.step(&action).unwrap();
                let timeout = t + 1 == max_len && !step.terminated;
                d.push((qpos, qvel), &obs, action, &step, timeout);
                obs = step.obs;
                if step.terminated {
                    break;
                }
            }
        }
        d
    }

    /// One row: the state before the step, its observation, the action and the step.
    fn push(
        &mut self,
        (qpos, qvel): (Vec<f64>, Vec<f64>),
        obs: &[f64],
        action: Vec<f64>,
        step: &Step,
        timeout: bool,
    ) {
        self.qpos.extend(qpos);
        self.qvel.extend(qvel);
        self.observations.extend_from_slice(obs);
        self.actions.extend(action);
        self.next_observations.extend_from_slice(&step.obs);
        self.rewards.push(step.reward);
        self.terminals.push(step.terminated);
        self.timeouts.push(timeout);
    }

    fn recorded(&self, with_next: bool) -> Recorded<'_, f64> {
        Recorded {
            qpos: &self.qpos,
            qvel: &self.qvel,
            actions: &self.actions,
            observations: &self.observations,
            next_observations: with_next.then_some(&self.next_observations[..]),
            ctrl: (!self.ctrl.is_empty()).then_some(&self.ctrl[..]),
            rewards: &self.rewards,
            terminals: &self.terminals,
            timeouts: Some(&self.timeouts),
        }
    }
}

fn options(threads: usize) -> VerifyOptions {
    VerifyOptions { max_rows: None, worst: 3, threads, stored_as_f32: false }
}

fn run(id: &str, data: &Recorded<'_, f64>, threads: usize) -> VerifyReport {
    verify(id.parse::<EnvId>().unwrap(), data, &options(threads)).unwrap()
}

#[test]
fn a_recording_of_the_same_simulator_replays_exactly() {
    let data = Data::record("Hopper-v4", 4, 200);
    assert!(data.terminals.iter().filter(|&&t| t).count() >= 2, "episodes should end by falls");
    for with_next in [true, false] {
        let report = run("Hopper-v4", &data.recorded(with_next), 2);
        assert_eq!(report.rows_checked, data.rewards.len());
        assert_eq!(report.max_abs_obs_err, 0.0);
        assert_eq!(report.max_abs_reward_err, 0.0);
        assert_eq!(report.observations.max_abs, 0.0);
        assert_eq!(report.termination_mismatches, 0);
        // Without next_observations, the last row of each episode has nothing to compare to.
        let episode_ends = data.terminals.iter().zip(&data.timeouts).filter(|(t, o)| **t || **o);
        let expected_rows =
            if with_next { data.rewards.len() } else { data.rewards.len() - episode_ends.count() };
        assert_eq!(report.next_observations.rows, expected_rows, "with_next {with_next}");
    }
}

#[test]
fn corrupted_rows_are_found_and_named() {
    let mut data = Data::record("HalfCheetah-v5", 1, 300);
    let obs_dim = 17;
    data.rewards[40] += 0.5;
    data.next_observations[120 * obs_dim + 3] -= 0.25;
    data.terminals[200] = true;
    let report = run("HalfCheetah-v5", &data.recorded(true), 3);
    assert!((report.max_abs_reward_err - 0.5).abs() < 1e-12);
    assert_eq!(report.worst_reward_rows[0].row, 40);
    assert!((report.max_abs_obs_err - 0.25).abs() < 1e-12);
    assert_eq!(report.worst_rows[0].row, 120);
    assert_eq!(report.next_observations.worst_row, Some(120));
    assert_eq!(report.termination_mismatches, 1);
    assert_eq!(report.termination_mismatch_rows, vec![200]);
    assert_eq!(report.ctrl, None, "no controls recorded");
    let mean = report.rewards.mean_abs;
    assert!((mean - 0.5 / 300.0).abs() < 1e-12, "mean reward error {mean}");
}

#[test]
fn float32_data_shows_only_rounding_error() {
    let data = Data::record("Walker2d-v4", 2, 150);
    let round = |v: &[f64]| -> Vec<f64> { v.iter().map(|&x| x as f32 as f64).collect() };
    let mut narrowed = data.clone();
    for v in [&mut narrowed.qpos, &mut narrowed.qvel, &mut narrowed.observations] {
        *v = round(v);
    }
    narrowed.next_observations = round(&data.next_observations);
    narrowed.rewards = round(&data.rewards);
    let report = run("Walker2d-v4", &narrowed.recorded(true), 2);
    assert!(report.max_abs_obs_err > 0.0 && report.max_abs_obs_err < 1e-3, "{report:?}");
    assert!(report.max_abs_reward_err < 1e-3);

    // Exact (f64) states with float32 observations and rewards, compared at float32: the
    // replay is the recording, rounded the same way, so the error is exactly 0.
    let mut f32_values = data.clone();
    f32_values.observations = round(&data.observations);
    f32_values.next_observations = round(&data.next_observations);
    f32_values.rewards = round(&data.rewards);
    let at_f32 = VerifyOptions { stored_as_f32: true, ..options(2) };
    let report =
        verify("Walker2d-v4".parse::<EnvId>().unwrap(), &f32_values.recorded(true), &at_f32)
            .unwrap();
    assert_eq!((report.max_abs_obs_err, report.max_abs_reward_err), (0.0, 0.0), "{report:?}");
    // Compared at f64 the same file shows its rounding.
    assert!(run("Walker2d-v4", &f32_values.recorded(true), 2).max_abs_obs_err > 0.0);
}

#[test]
fn the_report_does_not_depend_on_the_thread_count() {
    let mut data = Data::record("Hopper-v5", 3, 100);
    // Non-zero errors everywhere, so that the merge of the threads' parts is exercised.
    data.observations.iter_mut().for_each(|x| *x = *x as f32 as f64);
    data.rewards.iter_mut().for_each(|x| *x = *x as f32 as f64);
    let one = run("Hopper-v5", &data.recorded(false), 1);
    assert!(one.max_abs_obs_err > 0.0 && one.max_abs_reward_err > 0.0);
    for threads in [2, 4, 7] {
        let many = run("Hopper-v5", &data.recorded(false), threads);
        assert_eq!(many.worst_rows, one.worst_rows, "threads {threads}");
        assert_eq!(many.worst_reward_rows, one.worst_reward_rows);
        for (a, b) in [
            (&many.observations, &one.observations),
            (&many.next_observations, &one.next_observations),
            (&many.rewards, &one.rewards),
        ] {
            assert_eq!((a.rows, a.max_abs, a.worst_row), (b.rows, b.max_abs, b.worst_row));
            assert!((a.mean_abs - b.mean_abs).abs() <= 1e-12 * b.mean_abs);
        }
    }
}

#[test]
fn a_dataset_of_another_environment_is_refused() {
    let walker = Data::record("Walker2d-v4", 1, 20);
    let err = verify("Hopper-v4".parse::<EnvId>().unwrap(), &walker.recorded(true), &options(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Hopper-v4 has 6 qpos") && err.contains("got 9"), "{err}");
    assert!(err.contains("--env"), "{err}");
}

#[test]
fn max_rows_limits_the_check() {
    let data = Data::record("Hopper-v4", 2, 100);
    let options = VerifyOptions { max_rows: Some(10), ..options(2) };
    let report =
        verify("Hopper-v4".parse::<EnvId>().unwrap(), &data.recorded(true), &options).unwrap();
    assert_eq!(report.rows_checked, 10);
    assert_eq!(report.rewards.rows, 10);
}

/// A kitchen recording as Minari's are: rows hold only the noisy 59-number observation (the
/// state is read back from it), tasks stay rewarded while at their goal. The microwave starts
/// at its goal, so rewards of 1 are compared too.
fn kitchen_recording(steps: usize) -> (Data, EnvConfig) {
    let tasks = KitchenOptions::parse_tasks(&["microwave", "kettle"]).unwrap();
    let config = EnvConfig {
        kitchen: KitchenOptions {
            tasks_to_complete: tasks,
            remove_task_when_completed: false,
            terminate_on_tasks_completed: false,
            ..KitchenOptions::default()
        },
        ..EnvConfig::from(EnvId::franka_kitchen())
    };
    let mut env = config.make_one().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    env.reset_with_seed(Some(3)).unwrap();
    let (mut qpos, qvel) = (env.qpos().to_vec(), env.qvel().to_vec());
    let microwave = KitchenTask::Microwave;
    for (&i, &g) in microwave.qpos_indices().iter().zip(microwave.goal()) {
        qpos[i] = g;
    }
    env.set_state(&qpos, &qvel).unwrap();
    let mut obs = env.step(&[0.0; 9]).unwrap().obs;
    let mut d = Data::default();
    for t in 0..steps {
        let action: Vec<f64> = (0..9).map(|_| rng.random_range(-0.3..0.3)).collect();
        let state = state_from_observation(&obs).unwrap();
        let step = env.step(&action).unwrap();
        d.push(state, &obs, action, &step, t + 1 == steps);
        d.ctrl.extend_from_slice(env.ctrl());
        obs = step.obs;
    }
    (d, config)
}

#[test]
fn a_kitchen_recording_replays_at_its_noise_floor() {
    let (data, config) = kitchen_recording(120);
    assert!(data.rewards.contains(&1.0), "the microwave should be at its goal");
    let report = verify(config.clone(), &data.recorded(true), &options(2)).unwrap();
    assert_eq!(report.recorded_noise_bound, 0.001); // 0.01 x the robot's amplitude 0.1
    assert_eq!(report.observations.max_abs, 0.0, "the state is read from the observation");
    assert_eq!((report.max_abs_reward_err, report.termination_mismatches), (0.0, 0));
    // The position targets come from the observed robot positions and the action: exact.
    assert_eq!(report.ctrl.as_ref().map(|c| (c.rows, c.max_abs)), Some((120, 0.0)));
    let floor = report.noise_floor.clone().expect("the kitchen's noise floor");
    assert_eq!(floor.rewards.rows, data.rewards.len());
    let floor = floor.next_observations.mean_abs;
    let mean = report.next_observations.mean_abs;
    assert!(floor > 0.0 && mean < 1.5 * floor && floor < 1.5 * mean, "{report:?}");
    // The same rows replayed in one thread: the same floor, drawn from each row's seed.
    let one = verify(config.clone(), &data.recorded(true), &options(1)).unwrap();
    let (a, b) = (one.noise_floor.unwrap(), report.noise_floor.unwrap());
    for (a, b) in [(&a.next_observations, &b.next_observations), (&a.rewards, &b.rewards)] {
        assert_eq!((a.rows, a.max_abs, a.worst_row), (b.rows, b.max_abs, b.worst_row));
        assert!((a.mean_abs - b.mean_abs).abs() <= 1e-12 * b.mean_abs.max(1e-300));
    }
    // Actions 10 % weaker than recorded, or one row late: well above the floor.
    for change in [0, 1] {
        let mut other = data.clone();
        match change {
            0 => other.actions.iter_mut().for_each(|a| *a *= 0.9),
            _ => other.actions.rotate_right(9),
        }
        let report = verify(config.clone(), &other.recorded(true), &options(2)).unwrap();
        let mean = report.next_observations.mean_abs;
        assert!(mean > 2.0 * floor, "change {change}: {mean} vs floor {floor}");
        assert!(report.ctrl.unwrap().max_abs > 1e-3, "change {change}");
    }
}
