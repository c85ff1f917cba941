//! Diffusion-QL's policy (Wang et al., 2023), as its code does it: the VP noise schedule, the
//! noise-prediction loss at a uniform random step, and ancestral sampling from x_T ~ N(0, I)
//! with the predicted x_0 clipped to [-1, 1] and no noise at the last step.
//!
//! All the noise of a sample is given, as (n, T * act_dim) columns: x_T first, then the noise
//! of steps T-1, ..., 1 (step 0 adds none). Sampling is differentiable in the network, so the
//! Q term of DQL's actor loss back-propagates through the whole chain.

use candle_core::{DType, Device, Result, Tensor};
use ofql_nets::{CompiledMlp, NoiseNet, gaussian};
use rand::Rng;

/// The VP schedule's constants for T steps (DQL's `vp_beta_schedule`, b_min 0.1, b_max 10),
/// and the posterior coefficients of DDPM's reverse step.
#[derive(Debug, Clone)]
pub struct VpSchedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    /// sqrt(abar_t) and sqrt(1 - abar_t): the forward process x_t = sqrt(abar) x_0 + sqrt(1 - abar) e.
    pub sqrt_alphas_cumprod: Vec<f64>,
    pub sqrt_one_minus_alphas_cumprod: Vec<f64>,
    /// x_0 = sqrt(1 / abar) x_t - sqrt(1 / abar - 1) e.
    pub sqrt_recip_alphas_cumprod: Vec<f64>,
    pub sqrt_recipm1_alphas_cumprod: Vec<f64>,
    /// mean = coef1 x_0 + coef2 x_t; std = exp(0.5 log variance), variance clipped at 1e-20.
    pub posterior_mean_coef1: Vec<f64>,
    pub posterior_mean_coef2: Vec<f64>,
    pub posterior_std: Vec<f64>,
}

impl VpSchedule {
    pub fn new(steps: usize) -> VpSchedule {
        assert!(steps > 0, "a diffusion needs at least one step");
        let t_max = steps as f64;
        let (b_min, b_max) = (0.1, 10.0);
        let betas: Vec<f64> = (1..=steps)
            .map(|t| {
                let t = t as f64;
                1.0 - (-b_min / t_max - 0.5 * (b_max - b_min) * (2.0 * t - 1.0) / (t_max * t_max))
                    .exp()
            })
            .collect();
        let mut alphas_cumprod = Vec::with_capacity(steps);
        let mut acc = 1.0;
        for b in &betas {
            acc *= 1.0 - b;
            alphas_cumprod.push(acc);
        }
        let prev = |i: usize| if i == 0 { 1.0 } else { alphas_cumprod[i - 1] };
        let each = |f: &dyn Fn(usize) -> f64| (0..steps).map(f).collect::<Vec<f64>>();
        let variance = |i: usize| betas[i] * (1.0 - prev(i)) / (1.0 - alphas_cumprod[i]);
        VpSchedule {
            sqrt_alphas_cumprod: each(&|i| alphas_cumprod[i].sqrt()),
            sqrt_one_minus_alphas_cumprod: each(&|i| (1.0 - alphas_cumprod[i]).sqrt()),
            sqrt_recip_alphas_cumprod: each(&|i| (1.0 / alphas_cumprod[i]).sqrt()),
            sqrt_recipm1_alphas_cumprod: each(&|i| (1.0 / alphas_cumprod[i] - 1.0).sqrt()),
            posterior_mean_coef1: each(&|i| betas[i] * prev(i).sqrt() / (1.0 - alphas_cumprod[i])),
            posterior_mean_coef2: each(&|i| {
                (1.0 - prev(i)) * (1.0 - betas[i]).sqrt() / (1.0 - alphas_cumprod[i])
            }),
            posterior_std: each(&|i| (0.5 * variance(i).max(1e-20).ln()).exp()),
            betas,
            alphas_cumprod,
        }
    }

    pub fn steps(&self) -> usize {
        self.betas.len()
    }
}

/// The random part of one noise-prediction loss: a step per row, then the noise.
#[derive(Debug, Clone)]
pub struct DiffusionDraw {
    pub steps: Vec<usize>,
    pub noise: Tensor,
}

impl DiffusionDraw {
    pub fn new<R: Rng>(
        rows: usize,
        act_dim: usize,
        schedule: &VpSchedule,
        dtype: DType,
        dev: &Device,
        rng: &mut R,
    ) -> Result<DiffusionDraw> {
        let steps = (0..rows).map(|_| rng.random_range(0..schedule.steps())).collect();
        let noise = gaussian(rng, rows, act_dim, 1.0, dtype, dev)?;
        Ok(DiffusionDraw { steps, noise })
    }
}

/// A per-row column of `values[step]`, shape (n, 1).
fn column(values: &[f64], steps: &[usize], dtype: DType, dev: &Device) -> Result<Tensor> {
    let v: Vec<f64> = steps.iter().map(|&i| values[i]).collect();
    Tensor::from_vec(v, (steps.len(), 1), dev)?.to_dtype(dtype)
}

/// mean over rows and action dimensions of (eps(x_t, t | s) - e)^2, x_t the data action
/// noised to the drawn step (DQL's `p_losses` with unit weights).
pub fn noise_prediction_loss(
    net: &NoiseNet,
    schedule: &VpSchedule,
    s: &Tensor,
    a: &Tensor,
    draw: &DiffusionDraw,
) -> Result<Tensor> {
    let (dtype, dev) = (a.dtype(), a.device());
    let keep = column(&schedule.sqrt_alphas_cumprod, &draw.steps, dtype, dev)?;
    let add = column(&schedule.sqrt_one_minus_alphas_cumprod, &draw.steps, dtype, dev)?;
    let x_t = (a.broadcast_mul(&keep)? + draw.noise.broadcast_mul(&add)?)?;
    let t = Tensor::from_vec(
        draw.steps.iter().map(|&i| i as f64).collect::<Vec<_>>(),
        (draw.steps.len(), 1),
        dev,
    )?
    .to_dtype(dtype)?;
    (net.forward(&x_t, &t, s)? - &draw.noise)?.sqr()?.mean_all()
}

/// Ancestral sampling from the given noise (n, T * act_dim), actions clipped to [-1, 1];
/// differentiable in the network.
pub fn diffusion_sample(
    net: &NoiseNet,
    schedule: &VpSchedule,
    s: &Tensor,
    noise: &Tensor,
) -> Result<Tensor> {
    let a = net.config().act_dim;
    let (n, steps) = (noise.dim(0)?, schedule.steps());
    let mut x = noise.narrow(1, 0, a)?;
    for (k, i) in (0..steps).rev().enumerate() {
        let t = Tensor::full(i as f64, (n, 1), noise.device())?.to_dtype(noise.dtype())?;
        let eps = net.forward(&x, &t, s)?;
        let x0 = ((&x * schedule.sqrt_recip_alphas_cumprod[i])?
            - (eps * schedule.sqrt_recipm1_alphas_cumprod[i])?)?
            .clamp(-1.0, 1.0)?;
        let mean =
            ((x0 * schedule.posterior_mean_coef1[i])? + (&x * schedule.posterior_mean_coef2[i])?)?;
        x = if i > 0 {
            let z = noise.narrow(1, (k + 1) * a, a)?;
            (mean + (z * schedule.posterior_std[i])?)?
        } else {
            mean
        };
    }
    x.clamp(-1.0, 1.0)
}

/// [`diffusion_sample`] compiled for one observation at a time: the network compiled once,
/// with one first-layer bias per step (its time embedding folded in), on plain f32 slices.
#[derive(Debug, Clone)]
pub struct CompiledDiffusion {
    mlp: CompiledMlp,
    /// The first layer's bias at each step.
    biases: Vec<Vec<f32>>,
    schedule: VpSchedule,
    obs_dim: usize,
    act_dim: usize,
    x: Vec<f32>,
    input: Vec<f32>,
}

impl CompiledDiffusion {
    pub fn new(net: &NoiseNet, schedule: &VpSchedule) -> Result<CompiledDiffusion> {
        let cfg = net.config();
        let (mlp, biases) = net.compile_steps(schedule.steps())?;
        Ok(CompiledDiffusion {
            mlp,
            biases,
            schedule: schedule.clone(),
            obs_dim: cfg.obs_dim,
            act_dim: cfg.act_dim,
            x: vec![],
            input: vec![0.0; cfg.act_dim + cfg.obs_dim],
        })
    }

    /// One action per `T * act_dim` block of `noise`, all for the observation `obs`, into
    /// `actions` (clipped to [-1, 1]).
    pub fn sample_many(&mut self, obs: &[f32], noise: &[f32], actions: &mut [f32]) {
        let (a, steps) = (self.act_dim, self.schedule.steps());
        assert_eq!(obs.len(), self.obs_dim, "observation size");
        let k = actions.len() / a.max(1);
        assert_eq!(noise.len(), k * steps * a, "noise size");
        // x_T of every candidate, row by row.
        self.x.clear();
        for c in 0..k {
            self.x.extend_from_slice(&noise[c * steps * a..c * steps * a + a]);
        }
        let s = &self.schedule;
        for (j, i) in (0..steps).rev().enumerate() {
            self.mlp.set_first_bias(&self.biases[i]);
            let eps = if k == 1 {
                self.input[..a].copy_from_slice(&self.x);
                self.input[a..].copy_from_slice(obs);
                self.mlp.forward_one(&self.input)
            } else {
                self.mlp.forward_rows(&self.x, 0..a, obs, a..a + self.obs_dim, k)
            };
            let (r, m1) =
                (s.sqrt_recip_alphas_cumprod[i] as f32, s.sqrt_recipm1_alphas_cumprod[i] as f32);
            let (c1, c2) = (s.posterior_mean_coef1[i] as f32, s.posterior_mean_coef2[i] as f32);
            let std = s.posterior_std[i] as f32;
            for (idx, (x, e)) in self.x.iter_mut().zip(eps).enumerate() {
                let x0 = (*x * r - e * m1).clamp(-1.0, 1.0);
                let mean = x0 * c1 + *x * c2;
                *x = if i > 0 {
                    let (c, col) = (idx / a, idx % a);
                    mean + noise[c * steps * a + (j + 1) * a + col] * std
                } else {
                    mean
                };
            }
        }
        for (out, x) in actions.iter_mut().zip(&self.x) {
            *out = x.clamp(-1.0, 1.0);
        }
    }
}
