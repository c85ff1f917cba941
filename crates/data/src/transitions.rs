//! (s, a, r, s', done) tuples built from a `Dataset` by d4rl's `qlearning_dataset` rules.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;

/// Where s' comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextObs {
    /// d4rl's `qlearning_dataset` (what peers train on): s' = observations[i + 1]; rows cut by
    /// the time limit are skipped (their next row starts a new episode) and the last row is
    /// dropped.
    #[default]
    Shifted,
    /// s' = next_observations[i], recorded by the file: every row is kept, including those cut
    /// by the time limit (their s' is real, done = false). Errors if the file has none.
    Recorded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TransitionOptions {
    pub next_obs: NextObs,
    /// Only for files without `timeouts`: treat every `max_episode_steps`-th step of an episode
    /// as cut by the time limit, as `qlearning_dataset` does with `env._max_episode_steps`.
    pub max_episode_steps: Option<usize>,
}

/// Transitions as contiguous row-major f32 arrays (structure of arrays).
#[derive(Clone, Debug, PartialEq)]
pub struct Transitions {
    pub obs_dim: usize,
    pub act_dim: usize,
    pub observations: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    pub next_observations: Vec<f32>,
    /// 1.0 where the episode terminated (no bootstrap), else 0.0.
    pub dones: Vec<f32>,
    pub next_obs: NextObs,
}

impl Transitions {
    pub fn from_dataset(data: &Dataset, opts: TransitionOptions) -> anyhow::Result<Self> {
        let recorded = match opts.next_obs {
            NextObs::Shifted => None,
            NextObs::Recorded => Some(data.next_observations.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "the data has no `next_observations`; use the default s' = observations[i + 1]"
                )
            })?),
        };
        let rows = selected_rows(data, opts);
        let (d, a) = (data.obs_dim(), data.act_dim());
        let mut t = Transitions {
            obs_dim: d,
            act_dim: a,
            observations: Vec::with_capacity(rows.len() * d),
            actions: Vec::with_capacity(rows.len() * a),
            rewards: Vec::with_capacity(rows.len()),
            next_observations: Vec::with_capacity(rows.len() * d),
            dones: Vec::with_capacity(rows.len()),
            next_obs: opts.next_obs,
        };
        for &i in &rows {
            t.observations.extend(data.observations.row(i).iter());
            t.actions.extend(data.actions.row(i).iter());
            t.rewards.push(data.rewards[i]);
            match recorded {
                Some(next) => t.next_observations.extend(next.row(i).iter()),
                None => t.next_observations.extend(data.observations.row(i + 1).iter()),
            }
            t.dones.push(if data.terminals[i] { 1.0 } else { 0.0 });
        }
        Ok(t)
    }

    /// No transitions yet, for these sizes (an online learner's buffer, filled by `push`).
    pub fn empty(obs_dim: usize, act_dim: usize) -> Self {
        Transitions {
            obs_dim,
            act_dim,
            observations: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            next_observations: Vec::new(),
            dones: Vec::new(),
            next_obs: NextObs::Recorded,
        }
    }

    /// Append one transition; `done` means terminal (no bootstrap), not a time limit.
    pub fn push(&mut self, obs: &[f32], action: &[f32], reward: f32, next_obs: &[f32], done: bool) {
        assert_eq!(obs.len(), self.obs_dim, "observation has the wrong length");
        assert_eq!(next_obs.len(), self.obs_dim, "next observation has the wrong length");
        assert_eq!(action.len(), self.act_dim, "action has the wrong length");
        self.observations.extend_from_slice(obs);
        self.actions.extend_from_slice(action);
        self.rewards.push(reward);
        self.next_observations.extend_from_slice(next_obs);
        self.dones.push(if done { 1.0 } else { 0.0 });
    }

    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Apply `(x - mean) / std` to s and s' (see `Stats::normalizer`).
    pub fn normalize_observations(&mut self, mean: &[f32], std: &[f32]) {
        assert_eq!(mean.len(), self.obs_dim, "mean has the wrong length");
        assert_eq!(std.len(), self.obs_dim, "std has the wrong length");
        normalize_rows(&mut self.observations, mean, std);
        normalize_rows(&mut self.next_observations, mean, std);
    }

    /// Transform every reward, e.g. AntMaze's `(r - 0.5) * 4`.
    pub fn map_rewards(&mut self, f: impl Fn(f32) -> f32) {
        self.rewards.iter_mut().for_each(|r| *r = f(*r));
    }
}

/// The row indices kept, following `d4rl.qlearning_dataset` line by line.
fn selected_rows(data: &Dataset, opts: TransitionOptions) -> Vec<usize> {
    let n = data.len();
    if opts.next_obs == NextObs::Recorded {
        return (0..n).collect();
    }
    let mut rows = Vec::with_capacity(n.saturating_sub(1));
    let mut episode_step = 0usize;
    for i in 0..n.saturating_sub(1) {
        let final_timestep = if data.has_timeouts {
            data.timeouts[i]
        } else {
            opts.max_episode_steps.is_some_and(|max| episode_step + 1 == max)
        };
        if final_timestep {
            episode_step = 0;
            continue;
        }
        // d4rl resets the counter on a terminal and then still counts this step.
        if data.terminals[i] {
            episode_step = 0;
        }
        rows.push(i);
        episode_step += 1;
    }
    rows
}

/// `(x - mean) / std` on every row of a row-major buffer of `mean.len()`-wide rows: the one
/// normalisation used for the data and for what a trained policy observes.
pub fn normalize_rows(buf: &mut [f32], mean: &[f32], std: &[f32]) {
    for row in buf.chunks_exact_mut(mean.len()) {
        for ((x, m), s) in row.iter_mut().zip(mean).zip(std) {
            *x = (*x - m) / s;
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, array};

    use super::*;

    /// Rows 0..6; row 1 is terminal, row 3 is cut by the time limit.
    fn data() -> Dataset {
        let obs = Array2::from_shape_fn((6, 2), |(i, j)| (10 * i + j) as f32);
        let next = Array2::from_shape_fn((6, 2), |(i, j)| (100 + 10 * i + j) as f32);
        Dataset {
            next_observations: Some(next),
            ..Dataset::new(
                obs,
                Array2::from_shape_fn((6, 1), |(i, _)| i as f32),
                Array1::from_iter((0..6).map(|i| i as f32 * 0.5)),
                array![false, true, false, false, false, false],
                array![false, false, false, true, false, false],
            )
        }
    }

    #[test]
    fn shifted_follows_qlearning_dataset() {
        let t = Transitions::from_dataset(&data(), TransitionOptions::default()).unwrap();
        // Row 3 (timeout) and row 5 (last) are dropped.
        assert_eq!(t.actions, vec![0.0, 1.0, 2.0, 4.0]);
        assert_eq!(t.dones, vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(t.rewards, vec![0.0, 0.5, 1.0, 2.0]);
        assert_eq!(&t.next_observations[..2], &[10.0, 11.0]);
        assert_eq!(&t.next_observations[6..], &[50.0, 51.0]);
        assert_eq!(t.next_obs, NextObs::Shifted);
    }

    #[test]
    fn recorded_keeps_every_row_and_uses_the_file_s_prime() {
        let opts = TransitionOptions { next_obs: NextObs::Recorded, ..Default::default() };
        let t = Transitions::from_dataset(&data(), opts).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(&t.next_observations[6..8], &[130.0, 131.0]);
        assert_eq!(t.dones, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let mut no_next = data();
        no_next.next_observations = None;
        let err = Transitions::from_dataset(&no_next, opts).unwrap_err().to_string();
        assert!(err.contains("no `next_observations`"), "{err}");
    }

    #[test]
    fn without_timeouts_the_episode_length_cuts_episodes() {
        let mut d = data();
        d.timeouts.fill(false);
        d.terminals.fill(false);
        d.has_timeouts = false;
        let opts = TransitionOptions { max_episode_steps: Some(2), ..Default::default() };
        let t = Transitions::from_dataset(&d, opts).unwrap();
        // Steps 1 and 3 are each the second step of an episode of length 2.
        assert_eq!(t.actions, vec![0.0, 2.0, 4.0]);
    }

    #[test]
    fn normalisation_and_reward_map_apply_to_every_row() {
        let mut t = Transitions::from_dataset(&data(), TransitionOptions::default()).unwrap();
        t.normalize_observations(&[10.0, 1.0], &[2.0, 1.0]);
        assert_eq!(&t.observations[..4], &[-5.0, 0.0, 0.0, 10.0]);
        t.map_rewards(|r| (r - 0.5) * 4.0);
        assert_eq!(t.rewards[0], -2.0);
    }
}
