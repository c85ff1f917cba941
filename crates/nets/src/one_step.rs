//! A velocity network compiled for one-step decisions: u(a_1, r = 0, t = 1 | s) on plain f32
//! slices, for one observation at a time (deployment, `ofql bench`'s decision).
//!
//! Two things make it fast without changing the function: the time embeddings of t = 1 and
//! r = 0 are constants, so their share of the first layer is folded into its bias once (the
//! first layer then reads A + S inputs instead of A + S + 2 * time_dim); and the weights are
//! stored transposed (inputs x outputs), so each layer is a sum of rows scaled by the inputs,
//! a loop over contiguous outputs that the compiler vectorises without reordering any sum,
//! once per vector width (AVX-512, AVX2 + FMA, baseline), chosen at run time.
//! No tensors, graphs or allocations per decision.

use candle_core::{DType, Device, Result, Tensor};

use crate::mish::mish_scalar;
use crate::simd::{Kernel, run};
use crate::velocity::VelocityNet;

#[derive(Debug, Clone)]
struct Layer {
    /// (inputs, outputs), row-major: row i holds input i's weight to every output.
    weight_t: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

/// One layer on one input: out = bias + sum_i x_i * row_i, then Mish unless it is the last.
struct LayerKernel<'a> {
    layer: &'a Layer,
    x: &'a [f32],
    out: &'a mut [f32],
    mish: bool,
}

impl Kernel for LayerKernel<'_> {
    type Output = ();

    /// `fma`: fused multiply-add (only where the CPU has it; else a libm call).
    #[inline(always)]
    fn run(self, fma: bool) {
        let n = self.layer.bias.len();
        self.out.copy_from_slice(&self.layer.bias);
        for (xi, row) in self.x.iter().zip(self.layer.weight_t.chunks_exact(n)) {
            for (o, w) in self.out.iter_mut().zip(row) {
                *o = if fma { xi.mul_add(*w, *o) } else { *o + xi * w };
            }
        }
        if self.mish {
            for o in self.out.iter_mut() {
                *o = mish_scalar(*o);
            }
        }
    }
}

/// u(., r = 0, t = 1 | .) of a [`VelocityNet`], frozen at the moment it was compiled.
#[derive(Debug, Clone)]
pub struct OneStepPolicy {
    obs_dim: usize,
    act_dim: usize,
    layers: Vec<Layer>,
    /// Two activation buffers of the widest layer.
    scratch: (Vec<f32>, Vec<f32>),
}

impl OneStepPolicy {
    /// Compile `net` (f32 or f64 weights; computed in f32).
    pub fn new(net: &VelocityNet) -> Result<OneStepPolicy> {
        let cfg = net.config();
        let (a, s) = (cfg.act_dim, cfg.obs_dim);
        let dev = Device::Cpu;
        let col = |v: f64| Tensor::full(v, (1, 1), &dev)?.to_dtype(net.dtype());
        // [emb(t = 1), emb(r = 0)], the constant tail of the first layer's input.
        let emb = net.time_embeddings(&col(1.0)?, &col(0.0)?)?;
        let emb: Vec<f32> = emb.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut layers = vec![];
        for (i, layer) in net.mlp().layers().iter().enumerate() {
            let w = layer.weight.as_tensor().to_dtype(DType::F32)?;
            let (outs, ins) = w.dims2()?;
            let w: Vec<Vec<f32>> = w.to_vec2()?;
            let mut bias: Vec<f32> = layer.bias.as_tensor().to_dtype(DType::F32)?.to_vec1()?;
            let kept = if i == 0 { a + s } else { ins };
            if i == 0 {
                // The constant inputs contribute W[:, a+s..] emb to every decision: fold it in
                // (summed in f64 so the fold itself adds no rounding worth the name).
                for (o, b) in bias.iter_mut().enumerate() {
                    let folded: f64 =
                        emb.iter().zip(&w[o][kept..]).map(|(e, w)| *e as f64 * *w as f64).sum();
                    *b = (*b as f64 + folded) as f32;
                }
            }
            let mut weight_t = vec![0f32; kept * outs];
            for (o, row) in w.iter().enumerate() {
                for (i, v) in row[..kept].iter().enumerate() {
                    weight_t[i * outs + o] = *v;
                }
            }
            layers.push(Layer { weight_t, bias, inputs: kept });
        }
        let widest = layers.iter().map(|l| l.bias.len().max(l.inputs)).max().unwrap_or(0);
        Ok(OneStepPolicy {
            obs_dim: s,
            act_dim: a,
            layers,
            scratch: (vec![0.0; widest], vec![0.0; widest]),
        })
    }

    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// a = noise - u(noise, 0, 1 | obs), the one-step sample (not clamped).
    pub fn sample(&mut self, obs: &[f32], noise: &[f32], action: &mut [f32]) {
        assert_eq!(obs.len(), self.obs_dim, "observation size");
        assert_eq!(noise.len(), self.act_dim, "noise size");
        assert_eq!(action.len(), self.act_dim, "action size");
        let (x, y) = (&mut self.scratch.0, &mut self.scratch.1);
        x[..self.act_dim].copy_from_slice(noise);
        x[self.act_dim..self.act_dim + self.obs_dim].copy_from_slice(obs);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let n = layer.bias.len();
            let mish = i != last;
            run(LayerKernel { layer, x: &x[..layer.inputs], out: &mut y[..n], mish });
            std::mem::swap(x, y);
        }
        for ((a, z), u) in action.iter_mut().zip(noise).zip(&x[..self.act_dim]) {
            *a = z - u;
        }
    }
}
