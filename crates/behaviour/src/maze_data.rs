//! AntMaze datasets the way Minari made `D4RL/antmaze/*-v1`: a goal-reaching ant (this
//! project's SAC, trained with `ofql behaviour train --goal-reaching`) walks towards waypoints
//! that a planner picks over the maze's cells, with Gaussian noise on its actions, in the
//! environment and options Minari recorded in (continuing task, the goal fixed per episode).
//!
//! Planner: breadth-first search over free cells (4-neighbours) from the ant's cell to the
//! goal's; the waypoint is the centre of the next cell on the path, or the goal itself in the
//! goal's cell. (Minari's generation script planned with Q-iteration over the same cells.)
//! The rows are `achieved_goal, observation, desired_goal` (31 numbers), as
//! `ofql_data::read_minari` reads Minari's dictionary observations, and the dataset is written
//! in Minari's layout with those three entries.

use std::collections::VecDeque;
use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use ofql_data::Dataset;
use ofql_envs::maze::{ANT_MAZE_HEIGHT, ANT_MAZE_SCALING, Cell, Maze, heading_offset};
use ofql_envs::{EnvConfig, EnvId, MazeMap, MazeOptions};
use ofql_nets::Checkpoint;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use crate::online::{GOAL_FRAME, read_snapshots};
use crate::rows::Rows;
use crate::sac::{FrozenSacActor, SacActor, SacConfig};

/// The datasets Minari made, by the part of their id after `D4RL/antmaze/`.
pub const MAZE_DATASETS: [&str; 6] =
    ["umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse"];

/// Minari's umaze (not diverse) recording map: the goal cell (1, 1), the start cell (3, 1).
const UMAZE_RECORDING: [&str; 5] = ["11111", "1g001", "11101", "1r001", "11111"];

/// The environment Minari recorded `D4RL/antmaze/<name>-v1` in (`create_antmaze_dataset.py`):
/// continuing task, the goal kept for the episode, rows with the goal.
pub fn recording_env(name: &str) -> Result<EnvConfig> {
    let map = match name {
        "umaze" | "umaze-diverse" => MazeMap::UMaze,
        "medium-play" => MazeMap::Medium,
        "medium-diverse" => MazeMap::MediumDiverseGR,
        "large-play" => MazeMap::Large,
        "large-diverse" => MazeMap::LargeDiverseGR,
        other => {
            bail!("unknown AntMaze dataset `{other}`: use one of {}", MAZE_DATASETS.join(", "))
        }
    };
    let cells_map = (name == "umaze").then(|| UMAZE_RECORDING.map(String::from).to_vec());
    Ok(EnvConfig {
        maze: MazeOptions {
            continuing_task: true,
            reset_target: false,
            goal_in_observation: true,
            cells_map,
            ..MazeOptions::default()
        },
        ..EnvConfig::from(EnvId::ant_maze(map))
    })
}

/// Breadth-first search over free cells (4-neighbours) from `target`: for each cell its next
/// step towards `target` and the number of cells still to walk (None where unreachable).
fn search_from(maze: &Maze, target: (i64, i64)) -> Vec<Option<((i64, i64), usize)>> {
    let rows = maze.cells().len() as i64;
    let cols = maze.cells()[0].len() as i64;
    let index = |(i, j): (i64, i64)| (i * cols + j) as usize;
    let mut found = vec![None; (rows * cols) as usize];
    if !maze.is_free(target.0, target.1) {
        return found;
    }
    let mut queue = VecDeque::from([target]);
    found[index(target)] = Some((target, 0));
    while let Some(cell) = queue.pop_front() {
        let cells_left = found[index(cell)].map_or(0, |(_, n)| n);
        for (di, dj) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
            let next = (cell.0 + di, cell.1 + dj);
            if maze.is_free(next.0, next.1) && found[index(next)].is_none() {
                found[index(next)] = Some((cell, cells_left + 1));
                queue.push_back(next);
            }
        }
    }
    found
}

/// What `search_from` found for `cell` (None outside the maze or where unreachable).
fn lookup(
    maze: &Maze,
    found: &[Option<((i64, i64), usize)>],
    (i, j): (i64, i64),
) -> Option<((i64, i64), usize)> {
    let cols = maze.cells()[0].len() as i64;
    (maze.is_free(i, j)).then(|| found[(i * cols + j) as usize]).flatten()
}

/// Cells to walk from `from`'s cell to `to`'s on a shortest path of free cells (0 in the same
/// cell), or None when no path exists.
pub fn path_cells(maze: &Maze, from: [f64; 2], to: [f64; 2]) -> Option<usize> {
    let found = search_from(maze, maze.xy_cell(to));
    lookup(maze, &found, maze.xy_cell(from)).map(|(_, n)| n)
}

/// The next point to walk to: the centre of the next cell on a shortest path of free cells
/// from `from` to `goal`, or the goal in its own cell (or when no path exists).
pub fn waypoint(maze: &Maze, from: [f64; 2], goal: [f64; 2]) -> [f64; 2] {
    let (start, target) = (maze.xy_cell(from), maze.xy_cell(goal));
    if start == target {
        return goal;
    }
    match lookup(maze, &search_from(maze, target), start) {
        Some((step, _)) if step == target => goal,
        Some(((i, j), _)) => maze.cell_xy(i as usize, j as usize),
        None => goal,
    }
}

/// The evaluation's own path of `D4RL/antmaze/<name>-v1`: cells from the start `r` to the goal
/// `g` of the dataset's evaluation map (Minari's `eval_env_spec`), and the time limit.
pub fn evaluation_path(name: &str) -> Result<(usize, usize)> {
    let info = ofql_data::registry::lookup(&format!("D4RL/antmaze/{name}-v1"))?;
    let map = info.eval_maze_map.with_context(|| format!("{} has no evaluation map", info.name))?;
    let maze = Maze::from_rows(map, ANT_MAZE_SCALING, ANT_MAZE_HEIGHT)?;
    let (start, goal) = (maze.reset_locations()[0], maze.goal_locations()[0]);
    let cells = path_cells(&maze, start, goal)
        .with_context(|| format!("{}'s evaluation map has no path to its goal", info.name))?;
    Ok((cells, info.episode_length))
}

/// The data's episodes whose goal was `cells` cells of path from their start.
#[derive(Debug, Clone, Serialize)]
pub struct ReachByPath {
    pub cells: usize,
    pub episodes: usize,
    /// Of those episodes, the share that reached the goal.
    pub success_rate: f64,
    /// Median steps from the reset to the goal's first reach, over the ones that reached it.
    pub median_steps_to_goal: Option<f64>,
}

/// How a generation went.
#[derive(Debug, Clone, Serialize)]
pub struct MazeDataReport {
    pub env: String,
    pub transitions: usize,
    pub episodes: usize,
    /// Episodes in which the ant reached the goal at least once.
    pub success_rate: f64,
    /// Mean sparse return (steps at the goal) per episode.
    pub return_mean: f64,
    /// Mean planar speed of the torso over every step (m/s; time at the goal included).
    pub speed_mean: f64,
    /// Success by the length of the path from each episode's start to its goal: the data can
    /// only teach paths about as long as the ones its ant walked within the time limit.
    pub by_path: Vec<ReachByPath>,
    pub policy_snapshot: String,
}

/// One recorded episode, for `ReachByPath`.
struct EpisodeReach {
    cells: Option<usize>,
    steps_to_goal: Option<usize>,
}

fn reach_by_path(episodes: &[EpisodeReach]) -> Vec<ReachByPath> {
    let longest = episodes.iter().filter_map(|e| e.cells).max().unwrap_or(0);
    (0..=longest)
        .filter_map(|cells| {
            let these: Vec<&EpisodeReach> =
                episodes.iter().filter(|e| e.cells == Some(cells)).collect();
            if these.is_empty() {
                return None;
            }
            let mut steps: Vec<f64> =
                these.iter().filter_map(|e| e.steps_to_goal.map(|s| s as f64)).collect();
            steps.sort_by(f64::total_cmp);
            let median = match steps.len() {
                0 => None,
                n if n % 2 == 1 => Some(steps[n / 2]),
                n => Some(0.5 * (steps[n / 2 - 1] + steps[n / 2])),
            };
            Some(ReachByPath {
                cells,
                episodes: these.len(),
                success_rate: steps.len() as f64 / these.len() as f64,
                median_steps_to_goal: median,
            })
        })
        .collect()
}

/// The goal-reaching ant of a behaviour run: the snapshot of training step `step`, or the
/// one with the best return.
pub fn load_goal_reaching_actor(run: &Path, step: Option<u64>) -> Result<(SacActor, String)> {
    let snaps = read_snapshots(run)?;
    let best = match step {
        Some(step) => snaps.iter().find(|s| s.step == step).with_context(|| {
            let steps: Vec<String> = snaps.iter().map(|s| s.step.to_string()).collect();
            format!(
                "{} has no snapshot of step {step}; it has {}",
                run.display(),
                if steps.is_empty() { "none yet".into() } else { steps.join(", ") }
            )
        })?,
        None => snaps
            .iter()
            .max_by(|a, b| a.return_mean.total_cmp(&b.return_mean))
            .with_context(|| format!("{} has no snapshots yet", run.display()))?,
    };
    let cfg_text = std::fs::read_to_string(run.join("behaviour.toml"))
        .with_context(|| format!("{} is not a behaviour run", run.display()))?;
    if !cfg_text.contains("goal_reaching = true") {
        bail!(
            "{} was not trained with --goal-reaching: AntMaze data needs the goal-reaching ant \
             (`ofql behaviour train --env AntMaze_Open-v4 --goal-reaching`)",
            run.display()
        );
    }
    let ck = Checkpoint::load(&run.join(&best.file), &Device::Cpu)
        .with_context(|| format!("cannot load snapshot {}", best.file))?;
    let frame: Option<String> = ck.json("goal_frame").ok();
    if frame.as_deref() != Some(GOAL_FRAME) {
        bail!(
            "{} was trained on an earlier goal-reaching task (goal offset in the world frame, \
             not the ant's heading frame): its ant would walk the wrong way here. Train it \
             again with this version (`ofql behaviour train --env AntMaze_Open-v4 \
             --goal-reaching`)",
            run.display()
        );
    }
    let cfg: SacConfig = ck.json("sac_config")?;
    let actor = SacActor::new(29, 8, &cfg, &mut ChaCha8Rng::seed_from_u64(0))?;
    ck.restore_vars("actor", &actor)?;
    Ok((actor, best.file.clone()))
}

/// `steps` transitions of the noisy goal-reaching ant in `config`'s maze, steered by
/// waypoints; episodes end at the time limit (a continuing task), each with a new goal.
pub fn generate_maze_data(
    config: &EnvConfig,
    actor: &SacActor,
    steps: usize,
    action_noise: f64,
    seed: u64,
) -> Result<(Dataset, MazeDataReport)> {
    let mut env = config.make_one()?;
    // Frozen, so that the same snapshot and seed give the same file on every host.
    let mut actor = FrozenSacActor::new(actor)?;
    let maze = match &config.maze.cells_map {
        Some(rows) => Maze::from_rows(rows, 4.0, 0.5)?,
        None => match config.id.task {
            ofql_envs::Task::AntMaze(map) => Maze::ant(map),
            _ => bail!("{} is not a maze", config.id),
        },
    };
    debug_assert!(maze.cells().iter().flatten().any(|c| *c != Cell::Wall));
    let (d, a) = (env.obs_dim(), env.act_dim());
    if d != 31 {
        bail!("the maze rows must hold the goal (31 numbers), got {d}");
    }
    let noise = Normal::new(0.0, action_noise).context("action noise")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut episode_seed = seed.wrapping_mul(1_000_003);
    let mut rows = Rows::new(d, a);
    let mut o = env.reset_with_seed(Some(episode_seed))?;
    let mut policy_obs = vec![0f32; 29];
    let mut reach = Vec::new();
    let path_of = |o: &[f64]| path_cells(&maze, [o[0], o[1]], [o[29], o[30]]);
    let (mut episode_cells, mut episode_step, mut steps_to_goal) = (path_of(&o), 0, None);
    let mut travelled = 0.0;
    for _ in 0..steps {
        // The low-level policy sees the ant's own observation and the waypoint's offset in its
        // heading frame (the rows start with x, y, so `o[..15]` is qpos).
        let (xy, goal) = ([o[0], o[1]], [o[29], o[30]]);
        let w = waypoint(&maze, xy, goal);
        for (p, x) in policy_obs.iter_mut().zip(&o[2..29]) {
            *p = *x as f32;
        }
        let offset = heading_offset(&o[..15], w);
        policy_obs[27] = offset[0] as f32;
        policy_obs[28] = offset[1] as f32;
        let mean = actor.mean_action(&policy_obs);
        let u: Vec<f32> =
            mean.iter().map(|m| (m + noise.sample(&mut rng) as f32).clamp(-1.0, 1.0)).collect();
        let step = env.step(&u)?;
        rows.push(&o, &step.obs, &u, step.reward, step.truncated);
        travelled += (step.obs[0] - o[0]).hypot(step.obs[1] - o[1]);
        episode_step += 1;
        if step.success && steps_to_goal.is_none() {
            steps_to_goal = Some(episode_step);
        }
        o = if step.truncated || step.terminated {
            reach.push(EpisodeReach { cells: episode_cells, steps_to_goal });
            episode_seed = episode_seed.wrapping_add(1);
            let o = env.reset_with_seed(Some(episode_seed))?;
            (episode_cells, episode_step, steps_to_goal) = (path_of(&o), 0, None);
            o
        } else {
            step.obs
        };
    }
    // The last row ends the data: cut there.
    if rows.cut_last() {
        reach.push(EpisodeReach { cells: episode_cells, steps_to_goal });
    }
    let episodes = reach.len();
    let successes = reach.iter().filter(|e| e.steps_to_goal.is_some()).count();
    let return_mean = rows.reward_sum() / episodes.max(1) as f64;
    let data = rows.into_dataset()?;
    let n = data.len();
    let report = MazeDataReport {
        env: config.id.to_string(),
        transitions: n,
        episodes,
        success_rate: successes as f64 / episodes.max(1) as f64,
        return_mean,
        speed_mean: travelled / (n as f64 * env.dt()),
        by_path: reach_by_path(&reach),
        policy_snapshot: String::new(),
    };
    Ok((data, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waypoints_follow_the_corridors() {
        let maze = Maze::ant(MazeMap::UMaze);
        // From the bottom-left cell (3, 1) to the top-left cell (1, 1): around the U, first
        // right along the bottom row.
        let (from, goal) = (maze.cell_xy(3, 1), maze.cell_xy(1, 1));
        assert_eq!(waypoint(&maze, from, goal), maze.cell_xy(3, 2));
        assert_eq!(waypoint(&maze, maze.cell_xy(3, 3), goal), maze.cell_xy(2, 3));
        assert_eq!(waypoint(&maze, maze.cell_xy(1, 2), goal), goal, "next to the goal's cell");
        let near_goal = [goal[0] + 0.3, goal[1] - 0.2];
        assert_eq!(waypoint(&maze, near_goal, goal), goal, "in the goal's cell");
    }

    #[test]
    fn path_lengths_count_cells_along_the_corridors() {
        let maze = Maze::ant(MazeMap::UMaze);
        assert_eq!(
            path_cells(&maze, maze.cell_xy(3, 1), maze.cell_xy(1, 1)),
            Some(6),
            "round the U"
        );
        assert_eq!(path_cells(&maze, maze.cell_xy(1, 1), [-6.0, 5.9]), Some(0), "same cell");
        assert_eq!(path_cells(&maze, maze.cell_xy(2, 2), maze.cell_xy(1, 1)), None, "a wall");
        // Minari's medium evaluation: (1, 1) to (6, 6), 10 cells in 1000 steps.
        assert_eq!(evaluation_path("medium-play").unwrap(), (10, 1000));
        assert_eq!(evaluation_path("umaze").unwrap(), (6, 700));
        let episodes = [
            EpisodeReach { cells: Some(2), steps_to_goal: Some(300) },
            EpisodeReach { cells: Some(2), steps_to_goal: Some(100) },
            EpisodeReach { cells: Some(2), steps_to_goal: None },
            EpisodeReach { cells: Some(5), steps_to_goal: None },
            EpisodeReach { cells: None, steps_to_goal: None },
        ];
        let rows = reach_by_path(&episodes);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].cells, rows[0].episodes, rows[0].median_steps_to_goal),
            (2, 3, Some(200.0))
        );
        assert!((rows[0].success_rate - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            (rows[1].cells, rows[1].success_rate, rows[1].median_steps_to_goal),
            (5, 0.0, None)
        );
    }

    #[test]
    fn recording_envs_are_minaris() {
        let umaze = recording_env("umaze").unwrap();
        assert_eq!(umaze.id.to_string(), "AntMaze_UMaze-v4");
        assert!(umaze.maze.cells_map.is_some() && umaze.maze.continuing_task);
        assert!(!umaze.maze.reset_target && umaze.maze.goal_in_observation);
        assert_eq!(
            recording_env("large-diverse").unwrap().id.to_string(),
            "AntMaze_Large_Diverse_GR-v4"
        );
        assert!(recording_env("huge").unwrap_err().to_string().contains("medium-play"));
    }

    #[test]
    fn an_untrained_ant_makes_well_formed_data() {
        let cfg = SacConfig { hidden: 16, ..SacConfig::default() };
        let actor = SacActor::new(29, 8, &cfg, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let env = recording_env("umaze").unwrap();
        let (data, report) = generate_maze_data(&env, &actor, 750, 0.2, 3).unwrap();
        assert_eq!(data.len(), 750);
        assert_eq!(data.obs_dim(), 31);
        // 700-step episodes: one cut by the time limit, the last cut where the data ends.
        assert_eq!(report.episodes, 2);
        assert!(data.timeouts[699] && data.timeouts[749]);
        assert!(data.actions.iter().all(|a| (-1.0..=1.0).contains(a)));
        // The goal (the last two numbers) stays for the episode and changes with the next.
        assert_eq!(data.observations[[0, 29]], data.observations[[699, 29]]);
        assert!((0.0..=1.0).contains(&report.success_rate));
        assert_eq!(report.by_path.iter().map(|r| r.episodes).sum::<usize>(), 2);
        assert!(report.speed_mean.is_finite() && report.speed_mean > 0.0);
    }
}
