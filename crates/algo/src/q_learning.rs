//! What OFQL and Diffusion-QL share: DQL's clipped double-Q critic step and TD target (with the
//! max-Q backup), and its normalised Q term, each for any policy given as a function of
//! (states, noise). The policy's own loss is the method's.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{D, DType, Tensor};
use ofql_data::replay::Batch;
use ofql_nets::{Adam, DoubleQ, NamedVars, copy_params, cosine_lr, ema_update, soft_update};

use crate::config::{ActorConfig, Config, CriticConfig};
use crate::schedule::{Shards, add_all, rows_of};

/// Critic step: L = mse(Q_1, y) + mse(Q_2, y), an Adam step, then (when `step`, the step
/// this update completes, is a multiple of `target_every`) the Polyak step of the target
/// critics: nothing later in the update reads them.
pub(crate) fn critic_step(
    c: &CriticConfig,
    (critic, target, opt): (&DoubleQ, &DoubleQ, &mut Adam),
    step: u64,
    batch: &Batch,
    y: &Tensor,
) -> Result<CriticStep> {
    let n = y.dim(0)? as f64;
    let (q1, q2) = critic.forward(&batch.observations, &batch.actions)?;
    let loss = ((sq_error_sum(&q1, y)? / n)? + (sq_error_sum(&q2, y)? / n)?)?;
    let grad_norm = opt.step_clipped(&[&loss.backward()?], clip_norm(c.grad_norm))?;
    if step.is_multiple_of(c.target_every) {
        soft_update(target, critic, c.tau)?;
    }
    Ok(CriticStep { loss, q1_sum: q1.sum_all()?, grad_norm })
}

pub(crate) struct CriticStep {
    pub loss: Tensor,
    /// sum of Q_1(s, a) over the batch's actions.
    pub q1_sum: Tensor,
    pub grad_norm: f64,
}

/// DQL's normalised Q term on a random head of the critics (held constant: this loss trains
/// the actor), -mean Q_head(s, pi(s)) / mean |Q_other(s, pi(s))|, with pi(s) =
/// `actions(s, noise)` differentiable in the actor, by row shards: every shard's forward
/// pass comes before any backward pass, since the normaliser is over the whole batch.
pub(crate) fn q_term(
    critic: &DoubleQ,
    actions: &(dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Sync),
    batch: &Batch,
    noise: &Tensor,
    head_1: bool,
    eta: f64,
    shards: &Shards,
) -> Result<QTerm> {
    let n = batch.actions.dim(0)? as f64;
    let forward = shards.map(|_, rows| {
        let b = rows_of(batch, &rows)?;
        let noise = noise.narrow(0, rows.start, rows.len())?;
        let s = &b.observations;
        let a_pi = actions(s, &noise)?;
        let (q1_pi, q2_pi) = critic.forward_frozen(s, &a_pi)?;
        let q1_sum = q1_pi.sum_all()?.detach();
        let (q_main, q_norm) = if head_1 { (q1_pi, q2_pi) } else { (q2_pi, q1_pi) };
        Ok((q_main.sum_all()?, q_norm.abs()?.sum_all()?.detach(), q1_sum))
    })?;
    let q_norm = (add_all(forward.iter().map(|f| &f.1))? / n)?;
    let q1_policy_mean = (add_all(forward.iter().map(|f| &f.2))? / n)?;
    let parts = shards.map(|i, _| {
        let q = ((&forward[i].0 / n)?.neg()? / &q_norm)?;
        Ok(((&q * eta)?.backward()?, q))
    })?;
    let q = add_all(parts.iter().map(|(_, q)| q))?;
    Ok(QTerm { grads: parts.into_iter().map(|(g, _)| g).collect(), q, q1_policy_mean })
}

pub(crate) struct QTerm {
    /// The shards' gradients of eta times the term.
    pub grads: Vec<GradStore>,
    /// The term.
    pub q: Tensor,
    /// mean Q_1(s, pi(s)) over the batch: beside Q_1 on the data's actions it shows whether
    /// the critic values the actor's own actions above the data's (over-estimation).
    pub q1_policy_mean: Tensor,
}

/// The TD targets of a batch by row shards (`noise` has k rows per next state).
pub(crate) fn td_targets(
    c: &CriticConfig,
    next_actions: &(dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Sync),
    critic_target: &DoubleQ,
    batch: &Batch,
    noise: &Tensor,
    shards: &Shards,
) -> Result<Tensor> {
    let k = noise.dim(0)? / batch.actions.dim(0)?;
    let y = shards.map(|_, rows| {
        let b = rows_of(batch, &rows)?;
        let noise = noise.narrow(0, rows.start * k, rows.len() * k)?;
        td_target(c, next_actions, critic_target, &b, &noise)
    })?;
    Ok(Tensor::cat(&y, 0)?)
}

/// The TD target, without gradient, with a' = `next_actions(s', noise)` (the EMA actor;
/// `noise` has B x k rows). With the max-Q backup (AntMaze), s' is repeated k = `max_q_samples`
/// times and each target head takes its max over the samples. `critic.q_max` caps the value.
pub(crate) fn td_target(
    c: &CriticConfig,
    next_actions: &(dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + Sync),
    critic_target: &DoubleQ,
    batch: &Batch,
    noise: &Tensor,
) -> Result<Tensor> {
    let (r, s2, done) = (&batch.rewards, &batch.next_observations, &batch.dones);
    let b = s2.dim(0)?;
    let min_q = if c.max_q_backup {
        let k = c.max_q_samples;
        // repeat_interleave: row i of s' becomes rows i*k .. i*k+k-1.
        let s2k = s2.unsqueeze(1)?.repeat((1, k, 1))?.reshape((b * k, s2.dim(1)?))?;
        let a2 = next_actions(&s2k, noise)?;
        let (q1, q2) = critic_target.forward(&s2k, &a2)?;
        let q1 = q1.reshape((b, k))?.max_keepdim(D::Minus1)?;
        let q2 = q2.reshape((b, k))?.max_keepdim(D::Minus1)?;
        q1.minimum(&q2)?
    } else {
        let a2 = next_actions(s2, noise)?;
        critic_target.min(s2, &a2)?
    };
    let min_q = bounded(c, min_q)?;
    let not_done = (1.0 - done)?;
    Ok((r + (not_done * min_q)?.affine(c.gamma, 0.0)?)?.detach())
}

/// The bootstrapped value capped at `critic.q_max` when one is set.
pub(crate) fn bounded(c: &CriticConfig, q: Tensor) -> Result<Tensor> {
    Ok(match c.q_max {
        Some(m) => q.minimum(m)?,
        None => q,
    })
}

/// The clip threshold for a config's `grad_norm`: 0 means no clipping.
pub(crate) fn clip_norm(grad_norm: f64) -> f64 {
    if grad_norm == 0.0 { f64::INFINITY } else { grad_norm }
}

/// Sum over all elements of (x - y)^2.
fn sq_error_sum(x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    (x - y)?.sqr()?.sum_all()
}

pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Both learning rates at `step` (`train.lr_schedule`: DQL's cosine decay by default).
pub(crate) fn learning_rates(cfg: &Config, step: u64) -> (f64, f64) {
    let t = &cfg.train;
    let at = |lr: f64| match t.lr_schedule.as_str() {
        "constant" => lr,
        _ => cosine_lr(lr, t.lr_floor, step, t.steps),
    };
    (at(cfg.actor.lr), at(cfg.critic.lr))
}

/// The EMA actor on DQL's schedule after `step` updates: every `ema_every` steps, a copy of
/// the actor before `ema_start` (DQL's code; CleanDiffuser leaves it alone: "hold"), the EMA
/// from then on.
pub(crate) fn ema_step(
    a: &ActorConfig,
    step: u64,
    ema: &impl NamedVars,
    actor: &impl NamedVars,
) -> Result<()> {
    if step.is_multiple_of(a.ema_every) {
        if step >= a.ema_start {
            ema_update(ema, actor, a.ema_decay)?;
        } else if a.ema_warmup == "copy" {
            copy_params(ema, actor)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    /// `critic.q_max` caps min Q'(s', a') before discounting: y = r + gamma (1 - d)
    /// min(Q', q_max); terminal rows keep y = r; with no cap the target is unchanged.
    #[test]
    fn q_max_caps_the_bootstrapped_value() {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let q = DoubleQ::new(3, 2, 16, 2, DType::F32, &dev, &mut rng).unwrap();
        let (b, obs) = (6usize, 3usize);
        let s2 = Tensor::randn(0f32, 1.0, (b, obs), &dev).unwrap();
        let batch = Batch {
            observations: s2.clone(),
            actions: Tensor::zeros((b, 2), DType::F32, &dev).unwrap(),
            rewards: Tensor::new(&[[0.5f32], [-1.0], [0.0], [1.0], [-0.5], [2.0]], &dev).unwrap(),
            next_observations: s2,
            dones: Tensor::new(&[[0f32], [0.0], [1.0], [0.0], [0.0], [0.0]], &dev).unwrap(),
        };
        let next = |s: &Tensor, _: &Tensor| Ok((s.narrow(1, 0, 2)? * 0.5)?);
        let noise = Tensor::zeros((b, 2), DType::F32, &dev).unwrap();
        let mut c = Config::default().critic;
        let plain: Vec<f32> = td_target(&c, &next, &q, &batch, &noise)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Cap at the median of the uncapped values, so some rows are cut and some are not.
        let qs: Vec<f32> = {
            let a2 = next(&batch.next_observations, &noise).unwrap();
            q.min(&batch.next_observations, &a2).unwrap().flatten_all().unwrap().to_vec1().unwrap()
        };
        let mut sorted = qs.clone();
        sorted.sort_by(f32::total_cmp);
        let cap = sorted[b / 2] as f64;
        c.q_max = Some(cap);
        let capped: Vec<f32> = td_target(&c, &next, &q, &batch, &noise)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let r: Vec<f32> = batch.rewards.flatten_all().unwrap().to_vec1().unwrap();
        let d: Vec<f32> = batch.dones.flatten_all().unwrap().to_vec1().unwrap();
        let mut cut = 0;
        for i in 0..b {
            let want = r[i] as f64 + c.gamma * (1.0 - d[i] as f64) * (qs[i] as f64).min(cap);
            assert!((capped[i] as f64 - want).abs() < 1e-5, "row {i}");
            let unc = r[i] as f64 + c.gamma * (1.0 - d[i] as f64) * qs[i] as f64;
            assert!((plain[i] as f64 - unc).abs() < 1e-5, "row {i}");
            cut += usize::from(capped[i] < plain[i]);
        }
        assert!(cut >= 1, "the cap changed nothing: {plain:?} {capped:?}");
    }
}
