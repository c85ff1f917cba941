//! The kernel engine: the CPU loops and custom candle ops that make a training step and a
//! decision fast, apart from the networks and the optimiser that use them. Each one computes
//! what candle's ops would (tests/mish.rs, tests/optim.rs, tests/mlp_grad.rs hold them to it).
//!
//! - [`simd`]: a loop compiled for AVX-512, AVX2 or the baseline, chosen at run time;
//! - [`mish`]: Mish, bias + Mish, their backward pass and tangent, fused;
//! - [`gelu`]: FQL's bias + GELU and LayerNorm with their backward passes, fused;
//! - [`linear`]: the layer product x W^T as one autodiff node;
//! - [`dense`]: an MLP compiled for one observation at a time (deployment);
//! - [`adam`]: Adam's step in one pass, the gradient norm read in place;
//! - [`mix`]: Polyak and EMA mixing in place.

use candle_core::{Layout, Result};

/// The slice of a contiguous storage a layout covers; custom ops take contiguous inputs only.
fn contiguous<'a, T>(s: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s[start..end]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// A per-column parameter (a bias, a scale) must have the width of x's rows; returns it.
pub(crate) fn check_row_param(lx: &Layout, lp: &Layout, what: &str, name: &str) -> Result<usize> {
    let h = *lx.dims().last().unwrap_or(&0);
    if h == 0 || lp.dims() != [h] {
        candle_core::bail!(
            "{name}: {what} shape {:?} does not match the rows of {:?}",
            lp.dims(),
            lx.dims()
        );
    }
    Ok(h)
}

/// One kernel body for f32 and f64 storages (all inputs of one dtype).
macro_rules! dispatch {
    ($name:expr, $($s:ident),+ => |$($v:ident),+| $body:expr) => {
        match ($($s,)+) {
            ($(CpuStorage::F32($v),)+) => CpuStorage::F32($body),
            ($(CpuStorage::F64($v),)+) => CpuStorage::F64($body),
            _ => candle_core::bail!("{}: only f32 and f64 (all inputs of one dtype)", $name),
        }
    };
}

pub(crate) mod adam;
pub mod dense;
pub mod gelu;
pub(crate) mod linear;
pub mod mish;
pub(crate) mod mix;
pub(crate) mod simd;
