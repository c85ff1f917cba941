//! Transitions gathered step by step into a D4RL-layout dataset, for the generators whose
//! episodes end by a time limit or the end of a script (never by a terminal state).

use anyhow::Result;
use ndarray::{Array1, Array2};
use ofql_data::Dataset;

pub(crate) struct Rows {
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    next: Vec<f32>,
    acts: Vec<f32>,
    rewards: Vec<f32>,
    timeouts: Vec<bool>,
}

impl Rows {
    pub(crate) fn new(obs_dim: usize, act_dim: usize) -> Self {
        Rows {
            obs_dim,
            act_dim,
            obs: vec![],
            next: vec![],
            acts: vec![],
            rewards: vec![],
            timeouts: vec![],
        }
    }

    pub(crate) fn push(
        &mut self,
        o: &[f64],
        next: &[f64],
        action: &[f32],
        reward: f64,
        timeout: bool,
    ) {
        self.obs.extend(o.iter().map(|&x| x as f32));
        self.next.extend(next.iter().map(|&x| x as f32));
        self.acts.extend_from_slice(action);
        self.rewards.push(reward as f32);
        self.timeouts.push(timeout);
    }

    /// Cut an episode at the last row; false when it was already cut there (or there is none).
    pub(crate) fn cut_last(&mut self) -> bool {
        match self.timeouts.last_mut() {
            Some(last) if !*last => {
                *last = true;
                true
            }
            _ => false,
        }
    }

    /// The sum of the rewards as stored (f32).
    pub(crate) fn reward_sum(&self) -> f64 {
        self.rewards.iter().map(|&r| r as f64).sum()
    }

    pub(crate) fn into_dataset(self) -> Result<Dataset> {
        let n = self.rewards.len();
        let mut data = Dataset::new(
            Array2::from_shape_vec((n, self.obs_dim), self.obs)?,
            Array2::from_shape_vec((n, self.act_dim), self.acts)?,
            Array1::from(self.rewards),
            Array1::from(vec![false; n]),
            Array1::from(self.timeouts),
        );
        data.next_observations = Some(Array2::from_shape_vec((n, self.obs_dim), self.next)?);
        Ok(data)
    }
}
