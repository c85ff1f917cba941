//! The evaluation runner: reproducible whatever the thread and environment counts, the
//! policy sees one batch per step, episodes match a hand-written loop, bad input is an error.

use ofql_envs::runner::episode_rng;
use ofql_envs::{
    Env, EnvId, EvalConfig, EvalError, Policy, RandomPolicy, ScoreRef, ZeroPolicy, evaluate,
};

fn id(name: &str) -> EnvId {
    name.parse().unwrap()
}

/// A deterministic policy that depends on the observation (so batching mistakes show) and
/// records the batch sizes it was given.
struct Linear {
    obs_dim: usize,
    act_dim: usize,
    batch_sizes: Vec<usize>,
}

impl Policy for Linear {
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    fn act_dim(&self) -> usize {
        self.act_dim
    }
    fn act(&mut self, obs: &[f32], n: usize, actions: &mut [f32]) -> anyhow::Result<()> {
        assert_eq!(obs.len(), n * self.obs_dim);
        assert_eq!(actions.len(), n * self.act_dim);
        self.batch_sizes.push(n);
        for (o, a) in obs.chunks_exact(self.obs_dim).zip(actions.chunks_exact_mut(self.act_dim)) {
            for (j, a) in a.iter_mut().enumerate() {
                *a = (0.3 * o[j % self.obs_dim] - 0.1 * o[(j + 3) % self.obs_dim]).tanh();
            }
        }
        Ok(())
    }
}

fn linear(env: &str) -> Linear {
    let e = Env::new(id(env)).unwrap();
    Linear { obs_dim: e.obs_dim(), act_dim: e.act_dim(), batch_sizes: Vec::new() }
}

fn config(episodes: usize, num_envs: usize, threads: usize) -> EvalConfig {
    EvalConfig { episodes, num_envs, threads, seed: 42 }
}

#[test]
fn results_do_not_depend_on_thread_or_environment_counts() {
    let reference = evaluate(id("Hopper-v4"), &mut linear("Hopper-v4"), &config(7, 1, 1), None)
        .unwrap()
        .episodes;
    assert_eq!(reference.len(), 7);
    assert!(reference.iter().any(|e| e.terminated), "the hopper should fall in some episode");
    for (num_envs, threads) in [(3, 1), (3, 2), (7, 2), (4, 3)] {
        let report = evaluate(
            id("Hopper-v4"),
            &mut linear("Hopper-v4"),
            &config(7, num_envs, threads),
            None,
        )
        .unwrap();
        assert_eq!(report.episodes, reference, "num_envs {num_envs}, threads {threads}");
    }
}

#[test]
fn an_episode_equals_a_hand_written_loop() {
    let report =
        evaluate(id("Walker2d-v5"), &mut linear("Walker2d-v5"), &config(3, 2, 2), None).unwrap();
    let mut policy = linear("Walker2d-v5");
    let mut env = Env::new(id("Walker2d-v5")).unwrap();
    for episode in &report.episodes {
        let mut obs = env.reset(&mut episode_rng(42, episode.index));
        let (mut ret, mut length) = (0.0, 0);
        loop {
            let obs32: Vec<f32> = obs.iter().map(|&x| x as f32).collect();
            let mut action = vec![0.0f32; env.act_dim()];
            policy.act(&obs32, 1, &mut action).unwrap();
            let step = env.step(&action).unwrap();
            ret += step.reward;
            length += 1;
            obs = step.obs;
            if step.terminated || step.truncated {
                assert_eq!(step.terminated, episode.terminated);
                break;
            }
        }
        assert_eq!((ret, length), (episode.ret, episode.length), "episode {}", episode.index);
    }
}

#[test]
fn the_policy_sees_one_batch_of_all_running_environments_per_step() {
    let mut policy = linear("HalfCheetah-v4");
    let report = evaluate(id("HalfCheetah-v4"), &mut policy, &config(5, 2, 2), None).unwrap();
    // HalfCheetah episodes all last 1000 steps: 2 + 2 in lockstep, then the fifth alone.
    assert!(report.episodes.iter().all(|e| e.length == 1000 && !e.terminated));
    assert_eq!(policy.batch_sizes.len(), 3000);
    assert!(policy.batch_sizes[..2000].iter().all(|&n| n == 2));
    assert!(policy.batch_sizes[2000..].iter().all(|&n| n == 1));
}

#[test]
fn summary_and_normalised_score_follow_the_episodes() {
    let env = Env::new(id("Hopper-v4")).unwrap();
    let mut random = RandomPolicy::for_env(&env, 1);
    let hopper = ScoreRef { min: -20.272305, max: 3234.3 };
    let report = evaluate(id("Hopper-v4"), &mut random, &config(6, 3, 2), Some(hopper)).unwrap();
    let returns: Vec<f64> = report.episodes.iter().map(|e| e.ret).collect();
    let mean = returns.iter().sum::<f64>() / 6.0;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
    assert!((report.returns.mean - mean).abs() < 1e-9 && (report.returns.std - std).abs() < 1e-9);
    let normalized = report.normalized.unwrap();
    assert!((normalized.mean - hopper.normalize(mean)).abs() < 1e-9);
    assert!((normalized.std - 100.0 * std / (hopper.max - hopper.min)).abs() < 1e-9);
    // Another seed gives other episodes; the same seed the same ones.
    let again =
        evaluate(id("Hopper-v4"), &mut RandomPolicy::for_env(&env, 1), &config(6, 3, 2), None)
            .unwrap();
    assert_eq!(again.episodes, report.episodes);
    let other = EvalConfig { seed: 43, ..config(6, 3, 2) };
    let other =
        evaluate(id("Hopper-v4"), &mut RandomPolicy::for_env(&env, 1), &other, None).unwrap();
    assert_ne!(other.episodes, report.episodes);
}

#[test]
fn a_policy_of_the_wrong_shape_is_refused() {
    let mut policy = ZeroPolicy { obs_dim: 11, act_dim: 3 };
    let err = evaluate(id("Walker2d-v4"), &mut policy, &config(1, 1, 1), None).unwrap_err();
    assert!(matches!(err, EvalError::PolicyShape { env_obs: 17, env_act: 6, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("Walker2d-v4") && text.contains("3-dimensional actions"), "{text}");
}

struct Failing;
impl Policy for Failing {
    fn obs_dim(&self) -> usize {
        11
    }
    fn act_dim(&self) -> usize {
        3
    }
    fn act(&mut self, _: &[f32], _: usize, actions: &mut [f32]) -> anyhow::Result<()> {
        actions.fill(f32::NAN);
        Ok(())
    }
}

#[test]
fn non_finite_actions_and_bad_settings_are_errors() {
    let err = evaluate(id("Hopper-v4"), &mut Failing, &config(2, 2, 2), None).unwrap_err();
    assert!(matches!(err, EvalError::NonFinite { step: 0, .. }), "{err}");
    let err = evaluate(id("Hopper-v4"), &mut Failing, &config(0, 2, 2), None).unwrap_err();
    assert!(err.to_string().contains("episodes (0)"), "{err}");
}

#[test]
fn a_maze_episode_reports_its_closest_approach_to_the_goal() {
    let maze = id("AntMaze_UMaze-v4");
    let mut policy = linear("AntMaze_UMaze-v4");
    let report = evaluate(maze, &mut policy, &config(2, 2, 1), None).unwrap();
    let mut env = Env::new(maze).unwrap();
    for episode in &report.episodes {
        // The flat observation starts with achieved_goal: the torso's x, y.
        let mut obs = env.reset(&mut episode_rng(42, episode.index));
        let mut closest = f64::INFINITY;
        loop {
            let obs32: Vec<f32> = obs.iter().map(|&x| x as f32).collect();
            let mut action = vec![0.0f32; env.act_dim()];
            policy.act(&obs32, 1, &mut action).unwrap();
            let step = env.step(&action).unwrap();
            let goal = env.goal().expect("a maze has a goal");
            closest = closest.min((step.obs[0] - goal[0]).hypot(step.obs[1] - goal[1]));
            obs = step.obs;
            if step.terminated || step.truncated {
                break;
            }
        }
        let reported = episode.closest_goal_distance.expect("a maze reports it");
        assert!((reported - closest).abs() < 1e-12, "{reported} vs {closest}");
    }
    // Environments without a goal report none.
    let hopper = evaluate(id("Hopper-v4"), &mut linear("Hopper-v4"), &config(1, 1, 1), None);
    assert!(hopper.unwrap().episodes.iter().all(|e| e.closest_goal_distance.is_none()));
}
