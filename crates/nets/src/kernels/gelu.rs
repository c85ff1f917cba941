//! FQL's hidden layer, Dense -> GELU -> LayerNorm, as fused CPU kernels.
//!
//! candle builds GELU's tanh form from about eight element-wise ops and LayerNorm from about
//! ten (means, centring, square, division, scale, shift), each a pass over memory, a fresh
//! buffer and an autodiff node, and their backward passes from as many more: at FQL's 4 x 512
//! networks that cost more than the matrix products. Here the bias add and GELU are one pass
//! (and one for their gradient), LayerNorm one pass per row (and one for its gradient).
//!
//! GELU is the tanh approximation (flax's default, FQL's): with u = k (x + c x^3),
//! k = sqrt(2 / pi), c = 0.044715 and t = tanh(u) = 1 - 2 / (exp(2u) + 1),
//!   gelu(x) = x (1 + t) / 2,   gelu'(x) = (1 + t) / 2 + x (1 - t^2) k (1 + 3 c x^2) / 2.
//! 2u is clamped to [-80, 80] before the exp (tanh is +-1 to f64 precision there).
//! LayerNorm over the last dim: y = (x - mean) / sqrt(var + eps) * scale + bias with the
//! centred variance; with xh the normalised row and gs = g * scale,
//!   dx = (gs - mean(gs) - xh mean(gs xh)) / sqrt(var + eps),
//!   dscale = sum over rows of g xh,   dbias = sum over rows of g.

use std::ops::{AddAssign, Div, Sub};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use crate::kernels::mish::{MishFloat, column_sum};
use crate::kernels::simd::{Kernel, run};
use crate::kernels::{check_row_param, contiguous};

/// Element types of the GELU and LayerNorm kernels (f32 to train, f64 for the tests).
pub trait GeluFloat: MishFloat + AddAssign + Sub<Output = Self> + Div<Output = Self> {
    /// (gelu(x), gelu'(x)), tanh form.
    fn gelu_and_grad(self) -> (Self, Self);
    fn sqrt_of(self) -> Self;
}

macro_rules! gelu_float {
    ($t:ty) => {
        impl GeluFloat for $t {
            #[inline(always)]
            fn gelu_and_grad(self) -> ($t, $t) {
                const K: $t = 0.797_884_560_802_865_4_f64 as $t; // sqrt(2 / pi)
                const C: $t = 0.044_715;
                let x2 = self * self;
                let u = K * self * (1.0 + C * x2);
                let e = (2.0 * u).clamp(-80.0, 80.0).exp_vec();
                let t = 1.0 - 2.0 / (e + 1.0);
                let half_1t = 0.5 * (1.0 + t);
                (self * half_1t, half_1t + 0.5 * self * (1.0 - t * t) * K * (1.0 + 3.0 * C * x2))
            }
            #[inline(always)]
            fn sqrt_of(self) -> $t {
                self.sqrt()
            }
        }
    };
}
gelu_float!(f32);
gelu_float!(f64);

/// gelu(x) in scalar form (reference for tests).
pub fn gelu_scalar<T: GeluFloat>(x: T) -> T {
    x.gelu_and_grad().0
}

// ---- slice kernels (compiled per vector unit: crate::kernels::simd) ----

/// x = LayerNorm(gelu(x)) in place for rows of width `width` (GELU alone without `norm`):
/// the forward of FQL's hidden layer after its bias, for the compiled acting path.
pub(crate) fn gelu_norm_in_place(
    x: &mut [f32],
    width: usize,
    norm: Option<(&[f32], &[f32])>,
    eps: f32,
) {
    assert!(width > 0 && x.len().is_multiple_of(width), "gelu_norm_in_place: row width");
    run(GeluNormInPlace { x, width, norm, eps })
}

struct GeluNormInPlace<'a> {
    x: &'a mut [f32],
    width: usize,
    norm: Option<(&'a [f32], &'a [f32])>,
    eps: f32,
}

impl Kernel for GeluNormInPlace<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self, _fma: bool) {
        for row in self.x.chunks_exact_mut(self.width) {
            for v in row.iter_mut() {
                *v = v.gelu_and_grad().0;
            }
            if let Some((scale, bias)) = self.norm {
                let (mean, inv) = row_stats(row, self.eps);
                for (v, (&s, &b)) in row.iter_mut().zip(scale.iter().zip(bias)) {
                    *v = (*v - mean) * inv * s + b;
                }
            }
        }
    }
}

/// gelu(z + b), or g * gelu'(z + b) when `g` is given; rows of width b.len().
struct BiasGeluKernel<'a, T> {
    z: &'a [T],
    b: &'a [T],
    g: Option<&'a [T]>,
}

impl<T: GeluFloat> Kernel for BiasGeluKernel<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self, _fma: bool) -> Vec<T> {
        let (h, n) = (self.b.len(), self.z.len());
        assert!(n.is_multiple_of(h), "bias_gelu: row width");
        let mut out = vec![T::from_f64(0.0); n];
        let rows = out.chunks_exact_mut(h).zip(self.z.chunks_exact(h));
        match self.g {
            None => {
                for (o_row, z_row) in rows {
                    for (o, (&z, &b)) in o_row.iter_mut().zip(z_row.iter().zip(self.b)) {
                        *o = (z + b).gelu_and_grad().0;
                    }
                }
            }
            Some(g) => {
                assert_eq!(g.len(), n, "bias_gelu backward: grad size");
                for ((o_row, z_row), g_row) in rows.zip(g.chunks_exact(h)) {
                    let cols = o_row.iter_mut().zip(z_row.iter().zip(g_row));
                    for ((o, (&z, &g)), &b) in cols.zip(self.b) {
                        *o = g * (z + b).gelu_and_grad().1;
                    }
                }
            }
        }
        out
    }
}

/// A row's mean and 1 / sqrt(var + eps).
#[inline(always)]
fn row_stats<T: GeluFloat>(row: &[T], eps: T) -> (T, T) {
    let inv_h = T::from_f64(1.0 / row.len() as f64);
    let mut sum = T::from_f64(0.0);
    for &x in row {
        sum += x;
    }
    let mean = sum * inv_h;
    let mut sq = T::from_f64(0.0);
    for &x in row {
        let d = x - mean;
        sq += d * d;
    }
    (mean, T::from_f64(1.0) / (sq * inv_h + eps).sqrt_of())
}

/// LayerNorm's forward: rows of width scale.len().
struct LayerNormFwd<'a, T> {
    x: &'a [T],
    scale: &'a [T],
    bias: &'a [T],
    eps: T,
}

impl<T: GeluFloat> Kernel for LayerNormFwd<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self, _fma: bool) -> Vec<T> {
        let h = self.scale.len();
        let mut out = vec![T::from_f64(0.0); self.x.len()];
        for (o_row, x_row) in out.chunks_exact_mut(h).zip(self.x.chunks_exact(h)) {
            let (mean, inv) = row_stats(x_row, self.eps);
            let cols = o_row.iter_mut().zip(x_row.iter().zip(self.scale.iter().zip(self.bias)));
            for (o, (&x, (&s, &b))) in cols {
                *o = (x - mean) * inv * s + b;
            }
        }
        out
    }
}

/// LayerNorm's backward: the input's gradient (rows of width h) followed by one more row,
/// the scale's gradient (the sum over rows of g * xh, row 0 first).
struct LayerNormBwd<'a, T> {
    x: &'a [T],
    scale: &'a [T],
    g: &'a [T],
    eps: T,
}

impl<T: GeluFloat> Kernel for LayerNormBwd<'_, T> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self, _fma: bool) -> Vec<T> {
        let h = self.scale.len();
        let n = self.x.len();
        let zero = T::from_f64(0.0);
        let inv_h = T::from_f64(1.0 / h as f64);
        let mut out = vec![zero; n + h];
        let (gx, gscale) = out.split_at_mut(n);
        let mut xh = vec![zero; h];
        let rows = gx.chunks_exact_mut(h).zip(self.x.chunks_exact(h).zip(self.g.chunks_exact(h)));
        for (gx_row, (x_row, g_row)) in rows {
            let (mean, inv) = row_stats(x_row, self.eps);
            let (mut mean_gs, mut mean_gs_xh) = (zero, zero);
            for (xh, &x) in xh.iter_mut().zip(x_row) {
                *xh = (x - mean) * inv;
            }
            for ((&xh, &g), (&s, gsc)) in
                xh.iter().zip(g_row).zip(self.scale.iter().zip(gscale.iter_mut()))
            {
                let gs = g * s;
                mean_gs += gs;
                mean_gs_xh += gs * xh;
                *gsc += g * xh;
            }
            let (mean_gs, mean_gs_xh) = (mean_gs * inv_h, mean_gs_xh * inv_h);
            for (o, ((&xh, &g), &s)) in gx_row.iter_mut().zip(xh.iter().zip(g_row).zip(self.scale))
            {
                *o = (g * s - mean_gs - xh * mean_gs_xh) * inv;
            }
        }
        out
    }
}

// ---- candle ops ----

/// gelu(z + b) for z of shape (.., H) and a bias b of shape (H), with a fused backward.
struct BiasGelu;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "fused-bias-gelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_row_param(l1, l2, "bias", self.name())?;
        let out = dispatch!(self.name(), s1, s2 => |z, b| run(BiasGeluKernel {
            z: contiguous(z, l1, "bias-gelu z")?,
            b: contiguous(b, l2, "bias-gelu b")?,
            g: None,
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
            &BiasGeluBackward,
        )?;
        let gb = column_sum(&gz)?;
        Ok((Some(gz), Some(gb)))
    }
}

/// grad * gelu'(z + b).
struct BiasGeluBackward;

impl CustomOp3 for BiasGeluBackward {
    fn name(&self) -> &'static str {
        "fused-bias-gelu-backward"
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
        let out = dispatch!(self.name(), s1, s2, s3 => |z, b, g| run(BiasGeluKernel {
            z: contiguous(z, l1, "z")?,
            b: contiguous(b, l2, "b")?,
            g: Some(contiguous(g, l3, "grad")?),
        }));
        Ok((out, l1.shape().clone()))
    }
}

/// LayerNorm over the last dim of x (.., H) with scale and bias of shape (H).
struct LayerNorm {
    eps: f64,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        check_row_param(l1, l2, "scale", self.name())?;
        check_row_param(l1, l3, "bias", self.name())?;
        let eps = self.eps;
        let out = dispatch!(self.name(), s1, s2, s3 => |x, s, b| run(LayerNormFwd {
            x: contiguous(x, l1, "layer-norm x")?,
            scale: contiguous(s, l2, "layer-norm scale")?,
            bias: contiguous(b, l3, "layer-norm bias")?,
            eps: candle_core::WithDType::from_f64(eps),
        }));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let h = scale.dim(0)?;
        let rows = x.elem_count() / h;
        let both = x.contiguous()?.apply_op3_no_bwd(
            &scale.contiguous()?,
            &grad.contiguous()?,
            &LayerNormBackward { eps: self.eps },
        )?;
        let gx = both.narrow(0, 0, rows)?.reshape(x.shape())?;
        let gscale = both.narrow(0, rows, 1)?.reshape(h)?;
        Ok((Some(gx), Some(gscale), Some(column_sum(grad)?)))
    }
}

/// (dx rows; dscale) of [`LayerNorm`], shape (rows + 1, H).
struct LayerNormBackward {
    eps: f64,
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "fused-layer-norm-backward"
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
        let h = check_row_param(l1, l2, "scale", self.name())?;
        if l1.shape() != l3.shape() {
            candle_core::bail!(
                "{}: grad shape {:?} != input {:?}",
                self.name(),
                l3.dims(),
                l1.dims()
            );
        }
        let eps = self.eps;
        let out = dispatch!(self.name(), s1, s2, s3 => |x, s, g| run(LayerNormBwd {
            x: contiguous(x, l1, "x")?,
            scale: contiguous(s, l2, "scale")?,
            g: contiguous(g, l3, "grad")?,
            eps: candle_core::WithDType::from_f64(eps),
        }));
        Ok((out, Shape::from((l1.shape().elem_count() / h + 1, h))))
    }
}

/// Fused gelu(z + b) with b broadcast over the rows of z (tanh form).
pub fn bias_gelu(z: &Tensor, b: &Tensor) -> Result<Tensor> {
    z.contiguous()?.apply_op2(&b.contiguous()?, BiasGelu)
}

/// Fused LayerNorm of each row of x: (x - mean) / sqrt(var + eps) * scale + bias.
pub fn layer_norm(x: &Tensor, scale: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&scale.contiguous()?, &bias.contiguous()?, LayerNorm { eps })
}
