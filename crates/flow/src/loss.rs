//! The flow behaviour-cloning loss L_FBC (MeanFlow, spec section 3) and the conditional
//! flow-matching baseline.

use std::ops::Range;

use candle_core::{DType, Device, Result, Tensor};
use ofql_nets::VelocityNet;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::time::{TimeDist, sample_t_r};
use ofql_nets::gaussian;

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

/// The random part of one MeanFlow loss evaluation: (t, r) for each row, then the noise e,
/// drawn in that order. Drawn apart from the loss so an update can draw everything first and
/// then evaluate the loss on parts of the batch (one per thread) with [`MeanFlowDraw::rows`].
#[derive(Debug, Clone)]
pub struct MeanFlowDraw {
    t: Tensor,
    r: Tensor,
    e: Tensor,
}

impl MeanFlowDraw {
    /// Steps 1-2 of the spec: (t, r) and e ~ N(0, I) for `batch` rows of `act_dim` actions.
    pub fn new<R: Rng>(
        batch: usize,
        act_dim: usize,
        cfg: &MeanFlowConfig,
        dtype: DType,
        dev: &Device,
        rng: &mut R,
    ) -> Result<MeanFlowDraw> {
        let (t, r) = sample_t_r(&cfg.time_dist, cfg.flow_ratio, batch, rng);
        let col = |x: Vec<f32>| Tensor::from_vec(x, (batch, 1), dev)?.to_dtype(dtype);
        let (t, r) = (col(t)?, col(r)?);
        let e = gaussian(rng, batch, act_dim, 1.0, dtype, dev)?;
        Ok(MeanFlowDraw { t, r, e })
    }

    /// The rows `rows` of this draw.
    pub fn rows(&self, rows: Range<usize>) -> Result<MeanFlowDraw> {
        let part = |x: &Tensor| x.narrow(0, rows.start, rows.len());
        Ok(MeanFlowDraw { t: part(&self.t)?, r: part(&self.r)?, e: part(&self.e)? })
    }

    /// a_t = (1 - t) a + t e and v = e - a.
    fn interpolate(&self, a: &Tensor) -> Result<(Tensor, Tensor)> {
        let a = a.detach();
        let v = (&self.e - &a)?;
        let a_t = (&a + v.broadcast_mul(&self.t)?)?;
        Ok((a_t, v))
    }
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar()
}

/// The MeanFlow loss's squared errors (u(a_t, r, t | s) - sg(v - (t - r) du/dt))^2 summed
/// over rows and action dims, differentiable in the network, for a given draw; with du/dt
/// (the JVP along (a_t: v, r: 0, t: 1, s: 0)) and t - r. The loss is this sum over the
/// element count; an update split over threads adds the parts' sums first.
pub fn meanflow_sq_error(
    net: &VelocityNet,
    s: &Tensor,
    a: &Tensor,
    draw: &MeanFlowDraw,
) -> Result<(Tensor, Tensor, Tensor)> {
    let MeanFlowDraw { t, r, .. } = draw;
    let (a_t, v) = draw.interpolate(a)?;
    let (ones, zeros) = (t.ones_like()?, t.zeros_like()?);
    let (u, du_dt) = net.forward_and_tangent(&a_t, r, t, s, &v, &zeros, &ones)?;
    let gap = (t - r)?;
    let target = (&v - du_dt.broadcast_mul(&gap)?)?.detach();
    let sum = (u - target)?.sqr()?.sum_all()?;
    Ok((sum, du_dt, gap))
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
    let (batch, act_dim) = a.dims2()?;
    let draw = MeanFlowDraw::new(batch, act_dim, cfg, a.dtype(), a.device(), rng)?;
    let (sum, du_dt, gap) = meanflow_sq_error(net, s, a, &draw)?;
    let loss = (sum / (batch * act_dim) as f64)?;
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
    let (batch, act_dim) = a.dims2()?;
    let draw = MeanFlowDraw::new(batch, act_dim, &cfg, a.dtype(), a.device(), rng)?;
    let (a_t, v) = draw.interpolate(a)?;
    let u = net.forward(&a_t, &draw.r, &draw.t, s)?;
    let loss = (u - v)?.sqr()?.mean_all()?;
    let stats = LossStats { loss: scalar(&loss)?, mean_gap: 0.0, dudt_rms: 0.0 };
    Ok((loss, stats))
}
