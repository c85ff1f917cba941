//! Sinusoidal time embedding followed by a small MLP (spec section 2), tangent-carrying.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;

use crate::mlp::{Kernels, Mlp};
use crate::params::NamedVars;

/// emb(x) = MLP([cos(k x f), sin(k x f)]), f_j = 10000^(-j / (dim / 2)).
#[derive(Debug)]
pub struct TimeEmbedding {
    /// k * f_j as a (1, dim / 2) row.
    scaled_freqs: Tensor,
    mlp: Mlp,
}

impl TimeEmbedding {
    /// `dim` sinusoid features (even), MLP dim -> hidden -> Mish -> dim, time scale k.
    pub fn new<R: Rng>(
        dim: usize,
        hidden: usize,
        time_scale: f64,
        dtype: DType,
        dev: &Device,
        rng: &mut R,
    ) -> Result<TimeEmbedding> {
        assert!(dim >= 2 && dim.is_multiple_of(2), "time embedding size {dim} must be even");
        let half = dim / 2;
        let freqs: Vec<f64> =
            (0..half).map(|j| time_scale * 10000f64.powf(-(j as f64) / half as f64)).collect();
        let scaled_freqs = Tensor::from_vec(freqs, (1, half), dev)?.to_dtype(dtype)?;
        let mlp = Mlp::new(&[dim, hidden, dim], dtype, dev, rng)?;
        Ok(TimeEmbedding { scaled_freqs, mlp })
    }

    pub fn deep_clone(&self) -> Result<TimeEmbedding> {
        Ok(TimeEmbedding { scaled_freqs: self.scaled_freqs.clone(), mlp: self.mlp.deep_clone()? })
    }

    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.mlp.set_kernels(kernels);
    }

    pub fn out_dim(&self) -> usize {
        self.mlp.out_dim()
    }

    /// The sinusoid features of t, shape (N, 1) -> (N, dim). Constant in theta.
    pub fn sinusoid(&self, t: &Tensor) -> Result<Tensor> {
        let phase = t.broadcast_mul(&self.scaled_freqs)?;
        Tensor::cat(&[phase.cos()?, phase.sin()?], 1)
    }

    /// emb(t) with the autodiff graph (t itself carries no gradient).
    pub fn forward(&self, t: &Tensor) -> Result<Tensor> {
        self.mlp.forward(&self.sinusoid(&t.detach())?)
    }

    /// (emb(t) with the autodiff graph, d emb/dt * t_dot without one).
    pub fn forward_and_tangent(&self, t: &Tensor, t_dot: &Tensor) -> Result<(Tensor, Tensor)> {
        let (feat, feat_dot) = self.sinusoid_with_tangent(t, t_dot)?;
        self.mlp.forward_and_tangent(&feat, &feat_dot)
    }

    /// The sinusoid features of t and their tangent: d/dt [cos, sin](k t f) = [-sin, cos] * k f.
    fn sinusoid_with_tangent(&self, t: &Tensor, t_dot: &Tensor) -> Result<(Tensor, Tensor)> {
        let phase = t.detach().broadcast_mul(&self.scaled_freqs)?;
        let (cos, sin) = (phase.cos()?, phase.sin()?);
        let feat = Tensor::cat(&[&cos, &sin], 1)?;
        let d_phase = t_dot.detach().broadcast_mul(&self.scaled_freqs)?;
        let feat_dot = Tensor::cat(&[(sin.neg()? * &d_phase)?, (cos * d_phase)?], 1)?;
        Ok((feat, feat_dot))
    }
}

impl NamedVars for TimeEmbedding {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        self.mlp.named_vars()
    }
}
