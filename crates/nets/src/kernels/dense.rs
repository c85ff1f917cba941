//! Trained MLPs compiled for acting: plain f32 slices, no tensors, graphs or allocations per
//! call once the buffers have grown. Used by the one-step policies and the frozen critics
//! (Mish networks, and FQL's GELU + LayerNorm ones).
//!
//! Weights are copied once and stored transposed (inputs x outputs, row-major), which serves
//! both paths: one input row is a sum of weight rows scaled by the inputs (a loop over
//! contiguous outputs, vectorised per vector unit without reordering any sum), and many rows
//! are one GEMM with a row-major right-hand side.
//!
//! The first layer's input may be split into a part that is the same for every row (the
//! observation, when K candidate actions are scored for one observation) and a per-row part
//! (the candidate): the shared part's product is computed once and added to every row with the bias.

use std::ops::Range;

use candle_core::{DType, Result};

use crate::kernels::gelu::gelu_norm_in_place;
use crate::kernels::mish::{bias_act_in_place, mish_f32};
use crate::kernels::simd::{Kernel, run};
use crate::mlp::Linear;

#[derive(Debug, Clone)]
struct DenseLayer {
    /// (inputs, outputs), row-major: row i holds input i's weight to every output.
    weight_t: Vec<f32>,
    bias: Vec<f32>,
}

impl DenseLayer {
    fn outputs(&self) -> usize {
        self.bias.len()
    }

    fn inputs(&self) -> usize {
        self.weight_t.len() / self.bias.len()
    }

    /// out = bias + sum_{i in cols} x[i - cols.start] * row_i, then Mish if asked.
    fn one_row(&self, cols: Range<usize>, x: &[f32], out: &mut [f32], mish: bool) {
        let n = self.outputs();
        let rows = &self.weight_t[cols.start * n..cols.end * n];
        run(RowKernel { rows, bias: &self.bias, x, out, mish });
    }

    /// out (rows x outputs) = x (rows x cols.len()) times the weight rows `cols`.
    fn product(&self, cols: Range<usize>, x: &[f32], rows: usize, out: &mut [f32]) {
        let (n, k) = (self.outputs(), cols.len());
        assert!(x.len() == rows * k && out.len() == rows * n, "compiled layer: buffer sizes");
        if k == 0 {
            out.fill(0.0);
            return;
        }
        let w = &self.weight_t[cols.start * n..cols.end * n];
        // gemm copies (packs) the weights before its product once the rows exceed 8 of its
        // 6-wide tiles; in chunks of 48 rows it reads them in place (50 candidates: 27 us per
        // 256 x 256 layer instead of 30, measured here).
        for (x, out) in x.chunks(48 * k).zip(out.chunks_mut(48 * n)) {
            let rows = x.len() / k;
            // SAFETY: the three matrices are dense row-major slices of exactly the sizes
            // given (asserted above), and `out` does not alias `x` or `w`.
            unsafe {
                gemm::gemm(
                    rows,
                    n,
                    k,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        }
    }
}

/// One layer on one input row: out = bias + sum_i x_i * row_i, then Mish if asked.
struct RowKernel<'a> {
    rows: &'a [f32],
    bias: &'a [f32],
    x: &'a [f32],
    out: &'a mut [f32],
    mish: bool,
}

impl Kernel for RowKernel<'_> {
    type Output = ();

    /// `fma`: fused multiply-add (only where the CPU has it; else a libm call).
    #[inline(always)]
    fn run(self, fma: bool) {
        let n = self.bias.len();
        self.out.copy_from_slice(self.bias);
        for (xi, row) in self.x.iter().zip(self.rows.chunks_exact(n)) {
            for (o, w) in self.out.iter_mut().zip(row) {
                *o = if fma { xi.mul_add(*w, *o) } else { *o + xi * w };
            }
        }
        if self.mish {
            for o in self.out.iter_mut() {
                *o = mish_f32(*o, fma);
            }
        }
    }
}

/// `layer`'s bias plus the product of its last `constant.len()` input columns (weights `w`,
/// row per output) with `constant`, summed in f64.
fn folded_bias(layer: &Linear, w: &[Vec<f32>], constant: &[f32]) -> Result<Vec<f32>> {
    let mut bias: Vec<f32> = layer.bias.as_tensor().to_dtype(DType::F32)?.to_vec1()?;
    for (o, b) in bias.iter_mut().enumerate() {
        let kept = w[o].len() - constant.len();
        let folded: f64 =
            constant.iter().zip(&w[o][kept..]).map(|(c, w)| *c as f64 * *w as f64).sum();
        *b = (*b as f64 + folded) as f32;
    }
    Ok(bias)
}

/// What follows each hidden layer's product and bias.
#[derive(Debug, Clone)]
pub enum Hidden {
    /// Mish (OFQL's and DQL's networks), fused with the bias add.
    Mish,
    /// GELU, tanh form, then LayerNorm with (scale, bias) where given, one per hidden layer
    /// (FQL's networks: `GeluMlp`); none given: GELU alone.
    Gelu { norms: Vec<(Vec<f32>, Vec<f32>)>, eps: f32 },
}

impl Hidden {
    fn is_mish(&self) -> bool {
        matches!(self, Hidden::Mish)
    }

    /// Hidden layer `l`'s activation on `rows` (rows of width `width`) after its bias, where
    /// it is not fused into the bias add.
    fn finish(&self, l: usize, rows: &mut [f32], width: usize) {
        if let Hidden::Gelu { norms, eps } = self {
            let norm = norms.get(l).map(|(s, b)| (s.as_slice(), b.as_slice()));
            gelu_norm_in_place(rows, width, norm, *eps);
        }
    }
}

/// An MLP (an activation between layers, none after the last) frozen at the moment it was
/// compiled.
#[derive(Debug, Clone)]
pub struct CompiledMlp {
    layers: Vec<DenseLayer>,
    hidden: Hidden,
    /// Two activation buffers, grown to the largest call seen.
    x: Vec<f32>,
    y: Vec<f32>,
    /// The first layer's shared part.
    shared: Vec<f32>,
}

impl CompiledMlp {
    /// Compile `layers`, where the first layer's input columns from `constant.len()` before its
    /// end are the constant `constant`: their product is folded into its bias (summed in f64,
    /// so the fold adds no rounding worth the name) and the layer then reads only the rest.
    pub fn new(layers: &[Linear], constant: &[f32]) -> Result<CompiledMlp> {
        CompiledMlp::with_hidden(layers, constant, Hidden::Mish)
    }

    /// As [`CompiledMlp::new`], with `hidden` after each hidden layer.
    pub fn with_hidden(layers: &[Linear], constant: &[f32], hidden: Hidden) -> Result<CompiledMlp> {
        let mut compiled = vec![];
        for (l, layer) in layers.iter().enumerate() {
            let w = layer.weight.as_tensor().to_dtype(DType::F32)?;
            let (outs, ins) = w.dims2()?;
            let w: Vec<Vec<f32>> = w.to_vec2()?;
            let kept = if l == 0 { ins - constant.len() } else { ins };
            let bias = if l == 0 {
                folded_bias(layer, &w, constant)?
            } else {
                layer.bias.as_tensor().to_dtype(DType::F32)?.to_vec1()?
            };
            let mut weight_t = vec![0f32; kept * outs];
            for (o, row) in w.iter().enumerate() {
                for (i, v) in row[..kept].iter().enumerate() {
                    weight_t[i * outs + o] = *v;
                }
            }
            compiled.push(DenseLayer { weight_t, bias });
        }
        let widest = compiled.iter().map(|l| l.outputs().max(l.inputs())).max().unwrap_or(0);
        Ok(CompiledMlp {
            layers: compiled,
            hidden,
            x: vec![0.0; widest],
            y: vec![0.0; widest],
            shared: vec![],
        })
    }

    /// The first layer's bias with another value of the constant tail folded in (as `new`
    /// folds it): a network that takes a per-step constant (a diffusion step's time
    /// embedding) is compiled once and gets one bias per step.
    pub fn first_bias_for(layers: &[Linear], constant: &[f32]) -> Result<Vec<f32>> {
        let w: Vec<Vec<f32>> = layers[0].weight.as_tensor().to_dtype(DType::F32)?.to_vec2()?;
        folded_bias(&layers[0], &w, constant)
    }

    /// Replace the first layer's bias (one from [`CompiledMlp::first_bias_for`]).
    pub fn set_first_bias(&mut self, bias: &[f32]) {
        self.layers[0].bias.copy_from_slice(bias);
    }

    /// Inputs of the first layer (after folding).
    pub fn in_dim(&self) -> usize {
        self.layers[0].inputs()
    }

    pub fn out_dim(&self) -> usize {
        self.layers.last().map_or(0, DenseLayer::outputs)
    }

    /// The MLP on one input row.
    pub fn forward_one(&mut self, input: &[f32]) -> &[f32] {
        assert_eq!(input.len(), self.in_dim(), "compiled MLP: input size");
        let (x, y, hidden) = (&mut self.x, &mut self.y, &self.hidden);
        x[..input.len()].copy_from_slice(input);
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (ins, outs) = (layer.inputs(), layer.outputs());
            layer.one_row(0..ins, &x[..ins], &mut y[..outs], l != last && hidden.is_mish());
            if l != last {
                hidden.finish(l, &mut y[..outs], outs);
            }
            std::mem::swap(x, y);
        }
        &self.x[..self.out_dim()]
    }

    /// The MLP on `rows` rows whose first-layer input is `per_row` (rows x per_cols.len()) at
    /// columns `per_cols` and, the same for every row, `shared` at the other columns
    /// `shared_cols` (the two ranges cover the input). Returns rows x out_dim.
    pub fn forward_rows(
        &mut self,
        per_row: &[f32],
        per_cols: Range<usize>,
        shared: &[f32],
        shared_cols: Range<usize>,
        rows: usize,
    ) -> &[f32] {
        assert_eq!(per_cols.len() + shared_cols.len(), self.in_dim(), "compiled MLP: input size");
        assert_eq!(shared.len(), shared_cols.len(), "compiled MLP: shared input size");
        let widest = self.layers.iter().map(DenseLayer::outputs).max().unwrap_or(0);
        if self.x.len() < rows * widest {
            self.x.resize(rows * widest, 0.0);
            self.y.resize(rows * widest, 0.0);
        }
        let first = &self.layers[0];
        let n = first.outputs();
        self.shared.resize(n, 0.0);
        first.one_row(shared_cols, shared, &mut self.shared, false);
        let last = self.layers.len() - 1;
        let mish = self.hidden.is_mish();
        first.product(per_cols, per_row, rows, &mut self.y[..rows * n]);
        bias_act_in_place(&mut self.y[..rows * n], &self.shared, last > 0 && mish);
        if last > 0 {
            self.hidden.finish(0, &mut self.y[..rows * n], n);
        }
        std::mem::swap(&mut self.x, &mut self.y);
        for (l, layer) in self.layers.iter().enumerate().skip(1) {
            let (ins, outs) = (layer.inputs(), layer.outputs());
            let y = &mut self.y[..rows * outs];
            layer.product(0..ins, &self.x[..rows * ins], rows, y);
            bias_act_in_place(y, &layer.bias, l != last && mish);
            if l != last {
                self.hidden.finish(l, y, outs);
            }
            std::mem::swap(&mut self.x, &mut self.y);
        }
        &self.x[..rows * self.out_dim()]
    }
}
