//! Adam's step in one pass per parameter, and the gradient norm read in place: the loops
//! behind `crate::optim::Adam`, numerically the same as candle's ops they replace.

use std::cell::RefCell;

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Storage, StorageRef, Tensor};

use crate::kernels::simd::{Kernel, run};
use crate::optim::{AdamStep, Moments};

/// Adam's step in one pass over (theta, g, m, v), written in place: theta through candle's
/// in-place op, m and v in their own vectors. Ten candle ops (ten buffers) per parameter
/// become one loop that allocates nothing.
pub(crate) struct FusedAdam<'a> {
    pub(crate) c: &'a AdamStep,
    /// The gradient's parts after the first (which candle passes as the op's source).
    pub(crate) rest: &'a [Tensor],
    /// Borrowed mutably by the one call of `cpu_fwd` (a `RefCell` since the trait gives `&self`).
    pub(crate) moments: RefCell<&'a mut Moments>,
}

/// Runs `$body` with `$g` bound to an iterator over the element-wise sum of the slices in
/// `$parts` (one to three, of equal length), added left to right.
macro_rules! with_sum {
    ($parts:expr, $g:ident => $body:expr) => {
        match $parts[..] {
            [a] => {
                let $g = a.iter().copied();
                $body
            }
            [a, b] => {
                let $g = a.iter().zip(b).map(|(x, y)| x + y);
                $body
            }
            [a, b, c] => {
                let $g = a.iter().zip(b).zip(c).map(|((x, y), z)| (x + y) + z);
                $body
            }
            _ => candle_core::bail!("a gradient read in place has one to three parts"),
        }
    };
}

impl InplaceOp2 for FusedAdam<'_> {
    fn name(&self) -> &'static str {
        "fused-adam"
    }

    fn cpu_fwd(
        &self,
        theta: &mut CpuStorage,
        tl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        let Some((t0, t1)) = tl.contiguous_offsets() else {
            candle_core::bail!("fused-adam: the parameter must be contiguous");
        };
        let rest: Vec<_> = self.rest.iter().map(|t| t.storage_and_layout()).collect();
        let mut sources = vec![(g, gl)];
        sources.extend(cpu_storages(&rest)?);
        let mut moments = self.moments.borrow_mut();
        match (theta, &mut **moments) {
            (CpuStorage::F32(t), Moments::F32 { m, v }) => {
                let parts = slices(&sources, |s| s.as_slice::<f32>().ok())?;
                with_sum!(parts, g => run(AdamKernel { c: self.c, theta: &mut t[t0..t1], g, m, v }));
            }
            (CpuStorage::F64(t), Moments::F64 { m, v }) => {
                let parts = slices(&sources, |s| s.as_slice::<f64>().ok())?;
                with_sum!(parts, g => run(AdamKernel { c: self.c, theta: &mut t[t0..t1], g, m, v }));
            }
            _ => candle_core::bail!("fused-adam: parameter and moments differ in dtype"),
        }
        Ok(())
    }
}

/// The CPU storages of tensors read through `guards` (from `storage_and_layout`), with their
/// layouts.
fn cpu_storages<'a>(
    guards: &'a [(StorageRef<'_>, &'a Layout)],
) -> Result<Vec<(&'a CpuStorage, &'a Layout)>> {
    guards
        .iter()
        .map(|(storage, layout)| match &**storage {
            Storage::Cpu(s) => Ok((s, *layout)),
            _ => candle_core::bail!("gradients read in place must be on the CPU"),
        })
        .collect()
}

/// The contiguous element slices of CPU tensors of one float type (for the fused Adam loop
/// and the gradient norm).
fn slices<'a, T: 'a>(
    sources: &[(&'a CpuStorage, &Layout)],
    as_slice: impl Fn(&'a CpuStorage) -> Option<&'a [T]>,
) -> Result<Vec<&'a [T]>> {
    sources
        .iter()
        .map(|&(s, l)| match (as_slice(s), l.contiguous_offsets()) {
            (Some(x), Some((a, b))) => Ok(&x[a..b]),
            _ => candle_core::bail!(
                "gradient parts read in place must be contiguous, of the parameter's type"
            ),
        })
        .collect()
}

/// The loop of [`FusedAdam`] over one parameter, compiled per vector unit (crate::kernels::simd). The
/// arithmetic is the scalar formula's, element by element (and the clip scale is candle's
/// `g * f`, i.e. g f + 0), so every variant rounds alike.
struct AdamKernel<'a, T, G> {
    c: &'a AdamStep,
    theta: &'a mut [T],
    g: G,
    m: &'a mut [T],
    v: &'a mut [T],
}

macro_rules! adam_kernel {
    ($t:ty) => {
        impl<G: Iterator<Item = $t>> Kernel for AdamKernel<'_, $t, G> {
            type Output = ();
            #[inline(always)]
            fn run(self, _fma: bool) -> () {
                let c = self.c;
                let (b1, b2, eps) = (c.beta1 as $t, c.beta2 as $t, c.eps as $t);
                let (step, inv_bc2, decay) =
                    (c.step_size as $t, (1.0 / c.sqrt_bc2) as $t, c.decay as $t);
                let (scaled, scale) = (c.scale.is_some(), c.scale.unwrap_or(1.0) as $t);
                let state = self.theta.iter_mut().zip(self.m.iter_mut().zip(self.v.iter_mut()));
                for ((theta, (m, v)), g) in state.zip(self.g) {
                    let g = if scaled { g * scale + 0.0 } else { g };
                    let mi = b1 * *m + (1.0 - b1) * g;
                    let vi = b2 * *v + (1.0 - b2) * g * g;
                    *theta = decay * *theta - step * mi / (vi.sqrt() * inv_bc2 + eps);
                    *m = mi;
                    *v = vi;
                }
            }
        }
    };
}
adam_kernel!(f32);
adam_kernel!(f64);

/// The sum of g^2 over a gradient given in parts (g = (p0 + p1) + p2), read in place without
/// a copy, with the numbers of candle's `g.sqr().sum_all()` ([`SumOfSquares`]).
pub(crate) fn sum_of_squares(parts: &[Tensor]) -> Result<f64> {
    let guards: Vec<_> = parts.iter().map(|t| t.storage_and_layout()).collect();
    let sources = cpu_storages(&guards)?;
    if parts[0].dtype() == DType::F64 {
        let parts = slices(&sources, |s| s.as_slice::<f64>().ok())?;
        with_sum!(parts, g => Ok(g.fold(0f64, |acc, x| acc + x * x)))
    } else {
        let sum = match slices(&sources, |s| s.as_slice::<f32>().ok())?[..] {
            [a] => run(SumOfSquares([a])),
            [a, b] => run(SumOfSquares([a, b])),
            [a, b, c] => run(SumOfSquares([a, b, c])),
            _ => candle_core::bail!("gradient norm: a gradient in place has one to three parts"),
        };
        Ok(sum as f64)
    }
}

/// The sum of g^2 over the elements g of a gradient given in N parts (g = (p0 + p1) + p2),
/// in candle's order for an f32 `sum_all` on x86 with AVX2: 32 running sums (four 8-lane
/// registers) over the whole 32-element blocks, folded by candle's tree (registers 0+1 and
/// 2+3, then those two, then the two 128-bit halves, then two horizontal adds), then the
/// remainder added one by one. Without AVX2 candle adds sequentially, and so does this.
/// Compiled per vector unit (crate::kernels::simd): the 32 sums are two AVX-512 registers.
struct SumOfSquares<'a, const N: usize>([&'a [f32]; N]);

impl<const N: usize> SumOfSquares<'_, N> {
    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        let mut g = self.0[0][i];
        for part in &self.0[1..] {
            g += part[i];
        }
        g * g
    }
}

impl<const N: usize> Kernel for SumOfSquares<'_, N> {
    type Output = f32;
    #[inline(always)]
    fn run(self, _fma: bool) -> f32 {
        let n = self.0[0].len();
        if !has_avx2() {
            return (0..n).fold(0.0, |acc, i| acc + self.at(i));
        }
        let full = n / 32 * 32;
        let mut acc = [0f32; 32];
        for block in (0..full).step_by(32) {
            let chunks: [&[f32]; N] = std::array::from_fn(|p| &self.0[p][block..block + 32]);
            for (l, a) in acc.iter_mut().enumerate() {
                let mut g = chunks[0][l];
                for chunk in &chunks[1..] {
                    g += chunk[l];
                }
                *a += g * g;
            }
        }
        let r = |i: usize| (acc[i] + acc[8 + i]) + (acc[16 + i] + acc[24 + i]);
        let t: [f32; 4] = std::array::from_fn(|l| r(l) + r(l + 4));
        (full..n).fold((t[0] + t[1]) + (t[2] + t[3]), |acc, i| acc + self.at(i))
    }
}

fn has_avx2() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        false
    }
}
