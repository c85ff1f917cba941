//! The layer product x W^T as one autodiff node, on gemm.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// x W^T (x: (B, in), W: (out, in)) as one autodiff node. candle's `x.matmul(&w.t())`
/// differentiates through the transposed view, so W's gradient came out transposed and was
/// copied once more per layer and step; here the backward pass computes it as grad^T x, in
/// W's own layout. `frozen`: W's gradient is not computed at all (the actor's Q term goes
/// through the critics without training them). Forward and x's gradient are the same gemm
/// calls candle makes.
pub(crate) struct LinearProduct {
    pub(crate) frozen: bool,
}

impl CustomOp2 for LinearProduct {
    fn name(&self) -> &'static str {
        "linear-product"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((b, k), (n, k2)) = (xl.shape().dims2()?, wl.shape().dims2()?);
        if k != k2 {
            candle_core::bail!("linear-product: x is (.., {k}) but W is (.., {k2})");
        }
        let (xs, ws) = (xl.stride(), wl.stride());
        // rayon's own count: candle's get_num_threads parses /proc/cpuinfo on every call
        // when RAYON_NUM_THREADS is unset.
        let parallelism = match rayon::current_num_threads() {
            1 => gemm::Parallelism::None,
            t => gemm::Parallelism::Rayon(t),
        };
        macro_rules! product {
            ($x:expr, $w:expr, $zero:expr) => {{
                let (x, w) = (&$x[xl.start_offset()..], &$w[wl.start_offset()..]);
                // Not zeroed first: gemm writes every element (read_dst = false: alpha is
                // 0, and it stores zeros or products without reading dst, also for k = 0).
                let mut dst = Vec::with_capacity(b * n);
                // SAFETY: the strides and offsets are the layouts' own, for the shapes
                // checked above; dst has room for the (b, n) row-major result, and its length
                // is set once gemm has written all of it.
                unsafe {
                    gemm::gemm(
                        b,
                        n,
                        k,
                        dst.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        x.as_ptr(),
                        xs[1] as isize,
                        xs[0] as isize,
                        w.as_ptr(),
                        ws[0] as isize,
                        ws[1] as isize,
                        $zero,
                        $zero + 1.0,
                        false,
                        false,
                        false,
                        parallelism,
                    );
                    dst.set_len(b * n);
                }
                dst
            }};
        }
        let out = match (x, w) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => CpuStorage::F32(product!(x, w, 0f32)),
            (CpuStorage::F64(x), CpuStorage::F64(w)) => CpuStorage::F64(product!(x, w, 0f64)),
            _ => candle_core::bail!("linear-product: only f32 and f64, both of one dtype"),
        };
        Ok((out, Shape::from((b, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = grad.matmul(w)?;
        let dw = if self.frozen { None } else { Some(grad.t()?.matmul(x)?) };
        Ok((Some(dx), dw))
    }
}
