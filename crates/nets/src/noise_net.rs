//! Diffusion-QL's noise-prediction network: eps(x_t, t | s) = MLP(concat(x_t, s, emb(t))),
//! Mish between layers, with the sinusoidal time embedding of [`TimeEmbedding`] (DQL: 16
//! features, an MLP 16 -> 32 -> Mish -> 16). t is the diffusion step 0..T-1.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;

use crate::embed::TimeEmbedding;
use crate::kernels::dense::CompiledMlp;
use crate::mlp::Mlp;
use crate::params::NamedVars;

#[derive(Debug, Clone, PartialEq)]
pub struct NoiseNetConfig {
    pub obs_dim: usize,
    pub act_dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub time_dim: usize,
    pub time_hidden: usize,
}

#[derive(Debug)]
pub struct NoiseNet {
    cfg: NoiseNetConfig,
    time: TimeEmbedding,
    mlp: Mlp,
}

impl NoiseNet {
    pub fn new<R: Rng>(
        cfg: &NoiseNetConfig,
        dtype: DType,
        dev: &Device,
        rng: &mut R,
    ) -> Result<NoiseNet> {
        assert!(
            cfg.act_dim > 0 && cfg.hidden > 0 && cfg.layers > 0,
            "bad noise-net config {cfg:?}"
        );
        let time = TimeEmbedding::new(cfg.time_dim, cfg.time_hidden, 1.0, dtype, dev, rng)?;
        let mut dims = vec![cfg.act_dim + cfg.obs_dim + cfg.time_dim];
        dims.extend(std::iter::repeat_n(cfg.hidden, cfg.layers));
        dims.push(cfg.act_dim);
        let mlp = Mlp::new(&dims, dtype, dev, rng)?;
        Ok(NoiseNet { cfg: cfg.clone(), time, mlp })
    }

    pub fn config(&self) -> &NoiseNetConfig {
        &self.cfg
    }

    /// An independent copy (new `Var`s): the EMA actor.
    pub fn deep_clone(&self) -> Result<NoiseNet> {
        Ok(NoiseNet {
            cfg: self.cfg.clone(),
            time: self.time.deep_clone()?,
            mlp: self.mlp.deep_clone()?,
        })
    }

    /// eps(x_t, t | s) with the autodiff graph. Shapes: x_t (B, A), t (B, 1), s (B, S).
    pub fn forward(&self, x_t: &Tensor, t: &Tensor, s: &Tensor) -> Result<Tensor> {
        let emb = self.time.forward(t)?;
        self.mlp.forward(&Tensor::cat(&[x_t, s, &emb], 1)?)
    }

    /// The network at step `t` compiled for one observation at a time: emb(t) is folded into
    /// the first layer's bias, so it reads [x_t, s].
    pub fn compile_step(&self, t: usize) -> Result<CompiledMlp> {
        CompiledMlp::new(self.mlp.layers(), &self.embedding(t)?)
    }

    /// The network compiled once for steps 0..steps, with each step's first-layer bias (its
    /// emb(t) folded in): the weights are shared, so a whole chain stays in cache.
    pub fn compile_steps(&self, steps: usize) -> Result<(CompiledMlp, Vec<Vec<f32>>)> {
        let mlp = self.compile_step(0)?;
        let biases = (0..steps)
            .map(|t| CompiledMlp::first_bias_for(self.mlp.layers(), &self.embedding(t)?))
            .collect::<Result<_>>()?;
        Ok((mlp, biases))
    }

    /// emb(t) as f32.
    fn embedding(&self, t: usize) -> Result<Vec<f32>> {
        let col = Tensor::full(t as f64, (1, 1), &Device::Cpu)?
            .to_dtype(self.mlp.layers()[0].weight.dtype())?;
        self.time.forward(&col)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
    }
}

impl NamedVars for NoiseNet {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        let mut out: Vec<(String, &Var)> =
            self.time.named_vars().into_iter().map(|(n, v)| (format!("time.{n}"), v)).collect();
        out.extend(self.mlp.named_vars().into_iter().map(|(n, v)| (format!("mlp.{n}"), v)));
        out
    }
}
