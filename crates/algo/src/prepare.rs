//! From a config's `[data]` section to a replay buffer: find the file (a path, or a registry
//! name in the download cache), build transitions by `qlearning_dataset` rules, transform
//! rewards (by default scaled by the dataset's episode-return range, as CleanDiffuser's
//! pipeline, whose evaluation weights the paper uses, does), and normalise observations (the
//! statistics go into the checkpoint so the policy normalises what it sees at evaluation the
//! same way).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ofql_data::transitions::normalize_rows;
use ofql_data::{
    Dataset, Episode, NextObs, ReplayBuffer, Stats, TransitionOptions, Transitions, goals, registry,
};
use ofql_envs::Maze;
use ofql_envs::maze::{ANT_MAZE_HEIGHT, ANT_MAZE_SCALING, GOAL_RADIUS};
use ofql_envs::np_random::NpRandom;
use serde::{Deserialize, Serialize};

use crate::config::DataConfig;

/// Per-dimension observation normalisation: s <- (s - mean) / std.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ObsNorm {
    pub fn apply(&self, obs: &mut [f32]) {
        normalize_rows(obs, &self.mean, &self.std);
    }
}

/// What was done to the dataset's rewards: r <- (r * factor + shift) * scale, with `factor`
/// from the file (1000 / (max - min episode return) for `return_range`, else 1). Saved in
/// every checkpoint, so a resumed run can check that its data still gives the same numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardTransform {
    pub norm: String,
    /// The range of the dataset's complete episodes' returns (raw rewards).
    pub return_min: f64,
    pub return_max: f64,
    pub factor: f64,
    pub shift: f64,
    pub scale: f64,
}

impl RewardTransform {
    /// The transform `cfg` asks for on a dataset whose episode returns are `returns`.
    pub fn new(cfg: &DataConfig, returns: &[f64]) -> Result<RewardTransform> {
        let fold = |init: f64, f: fn(f64, f64) -> f64| returns.iter().copied().fold(init, f);
        let (return_min, return_max) =
            (fold(f64::INFINITY, f64::min), fold(f64::NEG_INFINITY, f64::max));
        let factor = match cfg.reward_norm.as_str() {
            "none" => 1.0,
            _ => {
                let range = return_max - return_min;
                if !(range.is_finite() && range > 0.0) {
                    bail!(
                        "data.reward_norm = \"return_range\" needs episodes with different \
                         returns, but this dataset's complete episodes span [{return_min}, \
                         {return_max}]: set data.reward_norm = \"none\" (and reward_scale by hand)"
                    );
                }
                1000.0 / range
            }
        };
        Ok(RewardTransform {
            norm: cfg.reward_norm.clone(),
            return_min,
            return_max,
            factor,
            shift: cfg.reward_shift,
            scale: cfg.reward_scale,
        })
    }

    /// Raw rewards, for data that did not come through [`prepare`] (tests, scripts).
    pub fn raw() -> RewardTransform {
        RewardTransform {
            norm: "none".into(),
            return_min: 0.0,
            return_max: 0.0,
            factor: 1.0,
            shift: 0.0,
            scale: 1.0,
        }
    }

    pub fn is_identity(&self) -> bool {
        (self.factor, self.shift, self.scale) == (1.0, 0.0, 1.0)
    }

    pub fn apply(&self, r: f32) -> f32 {
        let (k, shift, scale) = (self.factor as f32, self.shift as f32, self.scale as f32);
        (r * k + shift) * scale
    }
}

pub struct Prepared {
    pub buffer: ReplayBuffer,
    pub obs_norm: Option<ObsNorm>,
    pub rewards: RewardTransform,
    pub path: PathBuf,
    /// The registry entry when the file is a known dataset (scores, episode length).
    pub info: Option<registry::DatasetInfo>,
    /// With `data.goal = "evaluation"`: the rows rewarded for reaching the evaluation goal.
    pub relabelled_rewards: Option<usize>,
}

/// The file `dataset` names: an existing path, or a registry name already in the cache
/// (`ofql_data::resolve`, which every `ofql dataset` command uses too).
pub fn resolve(
    dataset: &str,
    cache: Option<&Path>,
) -> Result<(PathBuf, Option<registry::DatasetInfo>)> {
    if dataset.is_empty() {
        bail!("no dataset given: pass --dataset PATH|NAME or set data.dataset in the config");
    }
    Ok(ofql_data::resolve(dataset, cache)?)
}

pub fn prepare(cfg: &DataConfig, cache: Option<&Path>) -> Result<Prepared> {
    let (path, info) = resolve(&cfg.dataset, cache)?;
    let (mut dataset, _format) = ofql_data::load(&path)?;
    let relabelled_rewards = match cfg.goal.as_str() {
        "evaluation" => {
            Some(relabel_to_evaluation_goal(&mut dataset, info.as_ref(), &cfg.dataset)?)
        }
        _ => None,
    };
    let opts = TransitionOptions {
        next_obs: if cfg.use_next_observations { NextObs::Recorded } else { NextObs::Shifted },
        max_episode_steps: info.as_ref().map(|i| i.episode_length),
    };
    let mut transitions = Transitions::from_dataset(&dataset, opts)?;
    if transitions.is_empty() {
        bail!("{} yields no transitions", path.display());
    }
    let rewards = RewardTransform::new(cfg, &complete_episode_returns(&dataset))?;
    if !rewards.is_identity() {
        transitions.map_rewards(|r| rewards.apply(r));
    }
    let obs_norm = if cfg.normalize_obs {
        let (mean, std) = Stats::of(&dataset).normalizer(1e-3);
        transitions.normalize_observations(&mean, &std);
        Some(ObsNorm { mean, std })
    } else {
        None
    };
    Ok(Prepared {
        buffer: ReplayBuffer::new(transitions),
        obs_norm,
        rewards,
        path,
        info,
        relabelled_rewards,
    })
}

/// The goals of `data.goal = "evaluation"` come from this seed, so every run on a dataset
/// trains on the same rows.
const RELABEL_SEED: u64 = 0;

/// Put a maze dataset on the evaluation's task (`ofql_data::goals`): each episode's goal is
/// the evaluation maze's goal cell plus the position noise the evaluation adds (drawn as
/// `Env::reset` draws it), success within Gymnasium-Robotics' 0.45 m. Returns the rows
/// rewarded.
fn relabel_to_evaluation_goal(
    dataset: &mut Dataset,
    info: Option<&registry::DatasetInfo>,
    name: &str,
) -> Result<usize> {
    let rows = info.and_then(|i| i.eval_maze_map).with_context(|| {
        format!(
            "data.goal = \"evaluation\" relabels a maze dataset to the goal of its evaluation \
             maze, but `{name}` is not a registered AntMaze dataset (nor a Minari folder whose \
             metadata names one): use a D4RL/antmaze/* dataset, or data.goal = \"recorded\""
        )
    })?;
    let maze = Maze::from_rows(rows, ANT_MAZE_SCALING, ANT_MAZE_HEIGHT)?;
    let mut rng = NpRandom::new(RELABEL_SEED);
    let goal_of = |_episode: usize| {
        let cell = maze.draw_goal_cell(&mut rng);
        maze.add_position_noise(&mut rng, cell)
    };
    goals::relabel_maze_goals(dataset, goal_of, GOAL_RADIUS)
        .with_context(|| format!("data.goal = \"evaluation\" on `{name}`"))
}

/// The returns of the episodes that end in the file (at a terminal or a timeout), as IQL's
/// and CleanDiffuser's return range count them; all episodes when none ends.
fn complete_episode_returns(dataset: &Dataset) -> Vec<f64> {
    let episodes = dataset.episodes();
    let ended = |e: &&Episode| e.terminal || dataset.timeouts[e.end - 1];
    let complete: Vec<f64> = episodes.iter().filter(ended).map(|e| e.ret).collect();
    if complete.is_empty() { episodes.iter().map(|e| e.ret).collect() } else { complete }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array};

    use super::*;

    /// Episodes with returns 3 (terminal), 7 (timeout) and a trailing 5 that never ends.
    fn three_episodes() -> Dataset {
        Dataset::new(
            Array2::zeros((5, 2)),
            Array2::zeros((5, 1)),
            array![1.0, 2.0, 3.0, 4.0, 5.0],
            array![false, true, false, false, false],
            array![false, false, false, true, false],
        )
    }

    fn data(norm: &str, shift: f64, scale: f64) -> DataConfig {
        DataConfig {
            reward_norm: norm.into(),
            reward_shift: shift,
            reward_scale: scale,
            ..DataConfig::default()
        }
    }

    #[test]
    fn return_range_counts_only_episodes_that_end() {
        let returns = complete_episode_returns(&three_episodes());
        assert_eq!(returns, vec![3.0, 7.0]);
        let t = RewardTransform::new(&data("return_range", 0.0, 1.0), &returns).unwrap();
        assert_eq!((t.return_min, t.return_max, t.factor), (3.0, 7.0, 250.0));
        assert_eq!(t.apply(2.0), 500.0);
        // The shift and scale come after the range's factor.
        let t = RewardTransform::new(&data("return_range", -1.0, 2.0), &returns).unwrap();
        assert_eq!(t.apply(2.0), 998.0);
    }

    #[test]
    fn none_keeps_raw_rewards_and_a_flat_range_is_an_error() {
        let t = RewardTransform::new(&data("none", 0.0, 1.0), &[3.0, 7.0]).unwrap();
        assert!(t.is_identity());
        let t = RewardTransform::new(&data("none", -1.0, 1.0), &[3.0, 7.0]).unwrap();
        assert_eq!(t.apply(1.0), 0.0);
        let err = RewardTransform::new(&data("return_range", 0.0, 1.0), &[4.0, 4.0]).unwrap_err();
        assert!(err.to_string().contains("data.reward_norm"), "{err}");
    }

    /// Two episodes in Minari's maze layout, registered as medium-play, whose ant rasters the
    /// medium maze's goal cell ((10, -10) +- 1 m) in 0.3 m steps, so that whatever goal the
    /// evaluation's noise gives, some rows come within 0.45 m of it and most do not.
    fn raster_of_the_goal_cell(root: &Path) {
        let grid: Vec<[f32; 2]> = (0..7)
            .flat_map(|i| (0..7).map(move |j| [9.1 + 0.3 * j as f32, -10.9 + 0.3 * i as f32]))
            .collect();
        let steps = grid.len() - 1;
        let (n, width) = (2 * steps, goals::MAZE_ROW_WIDTH);
        let (mut obs, mut next) = (Array2::zeros((n, width)), Array2::zeros((n, width)));
        for e in 0..2 {
            for k in 0..steps {
                let row = e * steps + k;
                for (rows, at) in [(&mut obs, grid[k]), (&mut next, grid[k + 1])] {
                    rows[[row, 0]] = at[0];
                    rows[[row, 1]] = at[1];
                    // The recorded goal, far away in the maze's other corner.
                    rows[[row, 29]] = -10.0;
                    rows[[row, 30]] = 10.0;
                }
            }
        }
        let mut timeouts = ndarray::Array1::from_elem(n, false);
        timeouts[steps - 1] = true;
        timeouts[n - 1] = true;
        let mut data = Dataset::new(
            obs,
            Array2::zeros((n, 8)),
            ndarray::Array1::zeros(n),
            ndarray::Array1::from_elem(n, false),
            timeouts,
        );
        data.next_observations = Some(next);
        let layout = [("achieved_goal", 2), ("observation", 27), ("desired_goal", 2)];
        ofql_data::write_minari_with_layout(
            root,
            &data,
            "D4RL/antmaze/medium-play-v1",
            Some(&layout),
        )
        .unwrap();
    }

    #[test]
    fn evaluation_goals_relabel_a_maze_dataset_to_its_evaluation_task() {
        let dir = tempfile::tempdir().unwrap();
        raster_of_the_goal_cell(dir.path());
        let cfg = DataConfig {
            dataset: dir.path().to_str().unwrap().into(),
            reward_norm: "none".into(),
            normalize_obs: false,
            goal: "evaluation".into(),
            ..DataConfig::default()
        };
        let prepared = prepare(&cfg, None).unwrap();
        let t = prepared.buffer.transitions();
        let w = t.obs_dim;
        let rows = |v: &[f32]| v.chunks_exact(w).map(|r| r.to_vec()).collect::<Vec<_>>();
        let (obs, next) = (rows(&t.observations), rows(&t.next_observations));
        let goal_of = |r: &[f32]| [r[29], r[30]];
        let (first, last) = (goal_of(&obs[0]), goal_of(&obs[obs.len() - 1]));
        assert_ne!(first, last, "each episode draws its own goal");
        let mut rewarded = 0;
        for (i, (s, s2)) in obs.iter().zip(&next).enumerate() {
            let goal = goal_of(s);
            assert_eq!(goal, goal_of(s2));
            assert_eq!(goal, if i < obs.len() / 2 { first } else { last });
            // In the evaluation maze's goal cell, with at most a quarter cell of noise.
            assert!((goal[0] - 10.0).abs() <= 1.0 && (goal[1] + 10.0).abs() <= 1.0, "{goal:?}");
            let d =
                (f64::from(s2[0] - goal[0]).powi(2) + f64::from(s2[1] - goal[1]).powi(2)).sqrt();
            assert_eq!(t.rewards[i], if d <= GOAL_RADIUS { 1.0 } else { 0.0 }, "row {i}");
            rewarded += t.rewards[i] as usize;
        }
        assert!(rewarded >= 2 && rewarded < obs.len() / 2, "{rewarded} of {}", obs.len());
        // Every row came from the relabelling: its count covers the transitions' rewards.
        assert!(prepared.relabelled_rewards.unwrap() >= rewarded);

        // The same rows again: the goals come from a fixed seed.
        let again = prepare(&cfg, None).unwrap();
        assert_eq!(again.buffer.transitions().observations, t.observations);
        // A dataset that names no evaluation maze is refused, saying what to do.
        let plain = tempfile::tempdir().unwrap();
        let file = plain.path().join("hopper.hdf5");
        ofql_data::write_d4rl(&file, &three_episodes(), ofql_data::Dtype::F32).unwrap();
        let cfg = DataConfig { dataset: file.to_str().unwrap().into(), ..cfg };
        let err = format!("{:#}", prepare(&cfg, None).err().unwrap());
        assert!(err.contains("data.goal") && err.contains("recorded"), "{err}");
    }

    #[test]
    fn no_ended_episode_falls_back_to_all() {
        let mut d = three_episodes();
        d.terminals.fill(false);
        d.timeouts.fill(false);
        assert_eq!(complete_episode_returns(&d), vec![15.0]);
    }
}
