//! The flow behaviour-cloning loss L_FBC (MeanFlow, spec section 3) and the conditional
//! flow-matching baseline.

use candle_core::{DType, Result, Tensor};
use ofql_nets::VelocityNet;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::noise::gaussian;
use crate::time::{TimeDist, sample_t_r};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeanFlowConfig {
    /// P(t = r): the share of rows trained as plain flow matching. 1 is flow matching.
    pub flow_ratio: f64,
    pub time_dist: TimeDist,
}

impl Default for MeanFlowConfig {
    fn default() -> Self {
        MeanFlowConfig { flow_ratio: 0.5, time_dist: TimeDist::default() }
    }
}

/// Diagnostics of one loss evaluation (cheap reductions; f64 for logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LossStats {
    pub loss: f64,
    /// Mean of t - r over the batch.
    pub mean_gap: f64,
    /// Root mean square of du/dt: the term that explodes when the time scale k is large.
    pub dudt_rms: f64,
}

struct Interpolated {
    t: Tensor,
    r: Tensor,
    a_t: Tensor,
    v: Tensor,
}

/// Steps 1-2 of the spec: (t, r), noise e, a_t = (1 - t) a + t e, v = e - a.
fn interpolate<R: Rng>(a: &Tensor, cfg: &MeanFlowConfig, rng: &mut R) -> Result<Interpolated> {
    let (batch, act_dim) = a.dims2()?;
    let (t, r) = sample_t_r(&cfg.time_dist, cfg.flow_ratio, batch, rng);
    let col = |x: Vec<f32>| Tensor::from_vec(x, (batch, 1), a.device())?.to_dtype(a.dtype());
    let (t, r) = (col(t)?, col(r)?);
    let e = gaussian(rng, batch, act_dim, 1.0, a.dtype(), a.device())?;
    let a = a.detach();
    let v = (&e - &a)?;
    let a_t = (&a + v.broadcast_mul(&t)?)?;
    Ok(Interpolated { t, r, a_t, v })
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar()
}

/// L_FBC = mean over batch and action dims of (u(a_t, r, t | s) - sg(v - (t - r) du/dt))^2,
/// where du/dt is the JVP along (a_t: v, r: 0, t: 1, s: 0). Differentiable in the network.
pub fn meanflow_loss<R: Rng>(
    net: &VelocityNet,
    s: &Tensor,
    a: &Tensor,
    cfg: &MeanFlowConfig,
    rng: &mut R,
) -> Result<(Tensor, LossStats)> {
    let Interpolated { t, r, a_t, v } = interpolate(a, cfg, rng)?;
    let (ones, zeros) = (t.ones_like()?, t.zeros_like()?);
    let (_, du_dt) = net.forward_with_tangent(&a_t, &r, &t, s, &v, &zeros, &ones)?;
    let gap = (&t - &r)?;
    let target = (&v - du_dt.broadcast_mul(&gap)?)?.detach();
    let u = net.forward(&a_t, &r, &t, s)?;
    let loss = (u - target)?.sqr()?.mean_all()?;
    let stats = LossStats {
        loss: scalar(&loss)?,
        mean_gap: scalar(&gap.mean_all()?)?,
        dudt_rms: scalar(&du_dt.sqr()?.mean_all()?)?.sqrt(),
    };
    Ok((loss, stats))
}

/// Conditional flow matching: the same loss with r = t on every row (lambda = 1), where the
/// target is v and no tangent pass is needed. Draws from `rng` exactly as
/// `meanflow_loss` with flow_ratio = 1 does, so the two agree given the same seed.
pub fn flow_matching_loss<R: Rng>(
    net: &VelocityNet,
    s: &Tensor,
    a: &Tensor,
    time_dist: &TimeDist,
    rng: &mut R,
) -> Result<(Tensor, LossStats)> {
    let cfg = MeanFlowConfig { flow_ratio: 1.0, time_dist: *time_dist };
    let Interpolated { t, r, a_t, v } = interpolate(a, &cfg, rng)?;
    let u = net.forward(&a_t, &r, &t, s)?;
    let loss = (u - v)?.sqr()?.mean_all()?;
    let stats = LossStats { loss: scalar(&loss)?, mean_gap: 0.0, dudt_rms: 0.0 };
    Ok((loss, stats))
}
