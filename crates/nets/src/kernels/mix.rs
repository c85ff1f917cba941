//! Mixing parameters in place: target <- tau * source + (1 - tau) * target (Polyak, EMA), and
//! the helpers the fused parameter loops share.

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

use crate::kernels::simd::{Kernel, run};

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
pub(crate) struct Mix {
    pub(crate) tau: f64,
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
