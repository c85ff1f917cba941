//! The OFQL update: Algorithm 1 of the paper, in DQL's order (critic first).
//!
//! One call of [`Ofql::update`] is one training iteration on one batch:
//! 1. critic: a' from the EMA actor in one step, clipped double-Q target, Adam step, then the
//!    Polyak step of the target critics (every `target_every` steps; nothing after reads
//!    them);
//! 2. actor: MeanFlow loss + eta * DQL's normalised Q term, Adam step;
//! 3. targets: the EMA actor every `ema_every` steps.
//!
//! All randomness (noise, (t, r), the head of the Q term) comes from one seeded ChaCha
//! generator owned by the agent, so a seed fixes the run and a checkpoint can resume it.

use anyhow::{Context, Result};
use std::ops::Range;

use candle_core::backprop::GradStore;
use candle_core::{D, DType, Device, Tensor};
use ofql_data::replay::Batch;
use ofql_flow::{
    MeanFlowConfig, MeanFlowDraw, clamp_actions, gaussian, meanflow_sq_error, one_step_sample,
};
use ofql_nets::{
    Adam, AdamConfig, Checkpoint, DoubleQ, NamedVars, VelocityConfig, VelocityNet, copy_params,
    cosine_lr, ema_update, soft_update,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{Config, CriticConfig};
use crate::prepare::ObsNorm;

/// The numbers one update reports (all from the batch it trained on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Losses {
    pub critic: f64,
    /// L_FBC, the MeanFlow behaviour-cloning loss.
    pub flow: f64,
    /// DQL's normalised Q term (before eta).
    pub q: f64,
    pub actor: f64,
    /// Mean of Q_1(s, a) on the dataset actions.
    pub q_mean: f64,
    /// Global gradient norms before clipping.
    pub critic_grad_norm: f64,
    pub actor_grad_norm: f64,
    pub actor_lr: f64,
    pub critic_lr: f64,
}

impl Losses {
    pub fn all_finite(&self) -> bool {
        [self.critic, self.flow, self.q, self.actor, self.q_mean].iter().all(|x| x.is_finite())
    }
}

pub struct Ofql {
    cfg: Config,
    pub actor: VelocityNet,
    pub actor_ema: VelocityNet,
    pub critic: DoubleQ,
    pub critic_target: DoubleQ,
    actor_opt: Adam,
    critic_opt: Adam,
    rng: ChaCha8Rng,
    step: u64,
    obs_dim: usize,
    act_dim: usize,
    device: Device,
    /// Set when the data was normalised: the policy normalises what it observes the same way.
    pub obs_norm: Option<ObsNorm>,
    /// Threads (batch shards) per update; see [`Ofql::update`].
    threads: usize,
}

impl Ofql {
    /// Fresh networks, initialised from `cfg.train.seed`.
    pub fn new(cfg: &Config, obs_dim: usize, act_dim: usize, device: &Device) -> Result<Ofql> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.seed);
        let vcfg = VelocityConfig {
            obs_dim,
            act_dim,
            hidden: cfg.actor.hidden,
            layers: cfg.actor.layers,
            time_scale: cfg.actor.time_scale,
            ..VelocityConfig::default()
        };
        let actor = VelocityNet::new(&vcfg, DType::F32, device, &mut rng)?;
        let actor_ema = actor.deep_clone()?;
        let (c, hidden) = (&cfg.critic, cfg.critic.hidden);
        let critic = DoubleQ::new(obs_dim, act_dim, hidden, 3, DType::F32, device, &mut rng)?;
        let critic_target = critic.deep_clone()?;
        let adam = |lr| AdamConfig { lr, ..AdamConfig::default() };
        let actor_opt = Adam::new(actor.prefixed_vars("actor"), adam(cfg.actor.lr))?;
        let critic_opt = Adam::new(critic.prefixed_vars("critic"), adam(c.lr))?;
        Ok(Ofql {
            cfg: cfg.clone(),
            actor,
            actor_ema,
            critic,
            critic_target,
            actor_opt,
            critic_opt,
            rng,
            step: 0,
            obs_dim,
            act_dim,
            device: device.clone(),
            obs_norm: None,
            threads: candle_core::utils::get_num_threads(),
        })
    }

    /// Threads for [`Ofql::update`] (default: candle's count, RAYON_NUM_THREADS or the
    /// cores). A seed and a thread count fix a run's numbers.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Gradient steps taken so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    pub fn act_dim(&self) -> usize {
        self.act_dim
    }

    /// One iteration of Algorithm 1 on `batch`.
    ///
    /// Every random number of the update is drawn first, in one order (target noise, the
    /// MeanFlow sample, the policy noise, the Q term's head). With several threads the work
    /// is then split two ways: the TD target and the Q term are cut into row shards, one per
    /// thread (each shard's loss is its rows' share of the batch loss, and the shards'
    /// gradients are added before the optimiser step), and the critic loss and the MeanFlow
    /// loss, which do not depend on each other, run side by side on the whole batch (so their
    /// weight-gradient products keep all 256 rows). A seed and a thread count fix every
    /// number; threads only change the order in which a gradient's rows are summed (1e-7
    /// relative).
    pub fn update(&mut self, batch: &Batch) -> Result<Losses> {
        // With several threads the update runs on one of rayon's workers (the caller waits):
        // its joins then hand work to the other worker by work stealing, instead of waking
        // the pool from outside for each of the step's ten or so parallel sections
        // (0.2-0.3 ms of a 6.2 ms step on 2 threads).
        if self.threads > 1 && rayon::current_thread_index().is_none() {
            return rayon::scope(|_| self.update_on_worker(batch));
        }
        self.update_on_worker(batch)
    }

    /// [`Ofql::update`], on the thread it is called on.
    fn update_on_worker(&mut self, batch: &Batch) -> Result<Losses> {
        let (cfg_a, cfg_c) = (self.cfg.actor.clone(), self.cfg.critic.clone());
        let (n, act_dim) = batch.actions.dims2()?;
        let shards = shards(n, self.threads);

        // Cosine decay of both learning rates over the run (DQL's setting).
        let total = self.cfg.train.steps;
        let actor_lr = cosine_lr(cfg_a.lr, 0.0, self.step, total);
        let critic_lr = cosine_lr(cfg_c.lr, 0.0, self.step, total);
        self.actor_opt.set_lr(actor_lr);
        self.critic_opt.set_lr(critic_lr);

        let k = if cfg_c.max_q_backup { cfg_c.max_q_samples } else { 1 };
        let target_noise = self.noise(n * k)?;
        let flow_cfg = MeanFlowConfig { flow_ratio: cfg_a.flow_ratio, ..MeanFlowConfig::default() };
        let flow_draw =
            MeanFlowDraw::new(n, act_dim, &flow_cfg, DType::F32, &self.device, &mut self.rng)?;
        let policy_noise = self.noise(n)?;
        let head_1 = self.rng.random::<f64>() > 0.5;

        // 1. Critic: y = r + gamma (1 - d) min_i Q'_i(s', a'), a' from the EMA actor
        //    (no gradient: the row shards compute it side by side);
        //    L = mse(Q_1, y) + mse(Q_2, y), an Adam step, then (every `target_every` steps)
        //    the Polyak step of the target critics (nothing later in the update reads them).
        let y = on_shards(&shards, |_, rows| {
            let b = rows_of(batch, &rows)?;
            let noise = target_noise.narrow(0, rows.start * k, rows.len() * k)?;
            td_target(&cfg_c, &self.actor_ema, &self.critic_target, &b, &noise)
        })?;
        let y = Tensor::cat(&y, 0)?;
        let (s, a) = (&batch.observations, &batch.actions);
        let critic = || -> Result<(f64, Tensor, Tensor)> {
            let (q1, q2) = self.critic.forward(s, a)?;
            let loss =
                ((sq_error_sum(&q1, &y)? / n as f64)? + (sq_error_sum(&q2, &y)? / n as f64)?)?;
            let grad_norm =
                self.critic_opt.step_clipped(&[&loss.backward()?], clip_norm(cfg_c.grad_norm))?;
            if (self.step + 1).is_multiple_of(cfg_c.target_every) {
                soft_update(&self.critic_target, &self.critic, cfg_c.tau)?;
            }
            Ok((grad_norm, loss, q1.sum_all()?))
        };
        //    The actor's MeanFlow loss L_FBC needs no critic: with two threads it trains
        //    beside the critic (both on the whole batch; the two take about equal work).
        let flow = || -> Result<(GradStore, Tensor)> {
            let (flow_sum, _, _) = meanflow_sq_error(&self.actor, s, a, &flow_draw)?;
            let flow = (flow_sum / (n * act_dim) as f64)?;
            Ok((flow.backward()?, flow))
        };
        let (critic, flow) = both(shards.len() > 1, critic, flow);
        let ((critic_grad_norm, critic_loss, q1_sum), (flow_grads, flow_loss)) = (critic?, flow?);

        // 2. Actor: L_FBC + eta * q_loss, DQL's normalised Q term on a random head of the
        //    updated critics (whose weights are held constant: this loss trains the actor),
        //    by row shards. The normaliser mean |Q_other| is over the whole batch, so every
        //    shard's forward pass comes before any backward pass.
        let forward = on_shards(&shards, |_, rows| {
            let b = rows_of(batch, &rows)?;
            let noise = policy_noise.narrow(0, rows.start, rows.len())?;
            let s = &b.observations;
            let a_pi = clamp_actions(&one_step_sample(&self.actor, s, &noise)?, -1.0, 1.0)?;
            let (q1_pi, q2_pi) = self.critic.forward_frozen(s, &a_pi)?;
            let (q_main, q_norm) = if head_1 { (q1_pi, q2_pi) } else { (q2_pi, q1_pi) };
            Ok((q_main.sum_all()?, q_norm.abs()?.sum_all()?.detach()))
        })?;
        let q_norm = (add_all(forward.iter().map(|f| &f.1))? / n as f64)?;
        let parts = on_shards(&shards, |i, _| {
            let q = ((&forward[i].0 / n as f64)?.neg()? / &q_norm)?;
            Ok(((&q * cfg_a.eta)?.backward()?, q))
        })?;
        let q_loss = add_all(parts.iter().map(|(_, q)| q))?;
        let actor_loss = (&flow_loss + (&q_loss * cfg_a.eta)?)?;
        // The actor's gradient: the Q term's shards, then L_FBC's (added inside Adam's loop).
        let mut grads: Vec<&GradStore> = parts.iter().map(|(g, _)| g).collect();
        grads.push(&flow_grads);
        let actor_grad_norm = self.actor_opt.step_clipped(&grads, clip_norm(cfg_a.grad_norm))?;

        // 3. Targets: the EMA actor on DQL's schedule (the target critics moved in step 1).
        self.step += 1;
        if self.step.is_multiple_of(cfg_a.ema_every) {
            if self.step < cfg_a.ema_start {
                // DQL copies the actor until the EMA starts; CleanDiffuser leaves it alone.
                if cfg_a.ema_warmup == "copy" {
                    copy_params(&self.actor_ema, &self.actor)?;
                }
            } else {
                ema_update(&self.actor_ema, &self.actor, cfg_a.ema_decay)?;
            }
        }

        Ok(Losses {
            critic: scalar(&critic_loss)?,
            flow: scalar(&flow_loss)?,
            q: scalar(&q_loss)?,
            actor: scalar(&actor_loss)?,
            q_mean: scalar(&(q1_sum / n as f64)?)?,
            critic_grad_norm,
            actor_grad_norm,
            actor_lr,
            critic_lr,
        })
    }

    /// e ~ N(0, I), shape (n, act_dim), from the agent's own generator.
    fn noise(&mut self, n: usize) -> Result<Tensor> {
        Ok(gaussian(&mut self.rng, n, self.act_dim, 1.0, DType::F32, &self.device)?)
    }

    /// Everything a resumed run needs: all networks, both optimisers, the RNG, the step.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let mut ck = Checkpoint::new();
        ck.add_vars("actor", &self.actor)?;
        ck.add_vars("actor_ema", &self.actor_ema)?;
        ck.add_vars("critic", &self.critic)?;
        ck.add_vars("critic_target", &self.critic_target)?;
        ck.add_adam("actor_opt", &self.actor_opt)?;
        ck.add_adam("critic_opt", &self.critic_opt)?;
        ck.set_json("rng", &self.rng)?;
        ck.set_json("config", &self.cfg)?;
        ck.set_json("dims", &(self.obs_dim, self.act_dim))?;
        ck.set_json("obs_norm", &self.obs_norm)?;
        ck.set_step(self.step);
        Ok(ck)
    }

    /// An agent rebuilt from a checkpoint alone (for evaluation and deployment).
    pub fn from_checkpoint(ck: &Checkpoint, device: &Device) -> Result<Ofql> {
        let cfg: Config = ck.json("config").context("checkpoint has no config")?;
        let (obs_dim, act_dim): (usize, usize) = ck.json("dims").context("network sizes")?;
        let mut agent = Ofql::new(&cfg, obs_dim, act_dim, device)?;
        agent.restore(ck)?;
        Ok(agent)
    }

    /// Restore from a checkpoint written by [`Ofql::checkpoint`] with the same sizes.
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.restore_vars("actor", &self.actor).context("actor")?;
        ck.restore_vars("actor_ema", &self.actor_ema).context("EMA actor")?;
        ck.restore_vars("critic", &self.critic).context("critics")?;
        ck.restore_vars("critic_target", &self.critic_target).context("target critics")?;
        ck.restore_adam("actor_opt", &mut self.actor_opt).context("actor optimiser")?;
        ck.restore_adam("critic_opt", &mut self.critic_opt).context("critic optimiser")?;
        let dims: (usize, usize) = ck.json("dims").context("network sizes")?;
        if dims != (self.obs_dim, self.act_dim) {
            anyhow::bail!(
                "checkpoint is for obs_dim {} / act_dim {}, this agent has {} / {}",
                dims.0,
                dims.1,
                self.obs_dim,
                self.act_dim
            );
        }
        self.rng = ck.json("rng").context("RNG state")?;
        self.obs_norm = ck.json("obs_norm").context("observation normalisation")?;
        self.step = ck.step()?;
        Ok(())
    }
}

/// The TD target, without gradient, with a' = one step of the EMA actor from `noise`
/// (B x k rows). With the max-Q backup (AntMaze), s' is repeated k = `max_q_samples`
/// times and each target head takes its max over the samples.
fn td_target(
    c: &CriticConfig,
    actor_ema: &VelocityNet,
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
        let a2 = clamp_actions(&one_step_sample(actor_ema, &s2k, noise)?, -1.0, 1.0)?;
        let (q1, q2) = critic_target.forward(&s2k, &a2)?;
        let q1 = q1.reshape((b, k))?.max_keepdim(D::Minus1)?;
        let q2 = q2.reshape((b, k))?.max_keepdim(D::Minus1)?;
        q1.minimum(&q2)?
    } else {
        let a2 = clamp_actions(&one_step_sample(actor_ema, s2, noise)?, -1.0, 1.0)?;
        critic_target.min(s2, &a2)?
    };
    let not_done = (1.0 - done)?;
    Ok((r + (not_done * min_q)?.affine(c.gamma, 0.0)?)?.detach())
}

/// Row ranges that split a batch of `n` rows over `threads` threads: one shard per thread,
/// each of at least 64 rows (a matrix product on fewer rows wastes most of a core).
fn shards(n: usize, threads: usize) -> Vec<Range<usize>> {
    let parts = threads.min(n / 64).max(1);
    let len = n.div_ceil(parts);
    (0..parts).map(|i| i * len..((i + 1) * len).min(n)).filter(|r| !r.is_empty()).collect()
}

/// `f(i, rows)` for every shard, on rayon's threads when there are several; results in
/// shard order.
fn on_shards<T: Send>(
    shards: &[Range<usize>],
    f: impl Fn(usize, Range<usize>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if let [only] = shards {
        return Ok(vec![f(0, only.clone())?]);
    }
    shards.par_iter().enumerate().map(|(i, rows)| f(i, rows.clone())).collect()
}

/// The rows `rows` of every tensor of a batch.
fn rows_of(batch: &Batch, rows: &Range<usize>) -> Result<Batch> {
    let part = |t: &Tensor| t.narrow(0, rows.start, rows.len());
    Ok(Batch {
        observations: part(&batch.observations)?,
        actions: part(&batch.actions)?,
        rewards: part(&batch.rewards)?,
        next_observations: part(&batch.next_observations)?,
        dones: part(&batch.dones)?,
    })
}

/// The sum of the shards' values, in order.
fn add_all<'a>(mut parts: impl Iterator<Item = &'a Tensor>) -> Result<Tensor> {
    let first = parts.next().context("a batch has at least one shard")?.clone();
    Ok(parts.try_fold(first, |acc, q| acc + q)?)
}

/// (f(), g()), side by side on rayon's threads when `parallel`.
fn both<A: Send, B: Send>(
    parallel: bool,
    f: impl FnOnce() -> A + Send,
    g: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel { rayon::join(f, g) } else { (f(), g()) }
}

/// The clip threshold for a config's `grad_norm`: 0 means no clipping.
fn clip_norm(grad_norm: f64) -> f64 {
    if grad_norm == 0.0 { f64::INFINITY } else { grad_norm }
}

/// Sum over all elements of (x - y)^2.
fn sq_error_sum(x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    (x - y)?.sqr()?.sum_all()
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}
