//! Mish, x * tanh(softplus(x)), as fused CPU kernels.
//!
//! candle composes Mish from five element-wise ops (each a pass over memory and a buffer) and
//! its gradient overflows to NaN above x ~ 89. Here one loop computes the value, one the
//! gradient, and one the forward-mode tangent step, all from a single exp per element:
//! with e = exp(x), n = e (e + 2) and w = n + 2,
//!   tanh(softplus(x)) = n / w,   mish'(x) = n / w + 4 x e (1 + e) / w^2.
//! x is clamped to [-80, 20] before the exp: above 20, n / w is 1 to f64 precision and the
//! second term vanishes, so no inf / inf can appear; below -80 Mish and its derivative are
//! taken at -80 (both under 1e-32 in size).
//! The loops are branch-free over slices and the f32 exp is a polynomial, so LLVM vectorises.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use crate::kernels::simd::{Kernel, run};
use crate::kernels::{check_row_param, contiguous};

/// Element types the kernels run on.
pub trait MishFloat:
    Copy + candle_core::WithDType + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    /// exp without libm calls so the loops vectorise (f32); exact libm for f64 (tests).
    fn exp_vec(self) -> Self;
    /// (mish(x), mish'(x)).
    fn mish_and_grad(self) -> (Self, Self);
}

const CLAMP_LO: f64 = -80.0;
const CLAMP_HI: f64 = 20.0;

/// a * b + c, fused (one rounding) when `fma`. Without it the result is what `a * b + c`
/// gives, so the training kernels, which never pass `fma`, stay the same to the bit on every
/// vector unit.
#[inline(always)]
fn madd(a: f32, b: f32, c: f32, fma: bool) -> f32 {
    if fma { a.mul_add(b, c) } else { a * b + c }
}

/// Cephes expf: x = k ln2 + r, exp(r) by a degree-6 polynomial, 2^k from the exponent bits.
/// Valid for x in [-87, 88]; callers clamp. Relative error ~1e-7.
#[inline(always)]
fn exp_f32(x: f32, fma: bool) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer.
    let t = madd(x, LOG2E, ROUND, fma);
    let kf = t - ROUND;
    // k = kf as an integer, read from t's mantissa (t = 1.5 * 2^23 + k exactly), so the
    // loop stays in vector integer ops (a float-to-int `as` cast does not vectorise).
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = madd(-kf, -2.121_944_4e-4, madd(-kf, 0.693_359_4, x, fma), fma);
    let z = r * r;
    let mut p = 1.987_569_1e-4;
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = madd(p, r, c, fma);
    }
    let y = madd(p, z, r, fma) + 1.0;
    y * f32::from_bits(((k + 127) << 23) as u32)
}

/// mish(x) for acting (the compiled policies), with fused multiply-adds where the CPU has
/// them and one division: within a few float32 roundings of [`mish_scalar`].
#[inline(always)]
pub(crate) fn mish_f32(x: f32, fma: bool) -> f32 {
    let xc = x.clamp(CLAMP_LO as f32, CLAMP_HI as f32);
    let e = exp_f32(xc, fma);
    let n = e * (e + 2.0);
    x.max(xc) * (n / (n + 2.0))
}

impl MishFloat for f32 {
    #[inline(always)]
    fn exp_vec(self) -> f32 {
        exp_f32(self, false)
    }

    #[inline(always)]
    fn mish_and_grad(self) -> (f32, f32) {
        let xc = self.clamp(CLAMP_LO as f32, CLAMP_HI as f32);
        let e = xc.exp_vec();
        let n = e * (e + 2.0);
        let w = n + 2.0;
        let inv_w = 1.0 / w;
        let tsp = n * inv_w;
        (self.max(xc) * tsp, tsp + 4.0 * xc * e * (1.0 + e) * inv_w * inv_w)
    }
}

impl MishFloat for f64 {
    #[inline(always)]
    fn exp_vec(self) -> f64 {
        self.exp()
    }

    #[inline(always)]
    fn mish_and_grad(self) -> (f64, f64) {
        let xc = self.clamp(CLAMP_LO, CLAMP_HI);
        let e = xc.exp_vec();
        let n = e * (e + 2.0);
        let w = n + 2.0;
        let inv_w = 1.0 / w;
        let tsp = n * inv_w;
        (self.max(xc) * tsp, tsp + 4.0 * xc * e * (1.0 + e) * inv_w * inv_w)
    }
}

/// mish(x) in scalar form (reference for tests and for callers without tensors).
pub fn mish_scalar<T: MishFloat>(x: T) -> T {
    x.mish_and_grad().0
}

/// mish'(x) in scalar form.
pub fn mish_grad_scalar<T: MishFloat>(x: T) -> T {
    x.mish_and_grad().1
}

// ---- slice kernels (the loops LLVM vectorises, compiled per vector unit: crate::kernels::simd) ----

/// mish(x) for each x.
struct MishFwd<'a, T> {
    x: &'a [T],
}

impl<T: MishFloat> Kernel for MishFwd<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self, _fma: bool) -> Vec<T> {
        let mut out = vec![T::from_f64(0.0); self.x.len()];
        for (y, &x) in out.iter_mut().zip(self.x) {
            *y = x.mish_and_grad().0;
        }
        out
    }
}

/// x = act(x + b) in place, rows of width b.len(), act Mish or the identity: the compiled
/// policies' bias and activation after a product.
struct BiasActInPlace<'a> {
    x: &'a mut [f32],
    b: &'a [f32],
    mish: bool,
}

impl Kernel for BiasActInPlace<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self, fma: bool) {
        for row in self.x.chunks_exact_mut(self.b.len()) {
            if self.mish {
                for (x, b) in row.iter_mut().zip(self.b) {
                    *x = mish_f32(*x + b, fma);
                }
            } else {
                for (x, b) in row.iter_mut().zip(self.b) {
                    *x += b;
                }
            }
        }
    }
}

/// x = act(x + b) for each row of x (width b.len()), act Mish (see [`mish_f32`]) or the
/// identity, compiled for this CPU's vector unit.
pub(crate) fn bias_act_in_place(x: &mut [f32], b: &[f32], mish: bool) {
    assert!(x.len().is_multiple_of(b.len().max(1)), "bias_act_in_place: row width");
    run(BiasActInPlace { x, b, mish });
}

/// grad_in = grad_out * mish'(z + b), rows of width b.len(). Written through pre-sized
/// slices (no push) so the inner loops vectorise.
struct BiasMishBwd<'a, T> {
    z: &'a [T],
    b: &'a [T],
    g: &'a [T],
}

impl<T: MishFloat> Kernel for BiasMishBwd<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self, _fma: bool) -> Vec<T> {
        let (h, n) = (self.b.len(), self.z.len());
        assert!(n.is_multiple_of(h) && self.g.len() == n, "bias_mish backward: row width");
        let mut out = Vec::with_capacity(n);
        let rows = out.spare_capacity_mut()[..n].chunks_exact_mut(h);
        for (o_row, (z_row, g_row)) in rows.zip(self.z.chunks_exact(h).zip(self.g.chunks_exact(h)))
        {
            for (o, ((&z, &g), &b)) in o_row.iter_mut().zip(z_row.iter().zip(g_row).zip(self.b)) {
                o.write(g * (z + b).mish_and_grad().1);
            }
        }
        // SAFETY: the rows cover all n elements (n is a multiple of h) and each was written.
        unsafe { out.set_len(n) };
        out
    }
}

/// mish(z + b), rows of width b.len().
struct BiasMishFwd<'a, T> {
    z: &'a [T],
    b: &'a [T],
}

impl<T: MishFloat> Kernel for BiasMishFwd<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self, _fma: bool) -> Vec<T> {
        let (h, n) = (self.b.len(), self.z.len());
        assert!(n.is_multiple_of(h), "bias_mish: row width");
        let mut out = Vec::with_capacity(n);
        let rows = out.spare_capacity_mut()[..n].chunks_exact_mut(h);
        for (o_row, z_row) in rows.zip(self.z.chunks_exact(h)) {
            for (o, (&z, &b)) in o_row.iter_mut().zip(z_row.iter().zip(self.b)) {
                o.write((z + b).mish_and_grad().0);
            }
        }
        // SAFETY: the rows cover all n elements (n is a multiple of h) and each was written.
        unsafe { out.set_len(n) };
        out
    }
}

/// The sum of the rows of a (rows, h) matrix: a bias's gradient. Each column is summed from
/// row 0 down, the order candle's own sum over dim 0 uses, so the result is the same to the
/// bit, without candle's per-element index arithmetic.
struct ColumnSum<'a, T> {
    x: &'a [T],
    h: usize,
}

impl<T: MishFloat> Kernel for ColumnSum<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self, _fma: bool) -> Vec<T> {
        let mut acc = vec![T::from_f64(0.0); self.h];
        for row in self.x.chunks_exact(self.h) {
            for (a, &x) in acc.iter_mut().zip(row) {
                *a += x;
            }
        }
        acc
    }
}

/// The tangent step of a linear layer + activation on a stacked (2B, H) pre-activation whose
/// first B rows are x W^T and last B rows are x_dot W^T: returns (2B, H) holding
/// act(z + b) on top and act'(z + b) * z_dot below.
struct BiasActTangentKernel<'a, T> {
    zz: &'a [T],
    b: &'a [T],
    mish: bool,
}

impl<T: MishFloat> Kernel for BiasActTangentKernel<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self, _fma: bool) -> Vec<T> {
        let (zz, b) = (self.zz, self.b);
        let h = b.len();
        let half = zz.len() / 2;
        let (z, z_dot) = zz.split_at(half);
        // Written through pre-sized slices (no push) so the inner loops vectorise.
        let mut out = vec![T::from_f64(0.0); zz.len()];
        let (y, y_dot) = out.split_at_mut(half);
        if !self.mish {
            for (y_row, z_row) in y.chunks_exact_mut(h).zip(z.chunks_exact(h)) {
                for (y, (&z, &b)) in y_row.iter_mut().zip(z_row.iter().zip(b)) {
                    *y = z + b;
                }
            }
            y_dot.copy_from_slice(z_dot);
            return out;
        }
        let rows = y.chunks_exact_mut(h).zip(y_dot.chunks_exact_mut(h));
        for ((y_row, yd_row), (z_row, zd_row)) in
            rows.zip(z.chunks_exact(h).zip(z_dot.chunks_exact(h)))
        {
            let cols = y_row.iter_mut().zip(yd_row.iter_mut());
            for ((y, yd), ((&z, &zd), &b)) in cols.zip(z_row.iter().zip(zd_row).zip(b)) {
                let (m, d) = (z + b).mish_and_grad();
                *y = m;
                *yd = d * zd;
            }
        }
        out
    }
}

/// Fused Mish: y = mish(x), with a fused backward.
pub struct Mish;

impl CustomOp1 for Mish {
    fn name(&self) -> &'static str {
        "fused-mish"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = dispatch!(self.name(), s => |x| run(MishFwd { x: contiguous(x, l, "mish")? }));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let zero = Tensor::zeros(x.dim(x.rank() - 1)?, x.dtype(), x.device())?;
        let g = x.contiguous()?.apply_op3_no_bwd(&zero, &grad.contiguous()?, &BiasMishBackward)?;
        Ok(Some(g))
    }
}

/// Fused mish(z + b) for z of shape (.., H) and a bias b of shape (H): the linear layer's bias
/// add and the activation in one pass, with a fused backward for both inputs.
pub struct BiasMish;

impl CustomOp2 for BiasMish {
    fn name(&self) -> &'static str {
        "fused-bias-mish"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_row_param(l1, l2, "bias", self.name())?;
        let out = dispatch!(self.name(), s1, s2 => |z, b| run(BiasMishFwd {
            z: contiguous(z, l1, "bias-mish z")?,
            b: contiguous(b, l2, "bias-mish b")?,
        }));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        z: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gz = z.contiguous()?.apply_op3_no_bwd(
            &b.contiguous()?,
            &grad.contiguous()?,
            &BiasMishBackward,
        )?;
        let gb = column_sum(&gz)?;
        Ok((Some(gz), Some(gb)))
    }
}

/// grad * mish'(z + b): the backward of [`Mish`] (b = 0) and [`BiasMish`].
struct BiasMishBackward;

impl CustomOp3 for BiasMishBackward {
    fn name(&self) -> &'static str {
        "fused-bias-mish-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_row_param(l1, l2, "bias", self.name())?;
        if l1.shape() != l3.shape() {
            candle_core::bail!(
                "{}: grad shape {:?} != input {:?}",
                self.name(),
                l3.dims(),
                l1.dims()
            );
        }
        let out = dispatch!(self.name(), s1, s2, s3 => |z, b, g| run(BiasMishBwd {
            z: contiguous(z, l1, "z")?,
            b: contiguous(b, l2, "b")?,
            g: contiguous(g, l3, "grad")?,
        }));
        Ok((out, l1.shape().clone()))
    }
}

/// The tangent step (no autodiff): see [`bias_act_tangent`].
struct BiasActTangent {
    mish: bool,
}

impl CustomOp2 for BiasActTangent {
    fn name(&self) -> &'static str {
        "fused-bias-act-tangent"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_row_param(l1, l2, "bias", self.name())?;
        if !l1.dims()[0].is_multiple_of(2) {
            candle_core::bail!("{}: stacked input needs an even number of rows", self.name());
        }
        let mish = self.mish;
        let out = dispatch!(self.name(), s1, s2 => |z, b| run(BiasActTangentKernel {
            zz: contiguous(z, l1, "z")?,
            b: contiguous(b, l2, "b")?,
            mish,
        }));
        Ok((out, l1.shape().clone()))
    }
}

/// The sum over all leading dims of a (.., H) tensor, as a (H) tensor (no autodiff).
struct ColumnSumOp;

impl CustomOp1 for ColumnSumOp {
    fn name(&self) -> &'static str {
        "column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let h = *l.dims().last().unwrap_or(&0);
        if h == 0 {
            candle_core::bail!("column-sum: needs a last dim of at least 1, got {:?}", l.dims());
        }
        let out = dispatch!(self.name(), s => |x| run(ColumnSum { x: contiguous(x, l, "column-sum")?, h }));
        Ok((out, Shape::from(h)))
    }
}

/// Sum of the rows of x (.., H): the gradient of a bias broadcast over those rows.
pub fn column_sum(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&ColumnSumOp)
}

/// Fused mish(x).
pub fn mish(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Mish)
}

/// Fused mish(z + b) with b broadcast over the rows of z.
pub fn bias_mish(z: &Tensor, b: &Tensor) -> Result<Tensor> {
    z.contiguous()?.apply_op2(&b.contiguous()?, BiasMish)
}

/// z_dot * mish'(z + b): the tangent of mish(z + b) along z_dot (no autodiff graph).
pub fn bias_mish_tangent(z: &Tensor, b: &Tensor, z_dot: &Tensor) -> Result<Tensor> {
    z.detach().contiguous()?.apply_op3_no_bwd(
        &b.detach().contiguous()?,
        &z_dot.detach().contiguous()?,
        &BiasMishBackward,
    )
}

/// Tangent step of (bias add, optional Mish) on a stacked (2B, H) tensor: the top B rows are
/// the pre-activation x W^T, the bottom B rows its tangent x_dot W^T. Returns (2B, H) with
/// act(z + b) on top and act'(z + b) * z_dot below. No autodiff graph is recorded.
pub fn bias_act_tangent(stacked: &Tensor, b: &Tensor, mish: bool) -> Result<Tensor> {
    let stacked = stacked.detach().contiguous()?;
    stacked.apply_op2_no_bwd(&b.detach().contiguous()?, &BiasActTangent { mish })
}

/// Mish from candle's separate ops, x * tanh(ln(1 + e^x)): the reference and the unfused
/// baseline of the benchmarks (it overflows for large x, as candle's own does).
pub fn mish_unfused(x: &Tensor) -> Result<Tensor> {
    x * x.exp()?.affine(1.0, 1.0)?.log()?.tanh()?
}

/// mish'(x) from separate ops: tanh(sp) + x sech^2(sp) sigmoid(x), sp = softplus(x).
pub fn mish_grad_unfused(x: &Tensor) -> Result<Tensor> {
    let tsp = x.exp()?.affine(1.0, 1.0)?.log()?.tanh()?;
    let sech2 = tsp.sqr()?.affine(-1.0, 1.0)?;
    let sigmoid = (x.neg()?.exp()?.affine(1.0, 1.0)?).recip()?;
    tsp + (x * sech2)? * sigmoid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{Simd, run_on};

    /// The exp as first written (with a float-to-int cast), the reference for the bit trick.
    fn exp_cast(x: f32) -> f32 {
        let kf = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
        let r = x - kf * 0.693_359_4 - kf * -2.121_944_4e-4;
        let z = r * r;
        let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
            * r
            + 1.666_666_5e-1)
            * r
            + 0.5;
        (p * z + r + 1.0) * f32::from_bits((((kf as i32) + 127) << 23) as u32)
    }

    #[test]
    fn exp_is_bit_identical_to_the_cast_version_over_the_clamped_range() {
        let mut x = CLAMP_LO as f32;
        while x <= CLAMP_HI as f32 {
            assert_eq!(x.exp_vec().to_bits(), exp_cast(x).to_bits(), "x = {x}");
            let rel = (x.exp_vec() as f64 - (x as f64).exp()).abs() / (x as f64).exp();
            assert!(rel < 3e-7, "exp({x}): relative error {rel}");
            x += 0.000_37;
        }
    }

    /// Every vector unit this CPU has gives the same bits as the baseline loop, including
    /// the remainders of rows (width 37) and values beyond the clamps.
    #[test]
    fn vector_variants_agree_to_the_bit() {
        let h = 37;
        let z: Vec<f32> = (0..5 * h).map(|i| (i as f32 * 0.7391).sin() * 30.0 - 5.0).collect();
        let mut z = z;
        z[3] = -200.0;
        z[4] = 150.0;
        let b: Vec<f32> = (0..h).map(|i| (i as f32 * 0.3).cos()).collect();
        let g: Vec<f32> = (0..5 * h).map(|i| (i as f32 * 1.3).sin()).collect();
        let zz: Vec<f32> = z.iter().chain(&g).copied().collect();
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let all = |simd| {
            (
                bits(run_on(simd, MishFwd { x: &z })),
                bits(run_on(simd, BiasMishFwd { z: &z, b: &b })),
                bits(run_on(simd, BiasMishBwd { z: &z, b: &b, g: &g })),
                bits(run_on(simd, BiasActTangentKernel { zz: &zz, b: &b, mish: true })),
                bits(run_on(simd, BiasActTangentKernel { zz: &zz, b: &b, mish: false })),
                bits(run_on(simd, ColumnSum { x: &g, h })),
            )
        };
        let base = all(Simd::Baseline);
        assert_eq!(all(Simd::Avx2), base);
        assert_eq!(all(Simd::Avx512), base);
        // And the values are Mish's (f64 reference).
        for (i, (&y, &x)) in run_on(Simd::Baseline, MishFwd { x: &z }).iter().zip(&z).enumerate() {
            let want = mish_scalar(x as f64);
            assert!((y as f64 - want).abs() <= 1e-6 * want.abs().max(1e-6), "{i}: {y} vs {want}");
        }
    }

    /// The acting path's Mish (fused multiply-adds where the CPU has them, one division) stays
    /// within a few float32 roundings of Mish on every vector unit, beyond the clamps too;
    /// without Mish it adds the bias exactly.
    #[test]
    fn acting_bias_and_mish_are_close_on_every_vector_unit() {
        let h = 37;
        let mut z: Vec<f32> = (0..5 * h).map(|i| (i as f32 * 0.7391).sin() * 30.0 - 5.0).collect();
        z[3] = -200.0;
        z[4] = 150.0;
        let b: Vec<f32> = (0..h).map(|i| (i as f32 * 0.3).cos()).collect();
        for simd in [Simd::Baseline, Simd::Avx2, Simd::Avx512] {
            let mut y = z.clone();
            run_on(simd, BiasActInPlace { x: &mut y, b: &b, mish: true });
            for (i, (&y, &x)) in y.iter().zip(&z).enumerate() {
                let want = mish_scalar(x as f64 + b[i % h] as f64);
                let err = (y as f64 - want).abs();
                assert!(err <= 1e-6 * want.abs().max(1e-6), "{simd:?} {i}: {y} vs {want}");
            }
            let mut y = z.clone();
            run_on(simd, BiasActInPlace { x: &mut y, b: &b, mish: false });
            for (i, (&y, &x)) in y.iter().zip(&z).enumerate() {
                assert_eq!(y, x + b[i % h], "{simd:?} {i}");
            }
        }
    }
}
