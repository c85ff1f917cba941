//! Parity with Gymnasium-Robotics 1.4.2's AntMaze (v4) on MuJoCo 3.17.0: for every registered
//! map, resets from many seeds (goal and start cells and their noise come from NumPy's
//! generator, ported in `np_random.rs`) and whole episodes under several options, through
//! `gym.make(...)` in the pinned Python (tests/parity/maze_rollout.py) and through this crate.
//! Goal: identical starts and goals bit for bit, identical reward/terminated/truncated/success
//! at every step, max abs observation difference < 1e-9.

mod common;

use common::{bools, f64_hex, f64s_from_hex, max_diff, run_parity_script};
use ofql_envs::maze::GOAL_RADIUS;
use ofql_envs::{Env, EnvConfig, EnvId, MazeMap, MazeOptions, MazeReward};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const TOLERANCE: f64 = 1e-9;

struct Case {
    env: EnvId,
    name: String,
    options: MazeOptions,
    reset_seeds: Vec<u64>,
    seed: u64,
    /// Put the ant here after the reset (on the goal), or leave it at the start.
    state: Option<(Vec<f64>, Vec<f64>)>,
    actions: Vec<f64>,
}

impl Case {
    fn to_json(&self) -> Value {
        let o = &self.options;
        let (qpos, qvel) = match &self.state {
            Some((qpos, qvel)) => (f64_hex(qpos), f64_hex(qvel)),
            None => (String::new(), String::new()),
        };
        json!({
            "env": self.env.to_string(), "name": self.name,
            "options": {
                "continuing_task": o.continuing_task, "reset_target": o.reset_target,
                "reward_type": match o.reward { MazeReward::Sparse => "sparse", MazeReward::Dense => "dense" },
                "maze_map": o.cells_map,
            },
            "reset_seeds": self.reset_seeds, "seed": self.seed,
            "qpos": qpos, "qvel": qvel, "actions": f64_hex(&self.actions),
        })
    }

    fn env(&self) -> Env {
        let options = MazeOptions { goal_in_observation: true, ..self.options.clone() };
        EnvConfig { maze: options, ..EnvConfig::from(self.env) }.make_one().unwrap()
    }
}

struct Rollout {
    starts: Vec<f64>,
    obs: Vec<f64>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    success: Vec<bool>,
}

fn options(continuing_task: bool, reset_target: bool, reward: MazeReward) -> MazeOptions {
    MazeOptions { reward, continuing_task, reset_target, ..MazeOptions::default() }
}

fn cases_for(map: MazeMap, rng: &mut ChaCha8Rng) -> Vec<Case> {
    let id = EnvId::ant_maze(map);
    let steps = map.max_episode_steps();
    let mut uniform = |n: usize, bound: f64| -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-bound..bound)).collect()
    };
    let seeds: Vec<u64> =
        (0..25).map(|i| i * 7919 + map as u64).chain([1 << 40, u64::MAX]).collect();
    let mut cases = vec![
        Case {
            env: id,
            name: "registered, random actions, whole episode".into(),
            options: MazeOptions::default(),
            reset_seeds: seeds,
            seed: 11,
            state: None,
            actions: uniform(8 * steps, 1.0),
        },
        Case {
            env: id,
            name: "out-of-range actions".into(),
            options: options(true, false, MazeReward::Dense),
            reset_seeds: vec![],
            seed: 12,
            state: None,
            actions: uniform(8 * 200, 3.0),
        },
    ];
    // On the goal: success at once; a continuing task with reset_target draws new goals, an
    // episodic one ends.
    for (name, options) in [
        ("on the goal, reset_target", options(true, true, MazeReward::Sparse)),
        ("on the goal, episodic", options(false, false, MazeReward::Sparse)),
    ] {
        let mut case = Case {
            env: id,
            name: name.into(),
            options,
            reset_seeds: vec![],
            seed: 13,
            state: None,
            actions: vec![0.0; 8 * 30],
        };
        let mut env = case.env();
        env.reset_with_seed(Some(case.seed)).unwrap();
        let goal = env.goal().unwrap();
        let mut qpos = env.qpos().to_vec();
        qpos[..2].copy_from_slice(&goal);
        case.state = Some((qpos, env.qvel().to_vec()));
        cases.push(case);
    }
    cases
}

fn rust_rollout(case: &Case) -> Rollout {
    let mut env = case.env();
    let mut out = Rollout {
        starts: vec![],
        obs: vec![],
        rewards: vec![],
        terminated: vec![],
        truncated: vec![],
        success: vec![],
    };
    for &seed in &case.reset_seeds {
        out.starts.extend(env.reset_with_seed(Some(seed)).unwrap());
    }
    let mut obs = env.reset_with_seed(Some(case.seed)).unwrap();
    if let Some((qpos, qvel)) = &case.state {
        env.set_state(qpos, qvel).unwrap();
        obs = env.observation();
    }
    out.obs.extend(obs);
    for action in case.actions.chunks(env.act_dim()) {
        let step = env.step(action).unwrap();
        out.obs.extend(step.obs);
        out.rewards.push(step.reward);
        out.terminated.push(step.terminated);
        out.truncated.push(step.truncated);
        out.success.push(step.success);
        if step.terminated || step.truncated {
            break;
        }
    }
    out
}

fn gym_rollouts(cases: &[Case]) -> (Value, Vec<Rollout>) {
    let all: Vec<Value> = cases.iter().map(Case::to_json).collect();
    let value = run_parity_script("maze_rollout.py", &json!({ "cases": all }));
    let hex = |c: &Value, key: &str| f64s_from_hex(c[key].as_str().unwrap());
    let rollouts = value["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Rollout {
            starts: hex(c, "starts"),
            obs: hex(c, "obs"),
            rewards: hex(c, "rewards"),
            terminated: bools(&c["terminated"]),
            truncated: bools(&c["truncated"]),
            success: bools(&c["success"]),
        })
        .collect();
    (value["versions"].clone(), rollouts)
}

#[test]
fn every_ant_maze_matches_gymnasium_robotics() {
    let mut rng = ChaCha8Rng::seed_from_u64(20261130);
    let mut cases: Vec<Case> = MazeMap::ALL.iter().flat_map(|&m| cases_for(m, &mut rng)).collect();
    // A dataset's evaluation map: Medium's walls with one start and one goal cell.
    let medium = EnvId::ant_maze(MazeMap::Medium);
    let fixed: Vec<String> = [
        "11111111", "1r011001", "10010001", "11000111", "10010001", "10100101", "100010g1",
        "11111111",
    ]
    .map(String::from)
    .to_vec();
    cases.push(Case {
        env: medium,
        name: "custom map with one r and one g".into(),
        options: MazeOptions {
            cells_map: Some(fixed),
            ..options(false, false, MazeReward::Sparse)
        },
        reset_seeds: (0..10).collect(),
        seed: 5,
        state: None,
        actions: vec![0.0; 8 * 10],
    });
    // Minari's umaze evaluation map has other walls than the registered UMaze (opening left).
    let umaze = EnvId::ant_maze(MazeMap::UMaze);
    let mirrored: Vec<String> =
        ["11111", "100r1", "10111", "100g1", "11111"].map(String::from).to_vec();
    let config = EnvConfig {
        maze: MazeOptions { cells_map: Some(mirrored.clone()), ..MazeOptions::default() },
        ..EnvConfig::from(umaze)
    };
    let err = config.make(ofql_envs::load_env_model(umaze).unwrap()).err().unwrap().to_string();
    assert!(err.contains("not built from its maze map"), "{err}");
    let mut walk = vec![0.0; 8 * 700];
    walk.iter_mut().enumerate().for_each(|(i, a)| *a = ((i * 37 % 11) as f64 - 5.0) / 5.0);
    cases.push(Case {
        env: umaze,
        name: "custom map with other walls".into(),
        options: config.maze,
        reset_seeds: (0..10).collect(),
        seed: 6,
        state: None,
        actions: walk,
    });
    let (versions, gym) = gym_rollouts(&cases);
    assert_eq!(gym.len(), cases.len());
    eprintln!("Gymnasium-Robotics side: {versions}");
    eprintln!("| env | case | steps | successes | goal changes | max abs obs diff |");

    let mut failures = Vec::new();
    for (case, gym) in cases.iter().zip(&gym) {
        let ours = rust_rollout(case);
        let label = format!("{} {}", case.env, case.name);
        let goals =
            |obs: &[f64]| -> Vec<[f64; 2]> { obs.chunks(31).map(|o| [o[29], o[30]]).collect() };
        let changes = goals(&gym.obs).windows(2).filter(|w| w[0] != w[1]).count();
        let obs_diff = max_diff(&ours.obs, &gym.obs);
        eprintln!(
            "| {} | {} | {} | {} | {changes} | {obs_diff:e} |",
            case.env,
            case.name,
            gym.rewards.len(),
            gym.success.iter().filter(|&&s| s).count()
        );
        if ours.starts != gym.starts {
            failures.push(format!(
                "{label}: reset states differ (max {:e})",
                max_diff(&ours.starts, &gym.starts)
            ));
        }
        if ours.terminated != gym.terminated || ours.truncated != gym.truncated {
            failures.push(format!("{label}: terminated/truncated flags differ"));
        }
        if ours.success != gym.success {
            failures.push(format!("{label}: success flags differ"));
        }
        if !(obs_diff < TOLERANCE && max_diff(&ours.rewards, &gym.rewards) < TOLERANCE) {
            failures.push(format!("{label}: obs diff {obs_diff:e}"));
        }
        // The cases must do what they claim.
        let max_steps = case.actions.len() / 8;
        if case.name.starts_with("registered") {
            assert_eq!(gym.rewards.len(), max_steps, "{label}: the episode must run to its limit");
            assert!(gym.truncated[max_steps - 1], "{label}: no truncation at the time limit");
        }
        if case.name.starts_with("on the goal") {
            assert!(gym.success[0], "{label}: the ant was put within {GOAL_RADIUS} of the goal");
        }
        if case.name == "on the goal, episodic" {
            assert_eq!(gym.terminated, [true], "{label}: success must end an episodic task");
        }
        if case.name == "on the goal, reset_target" {
            // Every registered map has several goal cells.
            assert!(changes >= 1, "{label}: a reached goal must be replaced");
        }
    }
    assert!(failures.is_empty(), "maze parity failures:\n{}", failures.join("\n"));
}
