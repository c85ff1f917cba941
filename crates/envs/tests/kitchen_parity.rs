//! Parity with Gymnasium-Robotics 1.4.2's FrankaKitchen-v1 on MuJoCo 3.17.0: resets from many
//! seeds (the observation noise comes from NumPy's generator, ported in `np_random.rs`) and
//! whole episodes under several option sets, through `gym.make(...)` in the pinned Python
//! (tests/parity/kitchen_rollout.py) and through this crate; states with tasks at their goals
//! exercise the reward, the removal of completed tasks and termination. Goal: identical
//! reward/terminated/truncated/success/tasks left at every step, identical achieved goals, task
//! distances within 2 ulps (NumPy's last bit depends on the CPU's OpenBLAS kernel), max abs
//! observation difference < 1e-9 (measured: 0).

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{bools, f64_hex, f64s_from_hex, max_diff, run_parity_script};
use mujoco_rs::prelude::MjModel;
use ofql_envs::kitchen::{BONUS_THRESH, OBS_DIM};
use ofql_envs::{Env, EnvConfig, EnvId, KitchenOptions, KitchenTask};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const TOLERANCE: f64 = 1e-9;
const ACT: usize = 9;

struct Case {
    name: String,
    options: KitchenOptions,
    /// Resets whose observations are compared; `None` = `reset()` without a seed.
    reset_seeds: Vec<Option<u64>>,
    seed: u64,
    /// Tasks put at their goals (`set_state`) after the reset.
    at_goal: Vec<KitchenTask>,
    /// The state after the reset with `at_goal` applied (filled in by `prepare`).
    state: Option<(Vec<f64>, Vec<f64>)>,
    /// After the seeded reset, a new episode from this state (`reset_to_state`).
    reset_to: Option<(Vec<f64>, Vec<f64>)>,
    actions: Vec<f64>,
    float32: bool,
}

impl Case {
    fn new(name: &str, options: KitchenOptions, seed: u64, actions: Vec<f64>) -> Case {
        Case {
            name: name.into(),
            options,
            reset_seeds: vec![],
            seed,
            at_goal: vec![],
            state: None,
            reset_to: None,
            actions,
            float32: false,
        }
    }

    fn to_json(&self) -> Value {
        let o = &self.options;
        let hex_state = |state: &Option<(Vec<f64>, Vec<f64>)>| match state {
            Some((qpos, qvel)) => (f64_hex(qpos), f64_hex(qvel)),
            None => (String::new(), String::new()),
        };
        let (qpos, qvel) = hex_state(&self.state);
        let (reset_qpos, reset_qvel) = hex_state(&self.reset_to);
        let tasks: Vec<&str> = o.tasks_to_complete.iter().map(|t| t.name()).collect();
        json!({
            "name": self.name,
            "options": {
                "tasks_to_complete": tasks,
                "terminate_on_tasks_completed": o.terminate_on_tasks_completed,
                "remove_task_when_completed": o.remove_task_when_completed,
                "object_noise_ratio": o.object_noise_ratio,
                "robot_noise_ratio": o.robot_noise_ratio,
                "max_episode_steps": o.max_episode_steps,
            },
            "reset_seeds": self.reset_seeds, "seed": self.seed,
            "reset_qpos": reset_qpos, "reset_qvel": reset_qvel,
            "qpos": qpos, "qvel": qvel, "actions": f64_hex(&self.actions),
            "float32": self.float32,
        })
    }

    fn env(&self, model: &Arc<MjModel>) -> Env {
        let config =
            EnvConfig { kitchen: self.options.clone(), ..EnvConfig::from(EnvId::franka_kitchen()) };
        config.make(Arc::clone(model)).unwrap()
    }

    /// The state with `at_goal`'s joints at their goals, the rest as after `reset(seed)`.
    fn prepare(&mut self, model: &Arc<MjModel>) {
        if self.at_goal.is_empty() {
            return;
        }
        let mut env = self.env(model);
        env.reset_with_seed(Some(self.seed)).unwrap();
        let mut qpos = env.qpos().to_vec();
        for task in &self.at_goal {
            for (&i, &g) in task.qpos_indices().iter().zip(task.goal()) {
                qpos[i] = g;
            }
        }
        self.state = Some((qpos, env.qvel().to_vec()));
    }
}

#[derive(Debug, Default)]
struct Rollout {
    tasks: Vec<String>,
    starts: Vec<f64>,
    obs: Vec<f64>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    success: Vec<bool>,
    remaining: Vec<Vec<String>>,
    achieved: Vec<f64>,
    distances: Vec<f64>,
}

fn rust_rollout(case: &Case, model: &Arc<MjModel>) -> Rollout {
    let mut env = case.env(model);
    let tasks = env.kitchen().unwrap().tasks().to_vec();
    let mut out = Rollout {
        tasks: tasks.iter().map(|t| t.name().to_string()).collect(),
        ..Rollout::default()
    };
    for &seed in &case.reset_seeds {
        out.starts.extend(env.reset_with_seed(seed).unwrap());
    }
    let mut obs = env.reset_with_seed(Some(case.seed)).unwrap();
    if let Some((qpos, qvel)) = &case.reset_to {
        obs = env.reset_to_state(qpos, qvel).unwrap();
    }
    if let Some((qpos, qvel)) = &case.state {
        env.set_state(qpos, qvel).unwrap();
        assert_eq!(env.observation(), obs, "set_state draws no observation");
    }
    out.obs.extend(obs);
    for action in case.actions.chunks(ACT) {
        let step = if case.float32 {
            let action: Vec<f32> = action.iter().map(|&a| a as f32).collect();
            env.step(&action).unwrap()
        } else {
            env.step(action).unwrap()
        };
        out.obs.extend(step.obs);
        out.rewards.push(step.reward);
        out.terminated.push(step.terminated);
        out.truncated.push(step.truncated);
        out.success.push(step.success);
        assert_eq!(step.success, env.is_success());
        let mut left: Vec<String> =
            env.kitchen().unwrap().remaining_tasks().iter().map(|t| t.name().to_string()).collect();
        left.sort();
        out.remaining.push(left);
        for (task, achieved) in env.kitchen_achieved_goals().unwrap() {
            out.achieved.extend(achieved);
            out.distances.push(task.distance(env.qpos()));
        }
        if step.terminated || step.truncated {
            break;
        }
    }
    out
}

fn gym_rollouts(cases: &[Case]) -> (Value, Vec<Rollout>) {
    let all: Vec<Value> = cases.iter().map(Case::to_json).collect();
    let value = run_parity_script("kitchen_rollout.py", &json!({ "cases": all }));
    let hex = |c: &Value, key: &str| f64s_from_hex(c[key].as_str().unwrap());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    };
    let rollouts = value["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Rollout {
            tasks: strings(&c["tasks"]),
            starts: hex(c, "starts"),
            obs: hex(c, "obs"),
            rewards: hex(c, "rewards"),
            terminated: bools(&c["terminated"]),
            truncated: bools(&c["truncated"]),
            success: bools(&c["success"]),
            remaining: c["remaining"].as_array().unwrap().iter().map(strings).collect(),
            achieved: hex(c, "achieved"),
            distances: hex(c, "distances"),
        })
        .collect();
    (value["versions"].clone(), rollouts)
}

fn minari() -> KitchenOptions {
    KitchenOptions {
        tasks_to_complete: KitchenOptions::parse_tasks(&[
            "microwave",
            "kettle",
            "light switch",
            "slide cabinet",
        ])
        .unwrap(),
        remove_task_when_completed: false,
        terminate_on_tasks_completed: false,
        max_episode_steps: 450,
        ..KitchenOptions::default()
    }
}

fn cases() -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(20261201);
    let mut uniform = |steps: usize, bound: f64| -> Vec<f64> {
        (0..steps * ACT).map(|_| rng.random_range(-bound..bound)).collect()
    };
    let registered = KitchenOptions::default();
    let mut cases = vec![];

    let mut case =
        Case::new("registered, random actions", registered.clone(), 7, uniform(280, 1.0));
    case.reset_seeds = [Some(0), Some(1), Some(42), Some(1 << 40), Some(u64::MAX), None, None]
        .into_iter()
        .chain((100..120).map(Some))
        .collect();
    cases.push(case);
    cases.push(Case::new("registered, seed 2024", registered.clone(), 2024, uniform(280, 1.0)));
    let mut minari_case = Case::new("Minari's options", minari(), 11, uniform(450, 1.0));
    minari_case.reset_seeds = vec![Some(3), None];
    cases.push(minari_case);
    let mut reversed = KitchenTask::ALL.to_vec();
    reversed.reverse();
    let all_seven = KitchenOptions { tasks_to_complete: reversed, ..KitchenOptions::default() };
    cases.push(Case::new(
        "all seven listed, out-of-range actions",
        all_seven,
        12,
        uniform(280, 3.0),
    ));
    let mut f32_case = Case::new("float32 actions", registered.clone(), 13, uniform(100, 1.2));
    f32_case.float32 = true;
    cases.push(f32_case);
    let noisy = KitchenOptions {
        robot_noise_ratio: 0.1,
        object_noise_ratio: 0.01,
        ..KitchenOptions::default()
    };
    let mut noisy_case = Case::new("larger noise", noisy, 14, uniform(100, 1.0));
    noisy_case.reset_seeds = vec![Some(14), None];
    cases.push(noisy_case);

    // Tasks at their goals: zero actions keep the robot where it is.
    let at_goal = |name: &str, options: KitchenOptions, tasks: &[KitchenTask], steps: usize| {
        let mut case = Case::new(name, options, 21, vec![0.0; steps * ACT]);
        case.at_goal = tasks.to_vec();
        case
    };
    use KitchenTask::*;
    cases.push(at_goal("microwave open, registered", registered.clone(), &[Microwave], 20));
    let only_microwave =
        KitchenOptions { tasks_to_complete: vec![Microwave], ..KitchenOptions::default() };
    cases.push(at_goal("microwave open, the only task", only_microwave.clone(), &[Microwave], 20));
    cases.push(at_goal(
        "three of Minari's tasks done, kept",
        minari(),
        &[Microwave, SlideCabinet, LightSwitch],
        30,
    ));
    cases.push(at_goal("every task done", registered.clone(), &KitchenTask::ALL, 20));
    let continuing = KitchenOptions {
        terminate_on_tasks_completed: false,
        max_episode_steps: 25,
        ..only_microwave
    };
    cases.push(at_goal("microwave open, not terminating, limit 25", continuing, &[Microwave], 40));

    // A new episode from another state, moving: the microwave open, the arm and the kettle in
    // motion.
    let mut qpos = ofql_envs::kitchen::INIT_QPOS.to_vec();
    qpos[22] = Microwave.goal()[0];
    let mut qvel = vec![0.0; 29];
    (qvel[0], qvel[3], qvel[23], qvel[27]) = (0.2, -0.1, 0.05, 0.3);
    let mut from_state = Case::new("reset_to_state, microwave open", registered, 22, vec![0.0; 90]);
    from_state.reset_to = Some((qpos, qvel));
    cases.push(from_state);
    cases
}

#[test]
fn franka_kitchen_matches_gymnasium_robotics() {
    let started = Instant::now();
    let model = ofql_envs::load_env_model(EnvId::franka_kitchen()).unwrap();
    let mut cases = cases();
    for case in &mut cases {
        case.prepare(&model);
    }
    let python = Instant::now();
    let (versions, gym) = gym_rollouts(&cases);
    let python = python.elapsed();
    assert_eq!(gym.len(), cases.len());
    eprintln!("Gymnasium-Robotics side: {versions} ({python:.1?})");
    eprintln!("| case | steps | reward sum | terminated at | truncated at | max abs obs diff |");

    let rust = Instant::now();
    let mut failures = Vec::new();
    let (mut distances_compared, mut distances_in_last_bit) = (0, 0);
    for (case, gym) in cases.iter().zip(&gym) {
        let ours = rust_rollout(case, &model);
        let label = &case.name;
        let obs_diff = max_diff(&ours.obs, &gym.obs).max(max_diff(&ours.starts, &gym.starts));
        let steps = gym.rewards.len();
        let first = |flags: &[bool]| {
            flags.iter().position(|&f| f).map_or("-".to_string(), |i| (i + 1).to_string())
        };
        eprintln!(
            "| {label} | {steps} | {} | {} | {} | {obs_diff:e} |",
            gym.rewards.iter().sum::<f64>(),
            first(&gym.terminated),
            first(&gym.truncated),
        );
        assert_eq!(gym.obs.len(), (steps + 1) * OBS_DIM, "{label}");
        if ours.tasks != gym.tasks {
            failures.push(format!("{label}: tasks {:?} vs {:?}", ours.tasks, gym.tasks));
        }
        if ours.starts.len() != gym.starts.len() || ours.obs.len() != gym.obs.len() {
            failures.push(format!("{label}: episode lengths differ"));
            continue;
        }
        if obs_diff >= TOLERANCE {
            failures.push(format!("{label}: obs diff {obs_diff:e}"));
        }
        if ours.rewards != gym.rewards {
            failures.push(format!("{label}: rewards differ"));
        }
        if ours.terminated != gym.terminated || ours.truncated != gym.truncated {
            failures.push(format!("{label}: terminated/truncated flags differ"));
        }
        if ours.success != gym.success {
            failures.push(format!("{label}: success flags differ"));
        }
        if ours.remaining != gym.remaining {
            failures.push(format!("{label}: the tasks left differ"));
        }
        if ours.achieved != gym.achieved {
            failures.push(format!(
                "{label}: achieved goals differ (max {:e})",
                max_diff(&ours.achieved, &gym.achieved)
            ));
        }
        // NumPy's norm is OpenBLAS's `ddot`, whose kernel OpenBLAS picks by CPU: with fused
        // multiply-adds on AVX-512 hosts (our `mul_add`), without on AVX2-only ones, so the last
        // bit of NumPy's distance depends on the host. The rewards above must still match.
        let off_by_an_ulp = ours.distances.iter().zip(&gym.distances).filter(|(a, b)| a != b);
        let far = ours
            .distances
            .iter()
            .zip(&gym.distances)
            .filter(|&(a, b)| (a - b).abs() > 2.0 * f64::EPSILON * a.abs().max(b.abs()));
        if ours.distances.len() != gym.distances.len() || far.count() > 0 {
            failures.push(format!(
                "{label}: task distances differ by more than 2 ulps (max {:e})",
                max_diff(&ours.distances, &gym.distances)
            ));
        }
        distances_compared += ours.distances.len();
        distances_in_last_bit += off_by_an_ulp.count();

        // The cases must do what they claim.
        let max_steps = case.actions.len() / ACT;
        let n_tasks = gym.tasks.len() as f64;
        match case.name.as_str() {
            "registered, random actions"
            | "registered, seed 2024"
            | "Minari's options"
            | "all seven listed, out-of-range actions" => {
                assert_eq!(steps, max_steps, "{label}: the episode must run to its limit");
                assert!(gym.truncated[steps - 1], "{label}: no truncation at the time limit");
            }
            "microwave open, registered" | "reset_to_state, microwave open" => {
                assert_eq!(gym.rewards[0], 1.0, "{label}");
                assert!(gym.rewards[1..].iter().all(|&r| r == 0.0), "{label}: removed after");
                assert!(!gym.remaining[0].contains(&"microwave".to_string()), "{label}");
                assert!(!gym.terminated.iter().any(|&t| t), "{label}");
            }
            "microwave open, the only task" => {
                assert_eq!((steps, gym.rewards[0]), (1, 1.0), "{label}");
                assert!(gym.terminated[0] && gym.success[0], "{label}");
            }
            "three of Minari's tasks done, kept" => {
                assert_eq!(steps, max_steps, "{label}");
                assert!(gym.rewards.iter().all(|&r| r == 3.0), "{label}: 3 on every step");
                assert!(gym.remaining.iter().all(|r| r.len() == 4), "{label}: nothing removed");
                assert!(!gym.success.iter().any(|&s| s), "{label}: the kettle is not done");
            }
            "every task done" => {
                assert_eq!((steps, gym.rewards[0]), (1, n_tasks), "{label}");
                assert!(gym.terminated[0] && gym.success[0], "{label}");
            }
            "microwave open, not terminating, limit 25" => {
                assert_eq!(steps, 25, "{label}: truncated at its own limit");
                assert!(gym.truncated[24] && !gym.terminated.iter().any(|&t| t), "{label}");
                assert_eq!(gym.rewards.iter().sum::<f64>(), 1.0, "{label}");
                assert!(gym.success.iter().all(|&s| s), "{label}");
            }
            _ => {}
        }
        // The reward is the number of tasks still to do whose distance is below the
        // threshold: the distances compared above are the ones the reward used.
        let mut todo = gym.tasks.clone();
        for (k, reward) in gym.rewards.iter().enumerate() {
            let near = gym.tasks.iter().enumerate().filter(|&(j, task)| {
                todo.contains(task) && gym.distances[k * gym.tasks.len() + j] < BONUS_THRESH
            });
            assert_eq!(near.count() as f64, *reward, "{label}: step {}", k + 1);
            todo.clone_from(&gym.remaining[k]);
        }
    }
    eprintln!(
        "task distances: {distances_in_last_bit} of {distances_compared} differ from NumPy's in \
         the last bits (0 where OpenBLAS's ddot uses FMA)"
    );
    eprintln!("Rust side: {:.1?}; whole test {:.1?}", rust.elapsed(), started.elapsed());
    assert!(failures.is_empty(), "kitchen parity failures:\n{}", failures.join("\n"));
}

/// Sanity of the Rust side alone: the kitchen's API beyond what the parity test compares.
#[test]
fn kitchen_env_basics() {
    let id: EnvId = "FrankaKitchen-v1".parse().unwrap();
    let mut env = Env::new(id).unwrap();
    assert_eq!((env.obs_dim(), env.act_dim(), env.max_episode_steps()), (59, 9, 280));
    assert_eq!(env.action_bounds(), vec![(-1.0, 1.0); 9]);
    assert!((env.dt() - 0.08).abs() < 1e-15);
    let a = env.reset_with_seed(Some(5)).unwrap();
    let b = env.reset_with_seed(Some(5)).unwrap();
    assert_eq!(a, b, "the same seed gives the same noisy observation");
    let c = env.reset_with_seed(None).unwrap();
    assert_ne!(a, c, "no seed: the generator goes on");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let d = env.reset(&mut rng);
    assert_eq!(d.len(), 59);
    let err = EnvConfig {
        kitchen: KitchenOptions { max_episode_steps: 0, ..KitchenOptions::default() },
        ..EnvConfig::from(id)
    }
    .make_one()
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("max_episode_steps"), "{err}");
    let hopper = ofql_envs::load_env_model("Hopper-v4".parse().unwrap()).unwrap();
    let err = EnvConfig::from(id).make(hopper).err().unwrap().to_string();
    assert!(err.contains("not the kitchen's"), "{err}");
    let err = KitchenOptions::parse_tasks(&["oven"]).unwrap_err().to_string();
    assert!(err.contains("`oven`") && err.contains("\"hinge cabinet\""), "{err}");
}
