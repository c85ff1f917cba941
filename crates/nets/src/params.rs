//! Named parameters: stable names for checkpoints, target copies, Polyak and EMA updates.

use candle_core::{Result, Tensor, Var};

use crate::kernels::mix::{Mix, fusable, per_param};

/// A network's parameters in a fixed order, each with a stable name (e.g. `l0.weight`).
pub trait NamedVars {
    fn named_vars(&self) -> Vec<(String, &Var)>;

    /// The parameters alone, in the same order (for optimisers and gradient clipping).
    fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// Names with a prefix, as they appear in a checkpoint: `{prefix}.{name}`.
    fn prefixed_vars(&self, prefix: &str) -> Vec<(String, Var)> {
        self.named_vars().into_iter().map(|(n, v)| (format!("{prefix}.{n}"), v.clone())).collect()
    }

    fn num_params(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// Pairs the parameters of two networks of the same architecture by name, or says which
/// name is missing or has another shape.
fn paired<'a>(
    target: &'a impl NamedVars,
    source: &'a impl NamedVars,
) -> Result<Vec<(&'a Var, &'a Var)>> {
    let (t, s) = (target.named_vars(), source.named_vars());
    if t.len() != s.len() {
        candle_core::bail!("networks differ: {} vs {} parameter tensors", t.len(), s.len());
    }
    t.into_iter()
        .zip(s)
        .map(|((tn, tv), (sn, sv))| {
            if tn != sn || tv.dims() != sv.dims() {
                candle_core::bail!(
                    "parameter mismatch: {tn} {:?} vs {sn} {:?}",
                    tv.dims(),
                    sv.dims()
                );
            }
            Ok((tv, sv))
        })
        .collect()
}

/// Polyak averaging: target <- tau * source + (1 - tau) * target. Each parameter is mixed in
/// place in one pass (the same numbers as candle's `s * tau + t * (1 - tau)`); with several
/// rayon threads the parameters are mixed side by side.
pub fn soft_update(target: &impl NamedVars, source: &impl NamedVars, tau: f64) -> Result<()> {
    let mix = |(t, s): (&Var, &Var)| -> Result<()> {
        if fusable(t, s) {
            return t.inplace_op2(s, &Mix { tau });
        }
        let mixed = ((s.as_detached_tensor() * tau)? + (t.as_detached_tensor() * (1.0 - tau))?)?;
        t.set(&mixed)
    };
    per_param(paired(target, source)?, mix)?;
    Ok(())
}

/// EMA with decay beta: ema <- beta * ema + (1 - beta) * source.
pub fn ema_update(ema: &impl NamedVars, source: &impl NamedVars, decay: f64) -> Result<()> {
    soft_update(ema, source, 1.0 - decay)
}

/// target <- source (values copied; the two keep separate storage).
pub fn copy_params(target: &impl NamedVars, source: &impl NamedVars) -> Result<()> {
    for (t, s) in paired(target, source)? {
        t.set(&s.as_detached_tensor())?;
    }
    Ok(())
}

/// A fresh `Var` holding a copy of `v` (for building target networks).
pub fn clone_var(v: &Var) -> Result<Var> {
    Var::from_tensor(&v.as_detached_tensor().copy()?)
}

/// Sum of squares of all parameters as f64 (a cheap fingerprint for tests and logs).
pub fn param_sq_norm(net: &impl NamedVars) -> Result<f64> {
    let mut total = 0.0;
    for (_, v) in net.named_vars() {
        total += v
            .as_detached_tensor()
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(total)
}

/// The parameters' current values, detached, by name.
/// Copied, because `Var::set` writes in place into storage that detached views share.
pub fn snapshot(net: &impl NamedVars) -> Result<Vec<(String, Tensor)>> {
    net.named_vars().into_iter().map(|(n, v)| Ok((n, v.as_detached_tensor().copy()?))).collect()
}
