//! Named parameters: stable names for checkpoints, target copies, Polyak and EMA updates.

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor, Var};
use rayon::prelude::*;

use crate::simd::{Kernel, run};

/// A network's parameters in a fixed order, each with a stable name (e.g. `l0.weight`).
pub trait NamedVars {
    fn named_vars(&self) -> Vec<(String, &Var)>;

    /// The parameters alone, in the same order (for optimisers and gradient clipping).
    fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// Names with a prefix, as they appear in a checkpoint: `{prefix}.{name}`.
    fn prefixed_vars(&self, prefix: &str) -> Vec<(String, Var)> {
        self.named_vars().into_iter().map(|(n, v)| (format!("{prefix}.{n}"), v.clone())).collect()
    }

    fn num_params(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// Pairs the parameters of two networks of the same architecture by name, or says which
/// name is missing or has another shape.
fn paired<'a>(
    target: &'a impl NamedVars,
    source: &'a impl NamedVars,
) -> Result<Vec<(&'a Var, &'a Var)>> {
    let (t, s) = (target.named_vars(), source.named_vars());
    if t.len() != s.len() {
        candle_core::bail!("networks differ: {} vs {} parameter tensors", t.len(), s.len());
    }
    t.into_iter()
        .zip(s)
        .map(|((tn, tv), (sn, sv))| {
            if tn != sn || tv.dims() != sv.dims() {
                candle_core::bail!(
                    "parameter mismatch: {tn} {:?} vs {sn} {:?}",
                    tv.dims(),
                    sv.dims()
                );
            }
            Ok((tv, sv))
        })
        .collect()
}

/// Polyak averaging: target <- tau * source + (1 - tau) * target. Each parameter is mixed in
/// place in one pass (the same numbers as candle's `s * tau + t * (1 - tau)`); with several
/// rayon threads the parameters are mixed side by side.
pub fn soft_update(target: &impl NamedVars, source: &impl NamedVars, tau: f64) -> Result<()> {
    let mix = |(t, s): (&Var, &Var)| -> Result<()> {
        if fusable(t, s) {
            return t.inplace_op2(s, &Mix { tau });
        }
        let mixed = ((s.as_detached_tensor() * tau)? + (t.as_detached_tensor() * (1.0 - tau))?)?;
        t.set(&mixed)
    };
    per_param(paired(target, source)?, mix)?;
    Ok(())
}

/// Whether the fused CPU loops (Adam, Polyak) can write `dst` in place while reading `src`:
/// both contiguous on the CPU, of one shape and one float type, f32 or f64. Anything else
/// takes candle's ops.
pub(crate) fn fusable(dst: &Tensor, src: &Tensor) -> bool {
    dst.device().is_cpu()
        && src.device().is_cpu()
        && dst.is_contiguous()
        && src.is_contiguous()
        && dst.dims() == src.dims()
        && dst.dtype() == src.dtype()
        && matches!(dst.dtype(), DType::F32 | DType::F64)
}

/// `f` on each parameter's item, results in order; side by side on rayon's threads when
/// there are several (each item touches only its own parameter's memory).
pub(crate) fn per_param<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(T) -> Result<R> + Sync + Send,
) -> Result<Vec<R>> {
    if rayon::current_num_threads() > 1 {
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
    }
}

/// target <- tau * source + (1 - tau) * target, in the target's storage.
struct Mix {
    tau: f64,
}

impl InplaceOp2 for Mix {
    fn name(&self) -> &'static str {
        "polyak-mix"
    }

    fn cpu_fwd(&self, t: &mut CpuStorage, tl: &Layout, s: &CpuStorage, sl: &Layout) -> Result<()> {
        let (Some((t0, t1)), Some((s0, s1))) = (tl.contiguous_offsets(), sl.contiguous_offsets())
        else {
            candle_core::bail!("polyak-mix: both parameters must be contiguous");
        };
        match (t, s) {
            (CpuStorage::F32(t), CpuStorage::F32(s)) => {
                run(MixKernel { tau: self.tau, t: &mut t[t0..t1], s: &s[s0..s1] })
            }
            (CpuStorage::F64(t), CpuStorage::F64(s)) => {
                run(MixKernel { tau: self.tau, t: &mut t[t0..t1], s: &s[s0..s1] })
            }
            _ => candle_core::bail!("polyak-mix: only f32 and f64 parameters of one type"),
        }
        Ok(())
    }
}

/// candle's `s * tau + t * (1 - tau)` element by element: each product is an affine op
/// (x a + 0), then the two are added, so the bits are the same.
struct MixKernel<'a, T> {
    tau: f64,
    t: &'a mut [T],
    s: &'a [T],
}

macro_rules! mix_kernel {
    ($t:ty) => {
        impl Kernel for MixKernel<'_, $t> {
            type Output = ();
            #[inline(always)]
            fn run(self, _fma: bool) {
                let (a, b) = (self.tau as $t, (1.0 - self.tau) as $t);
                for (t, &s) in self.t.iter_mut().zip(self.s) {
                    *t = (s * a + 0.0) + (*t * b + 0.0);
                }
            }
        }
    };
}
mix_kernel!(f32);
mix_kernel!(f64);

/// EMA with decay beta: ema <- beta * ema + (1 - beta) * source.
pub fn ema_update(ema: &impl NamedVars, source: &impl NamedVars, decay: f64) -> Result<()> {
    soft_update(ema, source, 1.0 - decay)
}

/// target <- source (values copied; the two keep separate storage).
pub fn copy_params(target: &impl NamedVars, source: &impl NamedVars) -> Result<()> {
    for (t, s) in paired(target, source)? {
        t.set(&s.as_detached_tensor())?;
    }
    Ok(())
}

/// A fresh `Var` holding a copy of `v` (for building target networks).
pub fn clone_var(v: &Var) -> Result<Var> {
    Var::from_tensor(&v.as_detached_tensor().copy()?)
}

/// Sum of squares of all parameters as f64 (a cheap fingerprint for tests and logs).
pub fn param_sq_norm(net: &impl NamedVars) -> Result<f64> {
    let mut total = 0.0;
    for (_, v) in net.named_vars() {
        total += v
            .as_detached_tensor()
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(total)
}

/// The parameters' current values, detached, by name.
/// Copied, because `Var::set` writes in place into storage that detached views share.
pub fn snapshot(net: &impl NamedVars) -> Result<Vec<(String, Tensor)>> {
    net.named_vars().into_iter().map(|(n, v)| Ok((n, v.as_detached_tensor().copy()?))).collect()
}
