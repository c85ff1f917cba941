//! The OFQL update: Algorithm 1 of the paper, in DQL's order (critic first).
//!
//! One call of [`Ofql::update`] is one training iteration on one batch:
//! 1. critic: a' from the EMA actor in one step, clipped double-Q target, Adam step;
//! 2. actor: MeanFlow loss + eta * DQL's normalised Q term, Adam step;
//! 3. targets: Polyak critics every step, EMA actor every `ema_every` steps.
//!
//! All randomness (noise, (t, r), the head of the Q term) comes from one seeded ChaCha
//! generator owned by the agent, so a seed fixes the run and a checkpoint can resume it.

use anyhow::{Context, Result};
use candle_core::{D, DType, Device, Tensor};
use ofql_data::replay::Batch;
use ofql_flow::{MeanFlowConfig, clamp_actions, gaussian, meanflow_loss, one_step_sample};
use ofql_nets::{
    Adam, AdamConfig, Checkpoint, DoubleQ, NamedVars, VelocityConfig, VelocityNet, clip_grad_norm,
    copy_params, cosine_lr, ema_update, soft_update,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::Config;
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
        })
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
    pub fn update(&mut self, batch: &Batch) -> Result<Losses> {
        let (s, a) = (&batch.observations, &batch.actions);
        let (r, s2, done) = (&batch.rewards, &batch.next_observations, &batch.dones);
        let (cfg_a, cfg_c) = (self.cfg.actor.clone(), self.cfg.critic.clone());

        // Cosine decay of both learning rates over the run (DQL's setting).
        let total = self.cfg.train.steps;
        let actor_lr = cosine_lr(cfg_a.lr, 0.0, self.step, total);
        let critic_lr = cosine_lr(cfg_c.lr, 0.0, self.step, total);
        self.actor_opt.set_lr(actor_lr);
        self.critic_opt.set_lr(critic_lr);

        // 1. Critic: y = r + gamma (1 - d) min_i Q'_i(s', a'), a' from the EMA actor.
        let target = self.critic_target_value(r, s2, done)?;
        let (q1, q2) = self.critic.forward(s, a)?;
        let critic_loss = ((mse(&q1, &target)? + mse(&q2, &target)?)?).contiguous()?;
        let mut grads = critic_loss.backward()?;
        let critic_vars = self.critic_opt.vars();
        let critic_grad_norm = clip_grad_norm(&mut grads, &critic_vars, cfg_c.grad_norm)?;
        self.critic_opt.step(&grads)?;

        // 2. Actor: L_FBC + eta * q_loss, with DQL's normalised Q term on a random head.
        let flow_cfg = MeanFlowConfig { flow_ratio: cfg_a.flow_ratio, ..MeanFlowConfig::default() };
        let (flow_loss, _) = meanflow_loss(&self.actor, s, a, &flow_cfg, &mut self.rng)?;
        let noise = self.noise(s.dim(0)?)?;
        let a_pi = clamp_actions(&one_step_sample(&self.actor, s, &noise)?, -1.0, 1.0)?;
        let (q1_pi, q2_pi) = self.critic.forward(s, &a_pi)?;
        let (q_main, q_norm) =
            if self.rng.random::<f64>() > 0.5 { (q1_pi, q2_pi) } else { (q2_pi, q1_pi) };
        let q_loss = (q_main.mean_all()?.neg()? / q_norm.abs()?.mean_all()?.detach())?;
        let actor_loss = (&flow_loss + (&q_loss * cfg_a.eta)?)?;
        let mut grads = actor_loss.backward()?;
        // The critics get gradients from this loss too; only the actor's are applied.
        let actor_vars = self.actor_opt.vars();
        let actor_grad_norm = clip_grad_norm(&mut grads, &actor_vars, cfg_a.grad_norm)?;
        self.actor_opt.step(&grads)?;

        // 3. Targets: Polyak critics every step; EMA actor on DQL's schedule.
        self.step += 1;
        soft_update(&self.critic_target, &self.critic, cfg_c.tau)?;
        if self.step.is_multiple_of(cfg_a.ema_every) {
            if self.step < cfg_a.ema_start {
                copy_params(&self.actor_ema, &self.actor)?;
            } else {
                ema_update(&self.actor_ema, &self.actor, cfg_a.ema_decay)?;
            }
        }

        Ok(Losses {
            critic: scalar(&critic_loss)?,
            flow: scalar(&flow_loss)?,
            q: scalar(&q_loss)?,
            actor: scalar(&actor_loss)?,
            q_mean: scalar(&q1.mean_all()?)?,
            critic_grad_norm,
            actor_grad_norm,
            actor_lr,
            critic_lr,
        })
    }

    /// The TD target, without gradient. With the max-Q backup (AntMaze), s' is repeated
    /// `max_q_samples` times and each target head takes its max over the samples.
    fn critic_target_value(&mut self, r: &Tensor, s2: &Tensor, done: &Tensor) -> Result<Tensor> {
        let c = self.cfg.critic.clone();
        let b = s2.dim(0)?;
        let min_q = if c.max_q_backup {
            let k = c.max_q_samples;
            // repeat_interleave: row i of s' becomes rows i*k .. i*k+k-1.
            let s2k = s2.unsqueeze(1)?.repeat((1, k, 1))?.reshape((b * k, s2.dim(1)?))?;
            let noise = self.noise(b * k)?;
            let a2 = clamp_actions(&one_step_sample(&self.actor_ema, &s2k, &noise)?, -1.0, 1.0)?;
            let (q1, q2) = self.critic_target.forward(&s2k, &a2)?;
            let q1 = q1.reshape((b, k))?.max_keepdim(D::Minus1)?;
            let q2 = q2.reshape((b, k))?.max_keepdim(D::Minus1)?;
            q1.minimum(&q2)?
        } else {
            let noise = self.noise(b)?;
            let a2 = clamp_actions(&one_step_sample(&self.actor_ema, s2, &noise)?, -1.0, 1.0)?;
            self.critic_target.min(s2, &a2)?
        };
        let not_done = (1.0 - done)?;
        Ok((r + (not_done * min_q)?.affine(c.gamma, 0.0)?)?.detach())
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

fn mse(x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    (x - y)?.sqr()?.mean_all()
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}
