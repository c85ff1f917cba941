//! Adam (PyTorch's update rule) whose state can be saved and restored, global-norm gradient
//! clipping and the cosine learning-rate schedule. candle-nn's AdamW cannot export its state.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::kernels::adam::{FusedAdam, sum_of_squares};
use crate::kernels::mix::{fusable, per_param};
use crate::mlp::Kernels;

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
    moments: Vec<Moments>,
    step: u64,
    kernels: Kernels,
}

/// Adam's running moments (m, v) of one parameter. For f32 and f64 they are flat vectors in
/// the parameter's type, so that the fused step updates them in place, allocating nothing;
/// other float types (f16, bf16) keep candle tensors and take candle's ops.
pub(crate) enum Moments {
    F32 { m: Vec<f32>, v: Vec<f32> },
    F64 { m: Vec<f64>, v: Vec<f64> },
    Tensors { m: Tensor, v: Tensor },
}

impl Moments {
    fn zeros(var: &Var) -> Result<Moments> {
        let n = var.elem_count();
        Ok(match var.dtype() {
            DType::F32 => Moments::F32 { m: vec![0.0; n], v: vec![0.0; n] },
            DType::F64 => Moments::F64 { m: vec![0.0; n], v: vec![0.0; n] },
            _ => Moments::Tensors { m: var.zeros_like()?, v: var.zeros_like()? },
        })
    }

    /// (m, v) as tensors of `like`'s shape (the vectors' on the CPU).
    fn tensors(&self, like: &Var) -> Result<(Tensor, Tensor)> {
        let (shape, cpu) = (like.shape(), &Device::Cpu);
        Ok(match self {
            Moments::F32 { m, v } => {
                (Tensor::from_slice(m, shape, cpu)?, Tensor::from_slice(v, shape, cpu)?)
            }
            Moments::F64 { m, v } => {
                (Tensor::from_slice(m, shape, cpu)?, Tensor::from_slice(v, shape, cpu)?)
            }
            Moments::Tensors { m, v } => (m.clone(), v.clone()),
        })
    }

    /// Moments holding the values of `m` and `v` (of the parameter's shape and dtype,
    /// checked before).
    fn from_tensors(m: &Tensor, v: &Tensor) -> Result<Moments> {
        let flat = |t: &Tensor| t.flatten_all()?.to_device(&Device::Cpu);
        Ok(match m.dtype() {
            DType::F32 => Moments::F32 { m: flat(m)?.to_vec1()?, v: flat(v)?.to_vec1()? },
            DType::F64 => Moments::F64 { m: flat(m)?.to_vec1()?, v: flat(v)?.to_vec1()? },
            _ => Moments::Tensors { m: m.clone(), v: v.clone() },
        })
    }
}

impl Adam {
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Adam> {
        let moments = vars.iter().map(|(_, v)| Moments::zeros(v)).collect::<Result<_>>()?;
        Ok(Adam { cfg, vars, moments, step: 0, kernels: Kernels::Fused })
    }

    /// `Fused`: one pass over (theta, g, m, v) per parameter, in place, on the CPU;
    /// `Unfused`: candle ops (the reference).
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
        let grads = self.gradients(&[grads])?;
        self.apply(&grads, None)
    }

    /// One update from the gradients summed over `parts` (in order: the row shards of a
    /// batch, a second loss), clipped to global L2 norm `max_norm` as [`clip_grad_norm`]
    /// does. The parts are added and the clip factor applied inside the fused loop, so no
    /// summed or scaled copy of a gradient is made. Returns the norm before clipping.
    pub fn step_clipped(&mut self, parts: &[&GradStore], max_norm: f64) -> Result<f64> {
        let grads = self.gradients(parts)?;
        let norm = norm(&grads)?;
        self.apply(&grads, clip_factor(norm, max_norm))?;
        Ok(norm)
    }

    /// Each parameter's gradient parts, as [`Gradient::new`] gathers them.
    fn gradients(&self, parts: &[&GradStore]) -> Result<Vec<Option<Gradient>>> {
        let in_place = self.kernels == Kernels::Fused;
        self.vars.iter().map(|(_, var)| Gradient::new(var, parts, in_place)).collect()
    }

    /// The Adam step on `grads`, each multiplied by `scale` first (when given).
    fn apply(&mut self, grads: &[Option<Gradient>], scale: Option<f64>) -> Result<()> {
        self.step += 1;
        let AdamConfig { lr, beta1, beta2, eps, weight_decay } = self.cfg;
        let t = self.step as i32;
        let c = AdamStep {
            beta1,
            beta2,
            eps,
            step_size: lr / (1.0 - beta1.powi(t)),
            sqrt_bc2: (1.0 - beta2.powi(t)).sqrt(),
            decay: 1.0 - lr * weight_decay,
            scale,
        };
        // Each parameter's update touches only its own memory: with several rayon threads
        // they run side by side (the same numbers).
        let update =
            |(((_, var), moments), g): ((&(String, Var), &mut Moments), &Option<Gradient>)| match g
            {
                None => Ok(()),
                Some(Gradient::InPlace(parts)) => {
                    let op = FusedAdam { c: &c, moments: RefCell::new(moments), rest: &parts[1..] };
                    var.inplace_op2(&parts[0], &op)
                }
                Some(Gradient::Summed(g)) => c.unfused(var, g, moments),
            };
        per_param(self.vars.iter().zip(self.moments.iter_mut()).zip(grads).collect(), update)?;
        Ok(())
    }

    /// The optimiser state as named tensors: `{prefix}.m.{name}`, `{prefix}.v.{name}` and
    /// `{prefix}.step` (a u32 pair holding the 64-bit step count).
    pub fn state_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(2 * self.vars.len() + 1);
        for ((name, var), moments) in self.vars.iter().zip(&self.moments) {
            let (m, v) = moments.tensors(var)?;
            out.push((format!("{prefix}.m.{name}"), m));
            out.push((format!("{prefix}.v.{name}"), v));
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
            Ok(t.clone())
        };
        let mut moments = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            let m = fetch(format!("{prefix}.m.{name}"), var)?;
            let v = fetch(format!("{prefix}.v.{name}"), var)?;
            moments.push(Moments::from_tensors(&m, &v)?);
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
        (self.moments, self.step) = (moments, step);
        Ok(())
    }
}

/// One parameter's gradient: the sum, in order, of its entries in several gradient stores.
enum Gradient {
    /// One to three parts that the fused loops read in place and add element by element:
    /// contiguous CPU tensors of the parameter's shape and float type.
    InPlace(Vec<Tensor>),
    /// The parts added with candle ops (for the reference path and other layouts).
    Summed(Tensor),
}

impl Gradient {
    /// None when no part has a gradient for `var`. The sum is `(p0 + p1) + p2`, as adding
    /// the stores one after the other gives.
    fn new(var: &Var, parts: &[&GradStore], in_place: bool) -> Result<Option<Gradient>> {
        let parts: Vec<Tensor> =
            parts.iter().filter_map(|g| g.get(var.as_tensor())).cloned().collect();
        if in_place && !parts.is_empty() && parts.iter().all(|g| fusable(var, g)) {
            // More than three parts (more than two row shards): the first ones are added
            // with candle, in the same order, and the loop adds the last two.
            let mut parts = parts;
            while parts.len() > 3 {
                let first_two = (&parts[0] + &parts[1])?;
                parts.splice(0..2, [first_two]);
            }
            return Ok(Some(Gradient::InPlace(parts)));
        }
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else { return Ok(None) };
        Ok(Some(Gradient::Summed(parts.try_fold(first, |acc, g| acc + g)?)))
    }
}

/// The constants of one Adam step: m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2,
/// theta' = decay theta - step_size m' / (sqrt(v') / sqrt_bc2 + eps), with g first
/// multiplied by `scale` when gradients are clipped.
pub(crate) struct AdamStep {
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
    pub(crate) step_size: f64,
    pub(crate) sqrt_bc2: f64,
    pub(crate) decay: f64,
    pub(crate) scale: Option<f64>,
}

impl AdamStep {
    /// The same step with candle ops (the reference; also any layout or device).
    fn unfused(&self, var: &Var, g: &Tensor, moments: &mut Moments) -> Result<()> {
        let AdamStep { beta1, beta2, eps, step_size, sqrt_bc2, decay, scale } = *self;
        let dev = var.device();
        let g = match scale {
            Some(f) => (g * f)?,
            None => g.clone(),
        };
        let (m, v) = moments.tensors(var)?;
        let (m, v) = (m.to_device(dev)?, v.to_device(dev)?);
        let m = ((m * beta1)? + (&g * (1.0 - beta1))?)?;
        let v = ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
        let denom = ((v.sqrt()? / sqrt_bc2)? + eps)?;
        let theta = var.as_detached_tensor();
        let theta = if decay != 1.0 { (theta * decay)? } else { theta };
        var.set(&(theta - ((&m / denom)? * step_size)?)?)?;
        *moments = Moments::from_tensors(&m, &v)?;
        Ok(())
    }
}

/// Global L2 norm of the gradients of `vars` (those that have one), with the numbers of
/// candle's `g.sqr().sum_all()` per parameter, added in order in f64.
pub fn grad_norm<'a>(grads: &GradStore, vars: impl Iterator<Item = &'a Var>) -> Result<f64> {
    let grads = vars.map(|v| Gradient::new(v, &[grads], true)).collect::<Result<Vec<_>>>()?;
    norm(&grads)
}

/// Global L2 norm of `grads`. A gradient read in place is squared and summed without a
/// copy, in candle's order for its `sqr().sum_all()` ([`SumOfSquares`]); with several
/// rayon threads the parameters are summed side by side, then added in order in f64.
fn norm(grads: &[Option<Gradient>]) -> Result<f64> {
    let sq = |g: &Gradient| -> Result<f64> {
        match g {
            Gradient::Summed(g) => g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar(),
            Gradient::InPlace(parts) => sum_of_squares(parts),
        }
    };
    let sums = per_param(grads.iter().flatten().collect(), sq)?;
    Ok(sums.iter().sum::<f64>().sqrt())
}

/// PyTorch's clip_grad_norm_ factor, max_norm / (norm + 1e-6), when norm > max_norm.
fn clip_factor(norm: f64, max_norm: f64) -> Option<f64> {
    (norm > max_norm).then(|| max_norm / (norm + 1e-6))
}

/// Scale all gradients of `vars` so their global L2 norm is at most `max_norm` (PyTorch's
/// clip_grad_norm_: factor max_norm / (norm + 1e-6) when norm > max_norm). Returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let norm = grad_norm(grads, vars.iter())?;
    if let Some(factor) = clip_factor(norm, max_norm) {
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
