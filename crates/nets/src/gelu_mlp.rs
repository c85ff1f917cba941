//! Flow Q-Learning's MLP (its `utils/networks.py`): Dense -> GELU (tanh approximation, flax's
//! default) -> LayerNorm (optional) per hidden layer, a plain Dense last; kernels initialised
//! by variance scaling (scale 1, fan_avg, uniform), biases zero. The bias add + GELU and the
//! LayerNorm run as fused kernels (`kernels::gelu`), the products as the other networks' do.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;
use rand_distr::{Distribution, Uniform};

use crate::kernels::dense::{CompiledMlp, Hidden};
use crate::kernels::gelu::{bias_gelu, layer_norm};
use crate::mlp::Linear;
use crate::params::{NamedVars, clone_var};

/// flax's LayerNorm epsilon.
const LAYER_NORM_EPS: f64 = 1e-6;

#[derive(Debug)]
pub struct GeluMlp {
    layers: Vec<Linear>,
    /// (scale, bias) after each hidden layer's activation, when layer norm is on.
    norms: Vec<(Var, Var)>,
}

impl GeluMlp {
    /// dims[0] -> dims[1] -> ... -> dims[n].
    pub fn new<R: Rng>(
        dims: &[usize],
        layer_norm: bool,
        dtype: DType,
        dev: &Device,
        rng: &mut R,
    ) -> Result<GeluMlp> {
        let mut layers = vec![];
        let mut norms = vec![];
        for (i, w) in dims.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let limit = (3.0 / ((fan_in + fan_out) as f64 / 2.0)).sqrt();
            let dist = Uniform::new_inclusive(-limit, limit).expect("limit is positive");
            let v: Vec<f64> = (0..fan_in * fan_out).map(|_| dist.sample(rng)).collect();
            let weight = Tensor::from_vec(v, (fan_out, fan_in), dev)?.to_dtype(dtype)?;
            let bias = Tensor::zeros(fan_out, dtype, dev)?;
            layers.push(Linear {
                weight: Var::from_tensor(&weight)?,
                bias: Var::from_tensor(&bias)?,
            });
            if layer_norm && i + 2 < dims.len() {
                norms.push((
                    Var::from_tensor(&Tensor::ones(fan_out, dtype, dev)?)?,
                    Var::from_tensor(&Tensor::zeros(fan_out, dtype, dev)?)?,
                ));
            }
        }
        Ok(GeluMlp { layers, norms })
    }

    pub fn deep_clone(&self) -> Result<GeluMlp> {
        Ok(GeluMlp {
            layers: self.layers.iter().map(Linear::deep_clone).collect::<Result<_>>()?,
            norms: self
                .norms
                .iter()
                .map(|(s, b)| Ok((clone_var(s)?, clone_var(b)?)))
                .collect::<Result<_>>()?,
        })
    }

    pub fn out_dim(&self) -> usize {
        self.layers.last().map_or(0, |l| l.bias.dim(0).unwrap_or(0))
    }

    /// The network as it is now, compiled for acting (plain f32 slices, no tensors).
    pub fn compile(&self) -> Result<CompiledMlp> {
        let f32s = |v: &Var| v.as_tensor().to_dtype(DType::F32)?.to_vec1::<f32>();
        let norms =
            self.norms.iter().map(|(s, b)| Ok((f32s(s)?, f32s(b)?))).collect::<Result<_>>()?;
        CompiledMlp::with_hidden(
            &self.layers,
            &[],
            Hidden::Gelu { norms, eps: LAYER_NORM_EPS as f32 },
        )
    }

    /// y = f(x) with the autodiff graph.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, false)
    }

    /// y = f(x) with this network's parameters held constant (gradients still reach x).
    pub fn forward_frozen(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, true)
    }

    fn forward_impl(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let param = |v: &Var| if frozen { v.as_detached_tensor() } else { v.as_tensor().clone() };
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let z = layer.product(&h, frozen)?;
            if i == last {
                h = z.broadcast_add(&param(&layer.bias))?;
                break;
            }
            h = bias_gelu(&z, &param(&layer.bias))?;
            if let Some((scale, bias)) = self.norms.get(i) {
                h = layer_norm(&h, &param(scale), &param(bias), LAYER_NORM_EPS)?;
            }
        }
        Ok(h)
    }
}

impl NamedVars for GeluMlp {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        let mut out = vec![];
        for (i, l) in self.layers.iter().enumerate() {
            out.push((format!("l{i}.weight"), &l.weight));
            out.push((format!("l{i}.bias"), &l.bias));
            if let Some((s, b)) = self.norms.get(i) {
                out.push((format!("ln{i}.scale"), s));
                out.push((format!("ln{i}.bias"), b));
            }
        }
        out
    }
}
