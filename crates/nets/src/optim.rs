//! Adam (PyTorch's update rule) whose state can be saved and restored, global-norm gradient
//! clipping and the cosine learning-rate schedule. candle-nn's AdamW cannot export its state.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::mlp::Kernels;
use crate::simd::{Kernel, run};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled (AdamW) weight decay; 0 is plain Adam.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// Adam over a fixed list of named parameters.
pub struct Adam {
    cfg: AdamConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    kernels: Kernels,
}

impl Adam {
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Adam> {
        let zeros = |v: &Var| v.zeros_like();
        let m = vars.iter().map(|(_, v)| zeros(v)).collect::<Result<_>>()?;
        let v = vars.iter().map(|(_, v)| zeros(v)).collect::<Result<_>>()?;
        Ok(Adam { cfg, vars, m, v, step: 0, kernels: Kernels::Fused })
    }

    /// `Fused`: one pass over (theta, g, m, v) per parameter on the CPU; `Unfused`: candle ops.
    pub fn with_kernels(mut self, kernels: Kernels) -> Adam {
        self.kernels = kernels;
        self
    }

    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    /// For schedules: the next `step` uses this rate.
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// Number of updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// One update from the gradients in `grads`; parameters without a gradient are left as is
    /// (their moments too), as PyTorch does.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let AdamConfig { lr, beta1, beta2, eps, weight_decay } = self.cfg;
        let t = self.step as i32;
        let step_size = lr / (1.0 - beta1.powi(t));
        let sqrt_bc2 = (1.0 - beta2.powi(t)).sqrt();
        // Each parameter's update is independent of the others: with several rayon threads
        // they are computed side by side (the same numbers), then written in order.
        let fused =
            FusedAdam { beta1, beta2, eps, step_size, sqrt_bc2, decay: 1.0 - lr * weight_decay };
        let update = |i: usize| -> Result<Option<(Tensor, Tensor, Tensor)>> {
            let var = &self.vars[i].1;
            let Some(g) = grads.get(var.as_tensor()) else { return Ok(None) };
            let theta = var.as_detached_tensor();
            if self.kernels == Kernels::Fused
                && let Some(new) = fused.apply(&theta, g, &self.m[i], &self.v[i])?
            {
                return Ok(Some(new));
            }
            let m = ((&self.m[i] * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((&self.v[i] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((v.sqrt()? / sqrt_bc2)? + eps)?;
            let theta =
                if weight_decay != 0.0 { (theta * (1.0 - lr * weight_decay))? } else { theta };
            Ok(Some(((theta - ((&m / denom)? * step_size)?)?, m, v)))
        };
        let updates: Vec<_> = if rayon::current_num_threads() > 1 {
            (0..self.vars.len()).into_par_iter().map(update).collect()
        } else {
            (0..self.vars.len()).map(update).collect()
        };
        for (i, new) in updates.into_iter().enumerate() {
            if let Some((theta, m, v)) = new? {
                self.vars[i].1.set(&theta)?;
                self.m[i] = m;
                self.v[i] = v;
            }
        }
        Ok(())
    }

    /// The optimiser state as named tensors: `{prefix}.m.{name}`, `{prefix}.v.{name}` and
    /// `{prefix}.step` (a u32 pair holding the 64-bit step count).
    pub fn state_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(2 * self.vars.len() + 1);
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("{prefix}.m.{name}"), self.m[i].copy()?));
            out.push((format!("{prefix}.v.{name}"), self.v[i].copy()?));
        }
        let step = [(self.step & 0xffff_ffff) as u32, (self.step >> 32) as u32];
        out.push((format!("{prefix}.step"), Tensor::new(&step, &Device::Cpu)?));
        Ok(out)
    }

    /// Restore what [`Adam::state_tensors`] wrote. Errors name the missing or mismatched tensor.
    pub fn load_state(&mut self, prefix: &str, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let fetch = |key: String, like: &Var| -> Result<Tensor> {
            let Some(t) = tensors.get(&key) else {
                candle_core::bail!("optimiser state tensor `{key}` is missing from the checkpoint")
            };
            if t.dims() != like.dims() || t.dtype() != like.dtype() {
                candle_core::bail!(
                    "optimiser state tensor `{key}` is {:?} {:?}, the model needs {:?} {:?}",
                    t.dtype(),
                    t.dims(),
                    like.dtype(),
                    like.dims()
                );
            }
            t.to_device(like.device())
        };
        let mut m = Vec::with_capacity(self.vars.len());
        let mut v = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            m.push(fetch(format!("{prefix}.m.{name}"), var)?);
            v.push(fetch(format!("{prefix}.v.{name}"), var)?);
        }
        let key = format!("{prefix}.step");
        let step = match tensors.get(&key) {
            Some(t) if t.dtype() == DType::U32 && t.dims() == [2] => {
                let s = t.to_vec1::<u32>()?;
                s[0] as u64 | (s[1] as u64) << 32
            }
            Some(t) => {
                candle_core::bail!("`{key}` is {:?} {:?}, expected u32 [2]", t.dtype(), t.dims())
            }
            None => {
                candle_core::bail!("optimiser state tensor `{key}` is missing from the checkpoint")
            }
        };
        (self.m, self.v, self.step) = (m, v, step);
        Ok(())
    }
}

/// Adam's update in one loop: m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2,
/// theta' = decay theta - step_size m' / (sqrt(v') / sqrt_bc2 + eps). Ten candle ops (ten
/// buffers) per parameter become one pass.
struct FusedAdam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    step_size: f64,
    sqrt_bc2: f64,
    decay: f64,
}

impl FusedAdam {
    /// None when the tensors are not contiguous CPU f32/f64 of one shape (then use candle ops).
    fn apply(
        &self,
        theta: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
    ) -> Result<Option<(Tensor, Tensor, Tensor)>> {
        use candle_core::{CpuStorage, Storage};
        let all = [theta, g, m, v];
        if all.iter().any(|t| t.dims() != theta.dims() || t.dtype() != theta.dtype()) {
            return Ok(None);
        }
        let guards: Vec<_> = all.iter().map(|t| t.storage_and_layout()).collect();
        let mut slices_f32 = Vec::new();
        let mut slices_f64 = Vec::new();
        for (storage, layout) in &guards {
            let Some((start, end)) = layout.contiguous_offsets() else { return Ok(None) };
            match &**storage {
                Storage::Cpu(CpuStorage::F32(x)) => slices_f32.push(&x[start..end]),
                Storage::Cpu(CpuStorage::F64(x)) => slices_f64.push(&x[start..end]),
                _ => return Ok(None),
            }
        }
        let (shape, dev) = (theta.shape().clone(), theta.device().clone());
        let out = if slices_f32.len() == 4 {
            let [t, g, m, v] = [slices_f32[0], slices_f32[1], slices_f32[2], slices_f32[3]];
            let (t, m, v) = run(AdamKernel { c: self, theta: t, g, m, v });
            (
                Tensor::from_vec(t, shape.clone(), &dev)?,
                Tensor::from_vec(m, shape.clone(), &dev)?,
                Tensor::from_vec(v, shape, &dev)?,
            )
        } else if slices_f64.len() == 4 {
            let [t, g, m, v] = [slices_f64[0], slices_f64[1], slices_f64[2], slices_f64[3]];
            let (t, m, v) = run(AdamKernel { c: self, theta: t, g, m, v });
            (
                Tensor::from_vec(t, shape.clone(), &dev)?,
                Tensor::from_vec(m, shape.clone(), &dev)?,
                Tensor::from_vec(v, shape, &dev)?,
            )
        } else {
            return Ok(None);
        };
        Ok(Some(out))
    }
}

/// The loop of [`FusedAdam`] over one parameter, compiled per vector unit (crate::simd).
/// Outputs are pre-sized (no push) so it vectorises; the arithmetic is the scalar formula's,
/// element by element, so every variant rounds alike.
struct AdamKernel<'a, T> {
    c: &'a FusedAdam,
    theta: &'a [T],
    g: &'a [T],
    m: &'a [T],
    v: &'a [T],
}

macro_rules! adam_kernel {
    ($t:ty) => {
        impl Kernel for AdamKernel<'_, $t> {
            type Output = (Vec<$t>, Vec<$t>, Vec<$t>);
            #[inline(always)]
            fn run(self, _fma: bool) -> Self::Output {
                let c = self.c;
                let (b1, b2, eps) = (c.beta1 as $t, c.beta2 as $t, c.eps as $t);
                let (step, inv_bc2, decay) =
                    (c.step_size as $t, (1.0 / c.sqrt_bc2) as $t, c.decay as $t);
                let n = self.theta.len();
                let (mut t_out, mut m_out, mut v_out) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                let outs = t_out.iter_mut().zip(m_out.iter_mut()).zip(v_out.iter_mut());
                let ins = self.theta.iter().zip(self.g).zip(self.m.iter().zip(self.v));
                for (((t_o, m_o), v_o), ((&theta, &g), (&m, &v))) in outs.zip(ins) {
                    let mi = b1 * m + (1.0 - b1) * g;
                    let vi = b2 * v + (1.0 - b2) * g * g;
                    *t_o = decay * theta - step * mi / (vi.sqrt() * inv_bc2 + eps);
                    *m_o = mi;
                    *v_o = vi;
                }
                (t_out, m_out, v_out)
            }
        }
    };
}
adam_kernel!(f32);
adam_kernel!(f64);

/// Scale all gradients of `vars` so their global L2 norm is at most `max_norm` (PyTorch's
/// clip_grad_norm_: factor max_norm / (norm + 1e-6) when norm > max_norm). Returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sq = 0.0;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * factor)?);
            }
        }
    }
    Ok(norm)
}

/// Cosine decay from `base` at step 0 to `min` at `total` (PyTorch's CosineAnnealingLR with
/// T_max = total, eta_min = min); constant `min` after `total`.
pub fn cosine_lr(base: f64, min: f64, step: u64, total: u64) -> f64 {
    if total == 0 || step >= total {
        return min;
    }
    let progress = step as f64 / total as f64;
    min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * progress).cos())
}
