//! Twin critics Q_1, Q_2 (spec section 2): two independent MLPs on concat(s, a).

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::Rng;

use crate::kernels::dense::CompiledMlp;
use crate::mlp::{Kernels, Mlp};
use crate::params::NamedVars;

#[derive(Debug)]
pub struct DoubleQ {
    pub q1: Mlp,
    pub q2: Mlp,
}

impl DoubleQ {
    /// Each head: (obs_dim + act_dim) -> hidden x layers (Mish) -> 1.
    pub fn new<R: Rng>(
        obs_dim: usize,
        act_dim: usize,
        hidden: usize,
        layers: usize,
        dtype: DType,
        dev: &Device,
        rng: &mut R,
    ) -> Result<DoubleQ> {
        let mut dims = vec![obs_dim + act_dim];
        dims.extend(std::iter::repeat_n(hidden, layers));
        dims.push(1);
        Ok(DoubleQ { q1: Mlp::new(&dims, dtype, dev, rng)?, q2: Mlp::new(&dims, dtype, dev, rng)? })
    }

    /// Target copies (new `Var`s).
    pub fn deep_clone(&self) -> Result<DoubleQ> {
        Ok(DoubleQ { q1: self.q1.deep_clone()?, q2: self.q2.deep_clone()? })
    }

    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.q1.set_kernels(kernels);
        self.q2.set_kernels(kernels);
    }

    /// (Q_1(s, a), Q_2(s, a)), each (B, 1).
    pub fn forward(&self, s: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = Tensor::cat(&[s, a], 1)?;
        Ok((self.q1.forward(&x)?, self.q2.forward(&x)?))
    }

    /// (Q_1(s, a), Q_2(s, a)) with the critics' weights held constant (gradients reach s and
    /// a only; see [`Mlp::forward_frozen`]).
    pub fn forward_frozen(&self, s: &Tensor, a: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = Tensor::cat(&[s, a], 1)?;
        Ok((self.q1.forward_frozen(&x)?, self.q2.forward_frozen(&x)?))
    }

    /// min_i Q_i(s, a), (B, 1).
    pub fn min(&self, s: &Tensor, a: &Tensor) -> Result<Tensor> {
        let (q1, q2) = self.forward(s, a)?;
        q1.minimum(&q2)
    }
}

impl NamedVars for DoubleQ {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        let q1 = self.q1.named_vars().into_iter().map(|(n, v)| (format!("q1.{n}"), v));
        let q2 = self.q2.named_vars().into_iter().map(|(n, v)| (format!("q2.{n}"), v));
        q1.chain(q2).collect()
    }
}

/// min(Q_1, Q_2) of a [`DoubleQ`] frozen at the moment it was compiled, on plain f32 slices:
/// the Q-softmax protocol's scoring of K candidate actions for one observation. The
/// observation's share of each head's first layer is computed once per call, not per action.
#[derive(Debug, Clone)]
pub struct CompiledDoubleQ {
    obs_dim: usize,
    act_dim: usize,
    q1: CompiledMlp,
    q2: CompiledMlp,
}

impl CompiledDoubleQ {
    /// Compile `q`, whose heads read concat(s, a) with `act_dim` action columns.
    pub fn new(q: &DoubleQ, act_dim: usize) -> Result<CompiledDoubleQ> {
        let (q1, q2) =
            (CompiledMlp::new(q.q1.layers(), &[])?, CompiledMlp::new(q.q2.layers(), &[])?);
        Ok(CompiledDoubleQ::from_heads(q1, q2, act_dim))
    }

    /// Two compiled heads of one shape that read concat(s, a) with `act_dim` action columns
    /// (FQL's critics: `GeluMlp::compile`).
    pub fn from_heads(q1: CompiledMlp, q2: CompiledMlp, act_dim: usize) -> CompiledDoubleQ {
        assert!(act_dim <= q1.in_dim(), "critic input {} < act_dim {act_dim}", q1.in_dim());
        assert_eq!(q1.in_dim(), q2.in_dim(), "critic heads of different inputs");
        CompiledDoubleQ { obs_dim: q1.in_dim() - act_dim, act_dim, q1, q2 }
    }

    /// out[k] = min_i Q_i(obs, actions[k]) for the K rows of `actions` (K x act_dim).
    pub fn min_q(&mut self, obs: &[f32], actions: &[f32], out: &mut [f32]) {
        let (s, a) = (self.obs_dim, self.act_dim);
        assert_eq!(obs.len(), s, "observation size");
        assert_eq!(actions.len(), out.len() * a, "actions size");
        let k = out.len();
        out.copy_from_slice(self.q1.forward_rows(actions, s..s + a, obs, 0..s, k));
        let q2 = self.q2.forward_rows(actions, s..s + a, obs, 0..s, k);
        for (o, q) in out.iter_mut().zip(q2) {
            *o = o.min(*q);
        }
    }
}
