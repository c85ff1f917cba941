//! A velocity network compiled for one-step decisions: u(a_1, r = 0, t = 1 | s) on plain f32
//! slices, for one observation at a time (deployment, `ofql bench`'s decisions), with one
//! noise vector or K of them (the candidates of the Q-softmax protocol).
//!
//! The time embeddings of t = 1 and r = 0 are constants, so their share of the first layer is
//! folded into its bias once (the first layer then reads A + S inputs instead of
//! A + S + 2 * time_dim); with K candidates the observation's share is computed once too.
//! The rule is [`crate::sample::one_step_sample`]'s, on slices instead of tensors; see
//! `ofql_nets::CompiledMlp` for the layers.

use candle_core::{DType, Device, Result, Tensor};
use ofql_nets::{CompiledMlp, VelocityNet};

use crate::sample::{NOISE_TIME, ONE_STEP_TO};

/// u(., r = 0, t = 1 | .) of a [`VelocityNet`], frozen at the moment it was compiled.
#[derive(Debug, Clone)]
pub struct OneStepPolicy {
    obs_dim: usize,
    act_dim: usize,
    mlp: CompiledMlp,
    /// [noise, obs], the single-sample input.
    input: Vec<f32>,
}

impl OneStepPolicy {
    /// Compile `net` (f32 or f64 weights; computed in f32).
    pub fn new(net: &VelocityNet) -> Result<OneStepPolicy> {
        let cfg = net.config();
        let dev = Device::Cpu;
        let col = |v: f64| Tensor::full(v, (1, 1), &dev)?.to_dtype(net.dtype());
        // [emb(t = 1), emb(r = 0)], the constant tail of the first layer's input.
        let emb = net.time_embeddings(&col(NOISE_TIME)?, &col(ONE_STEP_TO)?)?;
        let emb: Vec<f32> = emb.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mlp = CompiledMlp::new(net.mlp().layers(), &emb)?;
        let input = vec![0.0; cfg.act_dim + cfg.obs_dim];
        Ok(OneStepPolicy { obs_dim: cfg.obs_dim, act_dim: cfg.act_dim, mlp, input })
    }

    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// a = noise - u(noise, 0, 1 | obs), the one-step sample (not clamped).
    pub fn sample(&mut self, obs: &[f32], noise: &[f32], action: &mut [f32]) {
        assert_eq!(obs.len(), self.obs_dim, "observation size");
        assert_eq!(noise.len(), self.act_dim, "noise size");
        assert_eq!(action.len(), self.act_dim, "action size");
        self.input[..self.act_dim].copy_from_slice(noise);
        self.input[self.act_dim..].copy_from_slice(obs);
        let u = self.mlp.forward_one(&self.input);
        for ((a, z), u) in action.iter_mut().zip(noise).zip(u) {
            *a = z - u;
        }
    }

    /// One sample per row of `noise` (K x act_dim), all for the observation `obs`, into
    /// `actions` (K x act_dim; not clamped).
    pub fn sample_many(&mut self, obs: &[f32], noise: &[f32], actions: &mut [f32]) {
        let a = self.act_dim;
        assert_eq!(obs.len(), self.obs_dim, "observation size");
        assert!(noise.len().is_multiple_of(a.max(1)), "noise size");
        assert_eq!(actions.len(), noise.len(), "actions size");
        let k = noise.len() / a.max(1);
        let u = self.mlp.forward_rows(noise, 0..a, obs, a..a + self.obs_dim, k);
        for ((a, z), u) in actions.iter_mut().zip(noise).zip(u) {
            *a = z - u;
        }
    }
}
