//! A Linear + Mish MLP whose forward pass can carry a tangent (forward-mode AD by hand).

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;

use crate::init::pytorch_linear;
use crate::kernels::linear::LinearProduct;
use crate::kernels::mish::{
    bias_act_tangent, bias_mish, bias_mish_tangent, mish_grad_unfused, mish_unfused,
};
use crate::params::{NamedVars, clone_var};

/// Which Mish implementation the network runs: the fused kernels, or candle's separate ops
/// (kept as the reference for tests and the baseline of the benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    #[default]
    Fused,
    Unfused,
}

/// y = x W^T + b, parameters as `Var`s so gradients reach them.
/// Not `Clone`: a clone would alias the same `Var`s; use `deep_clone` for a target copy.
#[derive(Debug)]
pub struct Linear {
    pub weight: Var,
    pub bias: Var,
}

impl Linear {
    pub fn new<R: Rng>(
        fan_in: usize,
        fan_out: usize,
        dtype: DType,
        dev: &Device,
        rng: &mut R,
    ) -> Result<Linear> {
        let (w, b) = pytorch_linear(fan_in, fan_out, dtype, dev, rng)?;
        Ok(Linear { weight: Var::from_tensor(&w)?, bias: Var::from_tensor(&b)? })
    }

    pub fn deep_clone(&self) -> Result<Linear> {
        Ok(Linear { weight: clone_var(&self.weight)?, bias: clone_var(&self.bias)? })
    }

    fn matmul_detached(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.as_detached_tensor().t()?)
    }

    /// x W^T with the autodiff graph, as one node (see [`LinearProduct`]); `frozen`: no
    /// gradient for W.
    pub(crate) fn product(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        x.apply_op2(self.weight.as_tensor(), LinearProduct { frozen })
    }
}

/// dims[0] -> dims[1] -> ... -> dims[n], Mish between layers, none after the last.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    kernels: Kernels,
}

impl Mlp {
    pub fn new<R: Rng>(dims: &[usize], dtype: DType, dev: &Device, rng: &mut R) -> Result<Mlp> {
        assert!(dims.len() >= 2, "an MLP needs input and output sizes");
        let layers = dims
            .windows(2)
            .map(|w| Linear::new(w[0], w[1], dtype, dev, rng))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers, kernels: Kernels::Fused })
    }

    /// An independent copy (new `Var`s), e.g. a target network.
    pub fn deep_clone(&self) -> Result<Mlp> {
        let layers = self.layers.iter().map(Linear::deep_clone).collect::<Result<_>>()?;
        Ok(Mlp { layers, kernels: self.kernels })
    }

    pub fn with_kernels(mut self, kernels: Kernels) -> Mlp {
        self.kernels = kernels;
        self
    }

    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    pub fn in_dim(&self) -> usize {
        self.layers[0].weight.dim(1).expect("2-D weight")
    }

    pub fn out_dim(&self) -> usize {
        self.layers.last().expect("non-empty").weight.dim(0).expect("2-D weight")
    }

    /// y = f(x) with the autodiff graph.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, false)
    }

    /// y = f(x) with the weights held constant: gradients still flow to x (and to whatever
    /// x came from) but none are computed for this network's own parameters. For a loss
    /// that only trains what feeds this network (the actor's Q term through the critics).
    pub fn forward_frozen(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_impl(x, true)
    }

    fn forward_impl(&self, x: &Tensor, frozen: bool) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let b = if frozen {
                layer.bias.as_detached_tensor()
            } else {
                layer.bias.as_tensor().clone()
            };
            let z = layer.product(&h, frozen)?;
            h = if i == last {
                z.broadcast_add(&b)?
            } else {
                match self.kernels {
                    Kernels::Fused => bias_mish(&z, &b)?,
                    Kernels::Unfused => mish_unfused(&z.broadcast_add(&b)?)?,
                }
            };
        }
        Ok(h)
    }

    /// (y, y_dot) with y_dot = J(x) x_dot, computed without an autodiff graph (stop-gradient).
    pub fn forward_with_tangent(&self, x: &Tensor, x_dot: &Tensor) -> Result<(Tensor, Tensor)> {
        match self.kernels {
            Kernels::Fused => self.tangent_fused(x, x_dot),
            Kernels::Unfused => self.tangent_unfused(x, x_dot),
        }
    }

    /// (y, y_dot): y = f(x) with the autodiff graph, y_dot = J(x) x_dot without one
    /// (stop-gradient). For a loss that needs both (MeanFlow's): the tangent reuses the
    /// forward's pre-activations, so it costs one product on x_dot's rows per layer instead
    /// of a second pass over x and x_dot.
    pub fn forward_and_tangent(&self, x: &Tensor, x_dot: &Tensor) -> Result<(Tensor, Tensor)> {
        if self.kernels == Kernels::Unfused {
            let (_, y_dot) = self.tangent_unfused(x, x_dot)?;
            return Ok((self.forward(x)?, y_dot));
        }
        let last = self.layers.len() - 1;
        let (mut h, mut h_dot) = (x.clone(), x_dot.detach());
        for (i, layer) in self.layers.iter().enumerate() {
            let z = layer.product(&h, false)?;
            let z_dot = layer.matmul_detached(&h_dot)?;
            let b = layer.bias.as_tensor();
            (h, h_dot) = if i == last {
                (z.broadcast_add(b)?, z_dot)
            } else {
                (bias_mish(&z, b)?, bias_mish_tangent(&z, b, &z_dot)?)
            };
        }
        Ok((h, h_dot))
    }

    /// x and x_dot travel as one stacked (2B, .) tensor: one matmul and one fused kernel per
    /// layer, since the tangent shares the weights and the activation's derivative.
    fn tangent_fused(&self, x: &Tensor, x_dot: &Tensor) -> Result<(Tensor, Tensor)> {
        let batch = x.dim(0)?;
        let last = self.layers.len() - 1;
        let mut h = Tensor::cat(&[&x.detach(), &x_dot.detach()], 0)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let z = layer.matmul_detached(&h)?;
            h = bias_act_tangent(&z, &layer.bias.as_detached_tensor(), i != last)?;
        }
        Ok((h.narrow(0, 0, batch)?, h.narrow(0, batch, batch)?))
    }

    fn tangent_unfused(&self, x: &Tensor, x_dot: &Tensor) -> Result<(Tensor, Tensor)> {
        let last = self.layers.len() - 1;
        let (mut h, mut h_dot) = (x.detach(), x_dot.detach());
        for (i, layer) in self.layers.iter().enumerate() {
            let z = layer.matmul_detached(&h)?.broadcast_add(&layer.bias.as_detached_tensor())?;
            let z_dot = layer.matmul_detached(&h_dot)?;
            if i == last {
                (h, h_dot) = (z, z_dot);
            } else {
                h_dot = (mish_grad_unfused(&z)? * z_dot)?;
                h = mish_unfused(&z)?;
            }
        }
        Ok((h, h_dot))
    }
}

impl NamedVars for Mlp {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        let mut out = Vec::with_capacity(2 * self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            out.push((format!("l{i}.weight"), &layer.weight));
            out.push((format!("l{i}.bias"), &layer.bias));
        }
        out
    }
}
