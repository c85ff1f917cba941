//! What the evaluation runner asks of a policy, and two reference policies.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A policy acting on a batch: `obs` holds `n` rows of `obs_dim` (row-major, f32), and `act`
/// writes `n` rows of `act_dim` into `actions`. The runner gives one batch per step of its
/// lockstep environments.
pub trait Policy {
    fn obs_dim(&self) -> usize;
    fn act_dim(&self) -> usize;
    fn act(&mut self, obs: &[f32], n: usize, actions: &mut [f32]) -> anyhow::Result<()>;
}

/// All-zero actions: the passive dynamics.
pub struct ZeroPolicy {
    pub obs_dim: usize,
    pub act_dim: usize,
}

impl Policy for ZeroPolicy {
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    fn act_dim(&self) -> usize {
        self.act_dim
    }
    fn act(&mut self, _obs: &[f32], _n: usize, actions: &mut [f32]) -> anyhow::Result<()> {
        actions.fill(0.0);
        Ok(())
    }
}

/// Uniform actions in the actuators' ranges (Gymnasium's `action_space.sample()`), seeded: the
/// random-policy reference return.
pub struct RandomPolicy {
    obs_dim: usize,
    bounds: Vec<(f32, f32)>,
    rng: ChaCha8Rng,
}

impl RandomPolicy {
    pub fn new(obs_dim: usize, bounds: &[(f64, f64)], seed: u64) -> Self {
        let bounds = bounds.iter().map(|&(lo, hi)| (lo as f32, hi as f32)).collect();
        RandomPolicy { obs_dim, bounds, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// For the environment `env`'s dimensions and control ranges.
    pub fn for_env(env: &crate::Env, seed: u64) -> Self {
        Self::new(env.obs_dim(), &env.action_bounds(), seed)
    }
}

impl Policy for RandomPolicy {
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    fn act_dim(&self) -> usize {
        self.bounds.len()
    }
    fn act(&mut self, _obs: &[f32], _n: usize, actions: &mut [f32]) -> anyhow::Result<()> {
        for row in actions.chunks_exact_mut(self.bounds.len()) {
            for (a, &(lo, hi)) in row.iter_mut().zip(&self.bounds) {
                *a = self.rng.random_range(lo..=hi);
            }
        }
        Ok(())
    }
}
