//! The average-velocity network u_theta(a_t, r, t | s) of spec section 2.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::embed::TimeEmbedding;
use crate::mlp::{Kernels, Mlp};
use crate::params::NamedVars;

/// Architecture of the velocity network; the defaults are the spec's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VelocityConfig {
    pub obs_dim: usize,
    pub act_dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub time_dim: usize,
    pub time_hidden: usize,
    /// k in cos/sin(k t f).
    pub time_scale: f64,
    /// One time-MLP for t and r (true) or one each.
    pub share_time_mlp: bool,
}

impl Default for VelocityConfig {
    fn default() -> Self {
        VelocityConfig {
            obs_dim: 0,
            act_dim: 0,
            hidden: 256,
            layers: 3,
            time_dim: 64,
            time_hidden: 128,
            time_scale: 1.0,
            share_time_mlp: true,
        }
    }
}

/// u(a_t, r, t | s) = MLP(concat(a_t, s, emb(t), emb(r))).
#[derive(Debug)]
pub struct VelocityNet {
    cfg: VelocityConfig,
    time_t: TimeEmbedding,
    /// Present only when t and r have separate time-MLPs.
    time_r: Option<TimeEmbedding>,
    mlp: Mlp,
}

impl VelocityNet {
    pub fn new<R: Rng>(
        cfg: &VelocityConfig,
        dtype: DType,
        dev: &Device,
        rng: &mut R,
    ) -> Result<VelocityNet> {
        assert!(cfg.act_dim > 0 && cfg.hidden > 0 && cfg.layers > 0, "bad velocity config {cfg:?}");
        let emb = |rng: &mut R| {
            TimeEmbedding::new(cfg.time_dim, cfg.time_hidden, cfg.time_scale, dtype, dev, rng)
        };
        let time_t = emb(rng)?;
        let time_r = if cfg.share_time_mlp { None } else { Some(emb(rng)?) };
        let mut dims = vec![cfg.act_dim + cfg.obs_dim + 2 * cfg.time_dim];
        dims.extend(std::iter::repeat_n(cfg.hidden, cfg.layers));
        dims.push(cfg.act_dim);
        let mlp = Mlp::new(&dims, dtype, dev, rng)?;
        Ok(VelocityNet { cfg: cfg.clone(), time_t, time_r, mlp })
    }

    pub fn config(&self) -> &VelocityConfig {
        &self.cfg
    }

    /// An independent copy (new `Var`s): the EMA actor.
    pub fn deep_clone(&self) -> Result<VelocityNet> {
        Ok(VelocityNet {
            cfg: self.cfg.clone(),
            time_t: self.time_t.deep_clone()?,
            time_r: self.time_r.as_ref().map(TimeEmbedding::deep_clone).transpose()?,
            mlp: self.mlp.deep_clone()?,
        })
    }

    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.time_t.set_kernels(kernels);
        if let Some(e) = &mut self.time_r {
            e.set_kernels(kernels);
        }
        self.mlp.set_kernels(kernels);
    }

    fn inputs(&self, a_t: &Tensor, s: &Tensor, emb_t: Tensor, emb_r: Tensor) -> Result<Tensor> {
        if self.cfg.obs_dim == 0 {
            Tensor::cat(&[a_t, &emb_t, &emb_r], 1)
        } else {
            Tensor::cat(&[a_t, s, &emb_t, &emb_r], 1)
        }
    }

    /// [emb(t), emb(r)] as the MLP's input sees them, shape (B, 2 * time_dim).
    pub fn time_embeddings(&self, t: &Tensor, r: &Tensor) -> Result<Tensor> {
        let (emb_t, emb_r) = self.embed(t, r)?;
        Tensor::cat(&[emb_t, emb_r], 1)
    }

    /// (emb(t), emb(r)) with the autodiff graph: one pass through a shared time-MLP.
    fn embed(&self, t: &Tensor, r: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(match &self.time_r {
            None => {
                let b = t.dim(0)?;
                let both = self.time_t.forward(&Tensor::cat(&[t, r], 0)?)?;
                (both.narrow(0, 0, b)?, both.narrow(0, b, b)?)
            }
            Some(time_r) => (self.time_t.forward(t)?, time_r.forward(r)?),
        })
    }

    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    pub fn dtype(&self) -> DType {
        self.mlp.layers()[0].weight.dtype()
    }

    /// u(a_t, r, t | s) with the autodiff graph. Shapes: a_t (B, A), r and t (B, 1), s (B, S)
    /// (with S = 0 the state is ignored: the toy experiment).
    pub fn forward(&self, a_t: &Tensor, r: &Tensor, t: &Tensor, s: &Tensor) -> Result<Tensor> {
        let (emb_t, emb_r) = self.embed(t, r)?;
        self.mlp.forward(&self.inputs(a_t, s, emb_t, emb_r)?)
    }

    /// (u, du) where du is the Jacobian-vector product of u along the tangent
    /// (a_t_dot, r_dot, t_dot) with the state held fixed. No autodiff graph (stop-gradient).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_with_tangent(
        &self,
        a_t: &Tensor,
        r: &Tensor,
        t: &Tensor,
        s: &Tensor,
        a_t_dot: &Tensor,
        r_dot: &Tensor,
        t_dot: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (u, du) = self.forward_and_tangent(a_t, r, t, s, a_t_dot, r_dot, t_dot)?;
        Ok((u.detach(), du))
    }

    /// (u with the autodiff graph, du without one): what the MeanFlow loss needs, in one
    /// pass (see [`Mlp::forward_and_tangent`]). Same arguments as `forward_with_tangent`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_and_tangent(
        &self,
        a_t: &Tensor,
        r: &Tensor,
        t: &Tensor,
        s: &Tensor,
        a_t_dot: &Tensor,
        r_dot: &Tensor,
        t_dot: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let ((emb_t, emb_t_dot), (emb_r, emb_r_dot)) = match &self.time_r {
            None => {
                let b = t.dim(0)?;
                let (e, e_dot) = self.time_t.forward_and_tangent(
                    &Tensor::cat(&[t, r], 0)?,
                    &Tensor::cat(&[t_dot, r_dot], 0)?,
                )?;
                (
                    (e.narrow(0, 0, b)?, e_dot.narrow(0, 0, b)?),
                    (e.narrow(0, b, b)?, e_dot.narrow(0, b, b)?),
                )
            }
            Some(time_r) => {
                (self.time_t.forward_and_tangent(t, t_dot)?, time_r.forward_and_tangent(r, r_dot)?)
            }
        };
        let x = self.inputs(&a_t.detach(), &s.detach(), emb_t, emb_r)?;
        let s_dot = s.zeros_like()?;
        let x_dot = self.inputs(&a_t_dot.detach(), &s_dot, emb_t_dot, emb_r_dot)?;
        self.mlp.forward_and_tangent(&x, &x_dot)
    }
}

impl NamedVars for VelocityNet {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        fn prefixed<'a>(
            p: &str,
            vars: Vec<(String, &'a Var)>,
        ) -> impl Iterator<Item = (String, &'a Var)> {
            vars.into_iter().map(move |(n, v)| (format!("{p}.{n}"), v))
        }
        let mut out: Vec<(String, &Var)> = prefixed("time", self.time_t.named_vars()).collect();
        if let Some(e) = &self.time_r {
            out.extend(prefixed("time_r", e.named_vars()));
        }
        out.extend(prefixed("mlp", self.mlp.named_vars()));
        out
    }
}
