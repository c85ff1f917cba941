//! The kernel engine: the CPU loops and custom candle ops that make a training step and a
//! decision fast, apart from the networks and the optimiser that use them. Each one computes
//! what candle's ops would (tests/mish.rs, tests/optim.rs, tests/mlp_grad.rs hold them to it).
//!
//! - [`simd`]: a loop compiled for AVX-512, AVX2 or the baseline, chosen at run time;
//! - [`mish`]: Mish, bias + Mish, their backward pass and tangent, fused;
//! - [`linear`]: the layer product x W^T as one autodiff node;
//! - [`dense`]: an MLP compiled for one observation at a time (deployment);
//! - [`adam`]: Adam's step in one pass, the gradient norm read in place;
//! - [`mix`]: Polyak and EMA mixing in place.

pub(crate) mod adam;
pub mod dense;
pub(crate) mod linear;
pub mod mish;
pub(crate) mod mix;
pub(crate) mod simd;
