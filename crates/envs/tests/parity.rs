//! Parity with Gymnasium 1.2.2 on MuJoCo 3.17.0: the same start states and action sequences
//! through `gymnasium.make(...)` (a Python script, run in the venv `cargo xtask setup`
//! provisions) and through this crate, compared at every step of 1000-step episodes for all six
//! environments. Goal: identical terminated/truncated flags, max abs difference < 1e-9 on
//! observations and rewards.

mod common;

use common::{bools, f64_hex, f64s_from_hex, max_diff, run_parity_script, to_hex};

use ofql_envs::{Env, EnvId, MAX_EPISODE_STEPS, Task};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const TOLERANCE: f64 = 1e-9;

#[derive(Clone)]
enum Actions {
    F64(Vec<f64>),
    F32(Vec<f32>),
}

struct Case {
    env: EnvId,
    name: String,
    seed: u64,
    qpos: Vec<f64>,
    qvel: Vec<f64>,
    actions: Actions,
}

impl Case {
    fn to_json(&self) -> Value {
        let (dtype, actions) = match &self.actions {
            Actions::F64(a) => ("float64", f64_hex(a)),
            Actions::F32(a) => ("float32", to_hex(a, |v| v.to_le_bytes().to_vec())),
        };
        json!({
            "env": self.env.to_string(), "name": self.name, "seed": self.seed,
            "qpos": f64_hex(&self.qpos), "qvel": f64_hex(&self.qvel),
            "dtype": dtype, "actions": actions,
        })
    }
}

/// The start states and action sequences for one environment: in range, out of range,
/// float32, a constant push that makes Hopper and Walker2d fall, and a fast, tilted start
/// whose velocities exceed the observation clip.
fn cases_for(id: EnvId, rng: &mut ChaCha8Rng) -> Vec<Case> {
    let mut env = Env::new(id).unwrap();
    let (nu, steps) = (env.act_dim(), MAX_EPISODE_STEPS);
    let mut uniform = |n: usize, bound: f64| -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-bound..bound)).collect()
    };
    let mut cases = Vec::new();
    let mut add = |name: &str, seed: u64, qpos: Vec<f64>, qvel: Vec<f64>, actions: Actions| {
        cases.push(Case { env: id, name: name.into(), seed, qpos, qvel, actions });
    };
    let mut start = |seed: u64| {
        env.reset(&mut ChaCha8Rng::seed_from_u64(seed));
        (env.qpos().to_vec(), env.qvel().to_vec())
    };

    let (qpos, qvel) = start(1);
    add("in_range", 1, qpos, qvel, Actions::F64(uniform(nu * steps, 1.0)));
    let (qpos, qvel) = start(2);
    add("out_of_range", 2, qpos, qvel, Actions::F64(uniform(nu * steps, 3.0)));
    let (qpos, qvel) = start(3);
    let f32_actions = uniform(nu * steps, 1.0).into_iter().map(|a| a as f32).collect();
    add("float32", 3, qpos, qvel, Actions::F32(f32_actions));
    let (qpos, qvel) = start(4);
    // Full torque one way on every joint for 100 steps, then random: the body topples.
    let push: Vec<f64> = (0..nu * steps)
        .map(|i| if i < nu * 100 { 1.0 } else { ((i * 7919) % 13) as f64 / 6.0 - 1.0 })
        .collect();
    add("falling", 4, qpos, qvel, Actions::F64(push));
    let (mut qpos, _) = start(5);
    qpos[2] += 0.15; // tilted, near Hopper's angle bound
    let qvel: Vec<f64> = uniform(qpos.len(), 15.0); // beyond the +-10 observation clip
    add("fast_tilted", 5, qpos, qvel, Actions::F64(uniform(nu * steps, 1.0)));
    cases
}

struct Rollout {
    obs: Vec<f64>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
}

fn rust_rollout(case: &Case) -> Rollout {
    let mut env = Env::new(case.env).unwrap();
    let mut obs = env.reset_to_state(&case.qpos, &case.qvel).unwrap();
    let mut out =
        Rollout { obs: Vec::new(), rewards: vec![], terminated: vec![], truncated: vec![] };
    out.obs.append(&mut obs);
    let nu = env.act_dim();
    // Like the Python loop, keep stepping after termination: every step is compared.
    for t in 0..MAX_EPISODE_STEPS {
        let step = match &case.actions {
            Actions::F64(a) => env.step(&a[t * nu..(t + 1) * nu]),
            Actions::F32(a) => env.step(&a[t * nu..(t + 1) * nu]),
        }
        .unwrap();
        out.obs.extend_from_slice(&step.obs);
        out.rewards.push(step.reward);
        out.terminated.push(step.terminated);
        out.truncated.push(step.truncated);
    }
    out
}

fn gym_rollouts(cases: &[Case]) -> (Value, Vec<Rollout>) {
    let all: Vec<Value> = cases.iter().map(Case::to_json).collect();
    let value = run_parity_script("gym_rollout.py", &json!({ "cases": all }));
    let rollouts = value["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Rollout {
            obs: f64s_from_hex(c["obs"].as_str().unwrap()),
            rewards: f64s_from_hex(c["rewards"].as_str().unwrap()),
            terminated: bools(&c["terminated"]),
            truncated: bools(&c["truncated"]),
        })
        .collect();
    (value["versions"].clone(), rollouts)
}

#[test]
fn all_six_environments_match_gymnasium_step_by_step() {
    let mut rng = ChaCha8Rng::seed_from_u64(20240604);
    let cases: Vec<Case> = EnvId::ALL.iter().flat_map(|&id| cases_for(id, &mut rng)).collect();
    let (versions, gym) = gym_rollouts(&cases);
    assert_eq!(gym.len(), cases.len());
    eprintln!("Gymnasium side: {versions}");
    eprintln!(
        "| env | case | first termination (gym / ours) | max abs obs diff | max abs reward diff |"
    );

    let mut failures = Vec::new();
    let mut worst = (0.0f64, 0.0f64);
    for (case, gym) in cases.iter().zip(&gym) {
        let ours = rust_rollout(case);
        let first = |flags: &[bool]| flags.iter().position(|&t| t);
        let (obs_diff, reward_diff) =
            (max_diff(&ours.obs, &gym.obs), max_diff(&ours.rewards, &gym.rewards));
        worst = (worst.0.max(obs_diff), worst.1.max(reward_diff));
        eprintln!(
            "| {} | {} | {:?} / {:?} | {obs_diff:e} | {reward_diff:e} |",
            case.env,
            case.name,
            first(&gym.terminated),
            first(&ours.terminated)
        );
        let label = format!("{} {}", case.env, case.name);
        if ours.terminated != gym.terminated {
            failures.push(format!("{label}: terminated flags differ"));
        }
        if ours.truncated != gym.truncated {
            failures.push(format!("{label}: truncated flags differ"));
        }
        if !(obs_diff < TOLERANCE && reward_diff < TOLERANCE) {
            failures.push(format!("{label}: obs diff {obs_diff:e}, reward diff {reward_diff:e}"));
        }
        // The scenarios must exercise what they claim to.
        assert!(gym.truncated[MAX_EPISODE_STEPS - 1], "{label}: no truncation at step 1000");
        if case.env.task != Task::HalfCheetah && case.name == "falling" {
            assert!(gym.terminated.contains(&true), "{label}: the body did not fall");
        }
    }
    eprintln!("worst over all cases: obs {:e}, reward {:e}", worst.0, worst.1);
    assert!(failures.is_empty(), "parity failures:\n{}", failures.join("\n"));
}
