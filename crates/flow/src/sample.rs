//! Samplers (spec section 4): one step of the average velocity, n Euler steps of the
//! instantaneous velocity, and n steps of the average velocity.

use candle_core::{DType, Device, Result, Tensor};
use ofql_nets::VelocityNet;

fn time_col(batch: usize, value: f64, dtype: DType, dev: &Device) -> Result<Tensor> {
    Tensor::full(value, (batch, 1), dev)?.to_dtype(dtype)
}

/// t of the noise end of the path (a_1 = e).
pub const NOISE_TIME: f64 = 1.0;
/// r of one step: straight to the action end (a_0).
pub const ONE_STEP_TO: f64 = 0.0;

/// a = e - u(e, r = 0, t = 1 | s): one network evaluation, differentiable in the network.
/// The compiled form for one observation at a time is [`crate::OneStepPolicy`].
pub fn one_step_sample(net: &VelocityNet, s: &Tensor, noise: &Tensor) -> Result<Tensor> {
    let batch = noise.dim(0)?;
    let r = time_col(batch, ONE_STEP_TO, noise.dtype(), noise.device())?;
    let t = time_col(batch, NOISE_TIME, noise.dtype(), noise.device())?;
    noise - net.forward(noise, &r, &t, s)?
}

/// n Euler steps from t = 1 to 0 along the instantaneous velocity v(a, t) = u(a, t, t):
/// the sampler of a flow-matching model.
pub fn euler_sample(
    net: &VelocityNet,
    s: &Tensor,
    noise: &Tensor,
    n_steps: usize,
) -> Result<Tensor> {
    assert!(n_steps > 0, "at least one Euler step");
    let (batch, dt) = (noise.dim(0)?, 1.0 / n_steps as f64);
    let mut a = noise.clone();
    for i in 0..n_steps {
        let t = time_col(batch, 1.0 - i as f64 * dt, noise.dtype(), noise.device())?;
        a = (&a - (net.forward(&a, &t, &t, s)? * dt)?)?;
    }
    Ok(a)
}

/// n steps of the average velocity, a_r = a_t - (t - r) u(a_t, r, t) on an even grid;
/// n = 1 is [`one_step_sample`].
pub fn mean_flow_sample(
    net: &VelocityNet,
    s: &Tensor,
    noise: &Tensor,
    n_steps: usize,
) -> Result<Tensor> {
    assert!(n_steps > 0, "at least one step");
    let (batch, dt) = (noise.dim(0)?, 1.0 / n_steps as f64);
    let mut a = noise.clone();
    for i in 0..n_steps {
        let t = time_col(batch, 1.0 - i as f64 * dt, noise.dtype(), noise.device())?;
        let r =
            time_col(batch, (1.0 - (i + 1) as f64 * dt).max(0.0), noise.dtype(), noise.device())?;
        a = (&a - (net.forward(&a, &r, &t, s)? * dt)?)?;
    }
    Ok(a)
}

/// Clamp to the action bounds (D4RL: [-1, 1]).
pub fn clamp_actions(a: &Tensor, low: f64, high: f64) -> Result<Tensor> {
    a.clamp(low, high)
}
