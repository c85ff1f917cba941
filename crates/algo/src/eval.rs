//! Evaluation of an agent in the MuJoCo environments: the envs crate's lockstep runner with
//! the agent as its batch policy.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ofql_data::registry::DatasetInfo;
use ofql_envs::runner::{self, EvalConfig as RunnerConfig};
use ofql_envs::{EnvConfig, EnvId, KitchenOptions, MazeOptions, Policy, ScoreRef, Task, Version};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::agent::Agent;
use crate::config::{DataConfig, EvalConfig};
use crate::policy::{Protocol, select_actions};
use crate::train::{EvalReport, Evaluator, PlainScore};

/// The agent as a batch policy for the runner, with its own seeded noise.
pub struct AgentPolicy<'a> {
    agent: &'a dyn Agent,
    protocol: Protocol,
    rng: ChaCha8Rng,
    scratch: Vec<f32>,
}

impl<'a> AgentPolicy<'a> {
    pub fn new(agent: &'a dyn Agent, protocol: Protocol, seed: u64) -> Self {
        AgentPolicy { agent, protocol, rng: ChaCha8Rng::seed_from_u64(seed), scratch: Vec::new() }
    }
}

impl Policy for AgentPolicy<'_> {
    fn obs_dim(&self) -> usize {
        self.agent.obs_dim()
    }
    fn act_dim(&self) -> usize {
        self.agent.act_dim()
    }
    fn act(&mut self, obs: &[f32], n: usize, actions: &mut [f32]) -> Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(obs);
        if let Some(norm) = self.agent.obs_norm() {
            norm.apply(&mut self.scratch);
        }
        let obs = Tensor::from_slice(&self.scratch, (n, self.agent.obs_dim()), &Device::Cpu)?;
        let acts = select_actions(self.agent, &obs, self.protocol, &mut self.rng)?;
        let acts: Vec<f32> = acts.flatten_all()?.to_vec1()?;
        actions.copy_from_slice(&acts);
        Ok(())
    }
}

/// Evaluates in one environment with fixed episode seeds, so every evaluation of a run sees
/// the same start states.
pub struct EnvEvaluator {
    pub env: EnvConfig,
    pub protocol: Protocol,
    pub runner: RunnerConfig,
    pub score: Option<ScoreRef>,
    /// Also score one plain sample per state (same episodes), when `protocol` is not plain.
    pub also_plain: bool,
}

impl EnvEvaluator {
    /// The evaluator a run's `[eval]` section describes (protocol, episodes, parallel
    /// environments, the plain score beside), scoring by `score_reference(env, dataset)`:
    /// what `ofql train` evaluates with and `ofql eval` too (with its flags applied to `eval`).
    pub fn new(
        env: impl Into<EnvConfig>,
        dataset: Option<&Path>,
        eval: &EvalConfig,
        seed: u64,
        threads: usize,
    ) -> Result<EnvEvaluator> {
        let env: EnvConfig = env.into();
        Ok(EnvEvaluator {
            score: score_reference(env.id, dataset)?,
            env,
            protocol: Protocol::from_config(eval),
            runner: RunnerConfig {
                episodes: eval.episodes,
                num_envs: eval.parallel_envs,
                threads,
                seed,
            },
            also_plain: eval.also_plain,
        })
    }

    pub fn evaluate_agent(&self, agent: &dyn Agent) -> Result<EvalReport> {
        let mut report = self.evaluate_with(agent, self.protocol)?;
        if self.also_plain && self.protocol != Protocol::Plain {
            let plain = self.evaluate_with(agent, Protocol::Plain)?;
            report.plain = Some(PlainScore {
                score_mean: plain.score_mean,
                score_std: plain.score_std,
                closest_goal_distance_mean: plain.closest_goal_distance_mean,
            });
        }
        Ok(report)
    }

    fn evaluate_with(&self, agent: &dyn Agent, protocol: Protocol) -> Result<EvalReport> {
        let mut policy = AgentPolicy::new(agent, protocol, self.runner.seed ^ 0xACE);
        let r = runner::evaluate(self.env.clone(), &mut policy, &self.runner, self.score)?;
        let returns: Vec<f64> = r.episodes.iter().map(|e| e.ret).collect();
        let (score_mean, score_std) = match &r.normalized {
            Some(s) => (s.mean, s.std),
            None => (f64::NAN, f64::NAN),
        };
        Ok(EvalReport {
            score_mean,
            score_std,
            return_mean: r.returns.mean,
            returns,
            lengths: r.episodes.iter().map(|e| e.length).collect(),
            closest_goal_distances: r
                .episodes
                .iter()
                .filter_map(|e| e.closest_goal_distance)
                .collect(),
            closest_goal_distance_mean: r.closest_goal_distance.as_ref().map(|s| s.mean),
            plain: None,
        })
    }
}

impl Evaluator for EnvEvaluator {
    fn evaluate(&mut self, agent: &dyn Agent) -> Result<EvalReport> {
        self.evaluate_agent(agent)
    }
}

/// The returns a score maps to 0 and 100 for data from `dataset` evaluated in `env`: for the
/// locomotion tasks, the ones a Minari dataset's `metadata.json` stores (`ref_min_score`,
/// `ref_max_score`, as Minari's `get_normalized_score` uses them) when it has them; D4RL's
/// constants otherwise (`d4rl_reference`). The mazes and the kitchen keep D4RL's (0, 1) and
/// (0, 4): Minari computed theirs over its continuing tasks, not the paper's protocol (the goal
/// ends the episode; D4RL's 280 kitchen steps). Pass `dataset` only when `env` is the
/// dataset's own environment.
pub fn score_reference(env: EnvId, dataset: Option<&Path>) -> Result<Option<ScoreRef>> {
    let locomotion = !matches!(env.task, Task::AntMaze(_) | Task::FrankaKitchen);
    if let Some(path) = dataset.filter(|_| locomotion)
        && let Some((min, max)) = ofql_data::minari::reference_scores(path)?
    {
        return Ok(Some(ScoreRef { min, max }));
    }
    d4rl_reference(env)
}

/// D4RL's kitchen episodes, the evaluation's time limit.
pub const KITCHEN_EVAL_STEPS: usize = 280;

/// D4RL's reference returns for an environment, for the v4 environments that match D4RL's
/// data (v5 differs: its scores are not D4RL's). The mazes score success: (0, 1).
pub fn d4rl_reference(id: EnvId) -> Result<Option<ScoreRef>> {
    // FrankaKitchen-v1's return under D4RL's protocol counts tasks: D4RL's (0, 4).
    if id.version != Version::V4 && id.task != Task::FrankaKitchen {
        return Ok(None);
    }
    let spec = ofql_data::registry::env_spec(id.task.d4rl_name())?;
    Ok(Some(ScoreRef { min: spec.ref_min, max: spec.ref_max }))
}

/// The environment a run evaluates in: `data.env` when set, else the one the dataset's
/// registry entry names (D4RL's v2 data -> the v4 environments; Minari's -> the environment
/// of its `eval_env_spec`). None when neither names one this crate simulates.
///
/// A maze is evaluated as the paper does: reaching the goal ends the episode (so the return is
/// 1 on success, 0 otherwise), from the dataset's evaluation map (one start and one goal
/// cell) when it has one; Minari's maze data has the goal in its observation rows.
pub fn eval_env(data: &DataConfig, info: Option<&DatasetInfo>) -> Result<Option<EnvConfig>> {
    let looked_up = ofql_data::registry::lookup(&data.dataset)
        .ok()
        .or_else(|| ofql_data::registry::infer_from_file(std::path::Path::new(&data.dataset)));
    let info = info.or(looked_up.as_ref());
    let id = if !data.env.is_empty() {
        match data.env.parse::<EnvId>() {
            Ok(id) => id,
            // Families we have data for but no simulator of (D4RL's AntMaze v2, Kitchen).
            Err(_) if ofql_data::registry::env_spec(&data.env).is_ok() => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    } else {
        let by_name = EnvId::for_d4rl_dataset(&data.dataset);
        let by_info = info.and_then(|i| i.eval_env).and_then(|e| e.parse::<EnvId>().ok());
        match by_name.or(by_info) {
            Some(id) => id,
            None => return Ok(None),
        }
    };
    let mut env = EnvConfig::from(id);
    if id.task == Task::FrankaKitchen {
        // D4RL's protocol, the paper's: the dataset's tasks, each rewarded once when completed
        // (so the return counts tasks, 0 to 4), the episode ending when all are done or at
        // D4RL's 280 steps.
        let tasks = info.and_then(|i| i.kitchen_tasks).context(
            "evaluating in FrankaKitchen-v1 needs the dataset's task list: use a registered \
             D4RL/kitchen dataset",
        )?;
        env.kitchen = KitchenOptions {
            tasks_to_complete: KitchenOptions::parse_tasks(tasks)?,
            remove_task_when_completed: true,
            terminate_on_tasks_completed: true,
            max_episode_steps: KITCHEN_EVAL_STEPS,
            ..KitchenOptions::default()
        };
    }
    if matches!(id.task, Task::AntMaze(_)) {
        env.maze = MazeOptions {
            continuing_task: false,
            goal_in_observation: info.is_none_or(|i| i.env == "antmaze-gr"),
            cells_map: info
                .and_then(|i| i.eval_maze_map)
                .map(|rows| rows.iter().map(|r| r.to_string()).collect()),
            ..MazeOptions::default()
        };
    }
    Ok(Some(env))
}

#[cfg(test)]
mod tests {
    use ofql_envs::{MazeMap, maze::Maze};

    use super::*;

    fn env_for(dataset: &str) -> Option<EnvConfig> {
        let data = DataConfig { dataset: dataset.into(), ..DataConfig::default() };
        eval_env(&data, None).unwrap()
    }

    #[test]
    fn each_registered_dataset_gets_its_own_evaluation_environment() {
        assert_eq!(env_for("hopper-medium-v2").unwrap().id.to_string(), "Hopper-v4");
        assert_eq!(env_for("mujoco/walker2d/expert-v0").unwrap().id.to_string(), "Walker2d-v5");
        // D4RL's antmaze-v2 ant is not Gymnasium's (timestep, gear): never scored in a v4 maze.
        assert!(env_for("antmaze-medium-play-v2").is_none());
        // Minari's kitchen: its own tasks, each rewarded once, D4RL's 280 steps; D4RL's v0
        // files name no environment of ours.
        let kitchen = env_for("D4RL/kitchen/mixed-v2").unwrap();
        assert_eq!(kitchen.id.to_string(), "FrankaKitchen-v1");
        let names: Vec<String> =
            kitchen.kitchen.tasks_to_complete.iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["microwave", "kettle", "bottom burner", "light switch"]);
        assert!(kitchen.kitchen.remove_task_when_completed);
        assert_eq!(kitchen.kitchen.max_episode_steps, 280);
        assert!(env_for("kitchen-mixed-v0").is_none());
        let score = d4rl_reference(kitchen.id).unwrap().unwrap();
        assert_eq!((score.min, score.max), (0.0, 4.0));
    }

    #[test]
    fn scores_use_minaris_reference_returns_when_the_dataset_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("main_data.hdf5"), b"").unwrap(); // where Minari's layout has it
        let hopper: EnvId = "Hopper-v4".parse().unwrap();
        let d4rl = d4rl_reference(hopper).unwrap().unwrap();
        assert_eq!(score_reference(hopper, None).unwrap(), Some(d4rl));
        std::fs::write(data.join("metadata.json"), r#"{"dataset_id": "x"}"#).unwrap();
        assert_eq!(score_reference(hopper, Some(dir.path())).unwrap(), Some(d4rl));
        std::fs::write(
            data.join("metadata.json"),
            r#"{"ref_min_score": -1.5, "ref_max_score": 3000.0}"#,
        )
        .unwrap();
        let minari = ScoreRef { min: -1.5, max: 3000.0 };
        assert_eq!(score_reference(hopper, Some(dir.path())).unwrap(), Some(minari));
        // Minari's v5 datasets have no D4RL constants: their metadata is the only reference.
        let v5: EnvId = "Hopper-v5".parse().unwrap();
        assert_eq!(score_reference(v5, None).unwrap(), None);
        assert_eq!(score_reference(v5, Some(dir.path())).unwrap(), Some(minari));
        // A maze's score is its success rate whatever Minari's continuing-task references say.
        let maze = EnvId::ant_maze(MazeMap::UMaze);
        assert_eq!(score_reference(maze, Some(dir.path())).unwrap(), d4rl_reference(maze).unwrap());
    }

    #[test]
    fn minari_mazes_are_evaluated_from_their_start_cell_to_their_goal_cell() {
        for (dataset, map) in [
            ("D4RL/antmaze/umaze-v1", MazeMap::UMaze),
            ("D4RL/antmaze/medium-diverse-v1", MazeMap::MediumDiverseGR),
            ("D4RL/antmaze/large-play-v1", MazeMap::Large),
        ] {
            let env = env_for(dataset).unwrap();
            assert_eq!(env.id, EnvId::ant_maze(map), "{dataset}");
            assert!(!env.maze.continuing_task && env.maze.goal_in_observation, "{dataset}");
            let rows = env.maze.cells_map.clone().unwrap();
            let maze = Maze::from_rows(&rows, 4.0, 0.5).unwrap();
            assert_eq!((maze.reset_locations().len(), maze.goal_locations().len()), (1, 1));
            // Starts and goals land in those cells (+- a quarter cell of noise).
            let mut made = env.make_one().unwrap();
            for seed in 0..5 {
                let obs = made.reset_with_seed(Some(seed)).unwrap();
                assert_eq!(obs.len(), 31);
                let near = |xy: [f64; 2], cell: [f64; 2]| {
                    (xy[0] - cell[0]).abs() <= 1.0 && (xy[1] - cell[1]).abs() <= 1.0
                };
                assert!(near([obs[0], obs[1]], maze.reset_locations()[0]), "{dataset}");
                assert!(near([obs[29], obs[30]], maze.goal_locations()[0]), "{dataset}");
            }
        }
    }
}
