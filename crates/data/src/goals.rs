//! Giving a maze dataset one task: D4RL's AntMaze rewards count arrivals at the evaluation
//! goal ("sparse_fixed"), whatever goal steered the recording, while Minari's count arrivals
//! at each episode's own goal. Relabelling puts a Minari maze dataset back on D4RL's task:
//! each episode gets a goal drawn as the evaluation draws its goal, every row's
//! `desired_goal` becomes that goal and every reward is recomputed from the `achieved_goal`
//! after the step, as Gymnasium-Robotics' sparse reward computes it.

use anyhow::{Result, bail};
use ndarray::s;

use crate::dataset::Dataset;

/// A maze row: `achieved_goal` (x, y), `observation` (27), `desired_goal` (x, y); the order of
/// `minari::DICT_OBSERVATION_ORDER`.
pub const MAZE_ROW_WIDTH: usize = 31;
const DESIRED_GOAL: std::ops::Range<usize> = 29..31;

/// Relabel `data`'s goals: episode `k` (in `Dataset::episodes` order) gets `goal_of(k)`, and a
/// row's reward becomes 1 when its next `achieved_goal` lies within `radius` of that goal, else
/// 0 (the distance in f64 from the f32 rows). Returns how many rows are rewarded.
pub fn relabel_maze_goals(
    data: &mut Dataset,
    mut goal_of: impl FnMut(usize) -> [f64; 2],
    radius: f64,
) -> Result<usize> {
    if data.obs_dim() != MAZE_ROW_WIDTH {
        bail!(
            "relabelling goals needs maze rows of {MAZE_ROW_WIDTH} numbers (achieved_goal, \
             observation, desired_goal), but this dataset's rows have {}: it is not an AntMaze \
             dataset in Minari's layout",
            data.obs_dim()
        );
    }
    let episodes = data.episodes();
    let Some(next) = data.next_observations.as_mut() else {
        bail!(
            "relabelling goals needs each row's next observation (where the ant arrived), and \
             this file records none: use a Minari maze dataset"
        );
    };
    let mut rewarded = 0;
    for (k, episode) in episodes.iter().enumerate() {
        let goal = goal_of(k);
        let goal32 = ndarray::arr1(&[goal[0] as f32, goal[1] as f32]);
        let rows = episode.start..episode.end;
        data.observations.slice_mut(s![rows.clone(), DESIRED_GOAL]).assign(&goal32);
        next.slice_mut(s![rows.clone(), DESIRED_GOAL]).assign(&goal32);
        for i in rows {
            let (dx, dy) = (f64::from(next[[i, 0]]) - goal[0], f64::from(next[[i, 1]]) - goal[1]);
            let reached = (dx * dx + dy * dy).sqrt() <= radius;
            data.rewards[i] = if reached { 1.0 } else { 0.0 };
            rewarded += usize::from(reached);
        }
    }
    Ok(rewarded)
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};

    use super::*;

    /// Two episodes of three steps; the ant's x walks 0, 1, 2, 3 in each, y stays 0.
    fn walk() -> Dataset {
        let mut obs = Array2::zeros((6, MAZE_ROW_WIDTH));
        let mut next = Array2::zeros((6, MAZE_ROW_WIDTH));
        for i in 0..6 {
            obs[[i, 0]] = (i % 3) as f32;
            next[[i, 0]] = (i % 3 + 1) as f32;
            obs[[i, 30]] = 9.0; // the recorded goal
            next[[i, 30]] = 9.0;
        }
        let mut data = Dataset::new(
            obs,
            Array2::zeros((6, 8)),
            Array1::zeros(6),
            Array1::from_elem(6, false),
            ndarray::array![false, false, true, false, false, true],
        );
        data.next_observations = Some(next);
        data
    }

    #[test]
    fn each_episode_gets_its_goal_and_rewards_follow_the_next_position() {
        let mut data = walk();
        let goals = [[2.0, 0.0], [3.2, 0.0]];
        let rewarded = relabel_maze_goals(&mut data, |k| goals[k], 0.45).unwrap();
        // Episode 0 arrives at x = 2 after its second step; episode 1 at x = 3, 0.2 short.
        assert_eq!(data.rewards.to_vec(), [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(rewarded, 2);
        for i in 0..6 {
            let goal = goals[i / 3];
            for rows in [&data.observations, data.next_observations.as_ref().unwrap()] {
                assert_eq!([rows[[i, 29]], rows[[i, 30]]], [goal[0] as f32, goal[1] as f32]);
            }
        }
    }

    #[test]
    fn rows_that_are_not_a_mazes_are_refused() {
        let mut data = Dataset::new(
            Array2::zeros((2, 17)),
            Array2::zeros((2, 6)),
            Array1::zeros(2),
            Array1::from_elem(2, false),
            Array1::from_elem(2, false),
        );
        let err = relabel_maze_goals(&mut data, |_| [0.0, 0.0], 0.45).unwrap_err().to_string();
        assert!(err.contains("31") && err.contains("17"), "{err}");
        let mut no_next = walk();
        no_next.next_observations = None;
        let err = relabel_maze_goals(&mut no_next, |_| [0.0, 0.0], 0.45).unwrap_err().to_string();
        assert!(err.contains("next observation"), "{err}");
    }
}
