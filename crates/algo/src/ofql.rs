//! OFQL, the paper's Algorithm 1, in DQL's order (critic first).
//!
//! One call of [`Ofql::iterate`] is one training iteration on one batch:
//! 1. draw: every random number of the iteration, in one order;
//! 2. critic step: a' from the EMA actor in one step, clipped double-Q target, Adam step, then
//!    the Polyak step of the target critics (every `target_every` steps);
//! 3. actor step: MeanFlow loss + eta * DQL's normalised Q term, Adam step;
//! 4. target step: the EMA actor every `ema_every` steps.
//!
//! All randomness (noise, (t, r), the head of the Q term) comes from one seeded ChaCha
//! generator owned by the agent, so a seed fixes the run and a checkpoint can resume it.
//! How the steps share two threads is [`crate::schedule`]'s business.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use ofql_data::replay::Batch;
use ofql_flow::{
    MeanFlowConfig, MeanFlowDraw, OneStepPolicy, TimeDist, clamp_actions, meanflow_sq_error,
    one_step_sample,
};
use ofql_nets::{
    Adam, AdamConfig, Checkpoint, CompiledDoubleQ, DoubleQ, NamedVars, VelocityConfig, VelocityNet,
    gaussian,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::agent::{
    Agent, CompiledActor, CompiledCritic, Metrics, read_checkpoint, write_checkpoint,
};
use crate::config::Config;
use crate::prepare::ObsNorm;
use crate::q_learning::{
    clip_norm, critic_step, ema_step, learning_rates, q_term, scalar, td_targets,
};
use crate::schedule::{self, Shards};

/// The numbers one iteration reports (all from the batch it trained on).
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
    /// Mean of Q_1(s, pi(s)) on the actor's own actions (the critic after this step's update).
    pub q_policy: f64,
    /// Global gradient norms before clipping.
    pub critic_grad_norm: f64,
    pub actor_grad_norm: f64,
    pub actor_lr: f64,
    pub critic_lr: f64,
}

impl Losses {
    /// By name; the first three are a progress line's (critic, flow, Q).
    pub fn metrics(&self) -> Metrics {
        let named = [
            ("critic", self.critic),
            ("flow", self.flow),
            ("q_mean", self.q_mean),
            ("q_policy", self.q_policy),
            ("q", self.q),
            ("actor", self.actor),
            ("critic_grad_norm", self.critic_grad_norm),
            ("actor_grad_norm", self.actor_grad_norm),
            ("actor_lr", self.actor_lr),
            ("critic_lr", self.critic_lr),
        ];
        Metrics(named.iter().map(|&(k, v)| (k.to_string(), v)).collect())
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
    obs_norm: Option<ObsNorm>,
    /// Threads (batch shards) per iteration.
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
            time_dim: cfg.actor.time_dim,
            time_hidden: cfg.actor.time_hidden,
            time_scale: cfg.actor.time_scale,
            share_time_mlp: cfg.actor.share_time_mlp,
        };
        let actor = VelocityNet::new(&vcfg, DType::F32, device, &mut rng)?;
        let actor_ema = actor.deep_clone()?;
        let c = &cfg.critic;
        let critic =
            DoubleQ::new(obs_dim, act_dim, c.hidden, c.layers, DType::F32, device, &mut rng)?;
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

    /// The networks a checkpoint holds, by name.
    fn nets(&self) -> [(&'static str, &dyn NamedVars); 4] {
        [
            ("actor", &self.actor),
            ("actor_ema", &self.actor_ema),
            ("critic", &self.critic),
            ("critic_target", &self.critic_target),
        ]
    }

    /// The agent for data whose observations were normalised with `obs_norm`.
    pub fn with_obs_norm(mut self, obs_norm: Option<ObsNorm>) -> Ofql {
        self.obs_norm = obs_norm;
        self
    }

    /// One iteration of Algorithm 1 on `batch`: draw the randomness, a critic step, an actor
    /// step, a target step.
    ///
    /// With several threads the critic step runs beside the actor's MeanFlow loss (they
    /// share nothing), and the TD target and the Q term are cut into row shards
    /// ([`crate::schedule`]). A seed and a thread count fix every number; threads only change
    /// the order in which a gradient's rows are summed (1e-7 relative).
    pub fn iterate(&mut self, batch: &Batch) -> Result<Losses> {
        schedule::on_a_worker(self.threads > 1, || self.iterate_here(batch))
    }

    fn iterate_here(&mut self, batch: &Batch) -> Result<Losses> {
        let n = batch.actions.dim(0)?;
        let shards = Shards::new(n, self.threads);
        let (actor_lr, critic_lr) = self.decay_learning_rates();
        let draw = self.draw(n)?;

        // The critic's target needs the EMA actor only; then the critic step, and beside it
        // (on the other thread) the actor's MeanFlow loss L_FBC, which needs no critic. The
        // two take about equal work, each on the whole batch.
        let y = self.td_targets(batch, &draw, &shards)?;
        let (critic, flow) = schedule::side_by_side(
            shards.parallel(),
            || {
                let c = (&self.critic, &self.critic_target, &mut self.critic_opt);
                critic_step(&self.cfg.critic, c, self.step + 1, batch, &y)
            },
            || flow_loss(&self.actor, batch, &draw.flow),
        );
        let (critic, flow) = (critic?, flow?);
        let actor = self.actor_step(batch, &draw, &shards, flow)?;
        self.step += 1;
        self.target_step()?;

        Ok(Losses {
            critic: scalar(&critic.loss)?,
            flow: scalar(&actor.flow)?,
            q: scalar(&actor.q)?,
            actor: scalar(&actor.total)?,
            q_mean: scalar(&(critic.q1_sum / n as f64)?)?,
            q_policy: scalar(&actor.q1_policy_mean)?,
            critic_grad_norm: critic.grad_norm,
            actor_grad_norm: actor.grad_norm,
            actor_lr,
            critic_lr,
        })
    }

    /// Both learning rates at this step (`train.lr_schedule`: DQL's cosine decay by default).
    fn decay_learning_rates(&mut self) -> (f64, f64) {
        let (actor_lr, critic_lr) = learning_rates(&self.cfg, self.step);
        self.actor_opt.set_lr(actor_lr);
        self.critic_opt.set_lr(critic_lr);
        (actor_lr, critic_lr)
    }

    /// Every random number of the iteration, drawn first and in one order.
    fn draw(&mut self, n: usize) -> Result<Draw> {
        let c = &self.cfg.critic;
        let k = if c.max_q_backup { c.max_q_samples } else { 1 };
        let target_noise = self.noise(n * k)?;
        let a = &self.cfg.actor;
        let time_dist = TimeDist::LogitNormal { mu: a.time_mu, sigma: a.time_sigma };
        let flow_cfg = MeanFlowConfig { flow_ratio: a.flow_ratio, time_dist };
        let flow =
            MeanFlowDraw::new(n, self.act_dim, &flow_cfg, DType::F32, &self.device, &mut self.rng)?;
        let policy_noise = self.noise(n)?;
        let head_1 = self.rng.random::<f64>() > 0.5;
        Ok(Draw { target_noise, flow, policy_noise, head_1 })
    }

    /// y = r + gamma (1 - d) min_i Q'_i(s', a'), a' from the EMA actor, without gradient
    /// (by row shards).
    fn td_targets(&self, batch: &Batch, draw: &Draw, shards: &Shards) -> Result<Tensor> {
        let next = |s: &Tensor, e: &Tensor| one_step(&self.actor_ema, s, e);
        td_targets(&self.cfg.critic, &next, &self.critic_target, batch, &draw.target_noise, shards)
    }

    /// Actor step: L_FBC + eta * q_loss, DQL's normalised Q term on a random head of the
    /// updated critics (held constant: this loss trains the actor), by row shards. The
    /// normaliser mean |Q_other| is over the whole batch, so every shard's forward pass comes
    /// before any backward pass.
    fn actor_step(
        &mut self,
        batch: &Batch,
        draw: &Draw,
        shards: &Shards,
        flow: FlowLoss,
    ) -> Result<ActorStep> {
        let eta = self.cfg.actor.eta;
        let pi = |s: &Tensor, e: &Tensor| one_step(&self.actor, s, e);
        let term = q_term(&self.critic, &pi, batch, &draw.policy_noise, draw.head_1, eta, shards)?;
        let total = (&flow.loss + (&term.q * eta)?)?;
        // The actor's gradient: the Q term's shards, then L_FBC's (added inside Adam's loop).
        let mut grads: Vec<&GradStore> = term.grads.iter().collect();
        grads.push(&flow.grads);
        let grad_norm = self.actor_opt.step_clipped(&grads, clip_norm(self.cfg.actor.grad_norm))?;
        Ok(ActorStep {
            flow: flow.loss,
            q: term.q,
            total,
            grad_norm,
            q1_policy_mean: term.q1_policy_mean,
        })
    }

    /// Target step: the EMA actor on DQL's schedule (the target critics moved in the critic
    /// step).
    fn target_step(&mut self) -> Result<()> {
        ema_step(&self.cfg.actor, self.step, &self.actor_ema, &self.actor)
    }

    /// e ~ N(0, I), shape (n, act_dim), from the agent's own generator.
    fn noise(&mut self, n: usize) -> Result<Tensor> {
        Ok(gaussian(&mut self.rng, n, self.act_dim, 1.0, DType::F32, &self.device)?)
    }
}

impl Agent for Ofql {
    fn method(&self) -> &'static str {
        "ofql"
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    fn act_dim(&self) -> usize {
        self.act_dim
    }

    fn step(&self) -> u64 {
        self.step
    }

    /// Default: candle's count (RAYON_NUM_THREADS, else the cores).
    fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    fn update(&mut self, batch: &Batch) -> Result<Metrics> {
        Ok(self.iterate(batch)?.metrics())
    }

    fn noise_width(&self) -> usize {
        self.act_dim
    }

    /// One step of the EMA actor.
    fn act(&self, obs: &Tensor, noise: &Tensor) -> Result<Tensor> {
        one_step(&self.actor_ema, obs, noise)
    }

    /// The target critics, as CleanDiffuser's protocol uses.
    fn min_q(&self, obs: &Tensor, actions: &Tensor) -> Result<Tensor> {
        Ok(self.critic_target.min(obs, actions)?)
    }

    fn obs_norm(&self) -> Option<&ObsNorm> {
        self.obs_norm.as_ref()
    }

    fn compile_actor(&self) -> Result<Box<dyn CompiledActor>> {
        Ok(Box::new(OneStepPolicy::new(&self.actor_ema)?))
    }

    fn compile_critic(&self) -> Result<Box<dyn CompiledCritic>> {
        Ok(Box::new(CompiledDoubleQ::new(&self.critic_target, self.act_dim)?))
    }

    /// All networks, both optimisers, the RNG, the step.
    fn checkpoint(&self) -> Result<Checkpoint> {
        let opts = [("actor_opt", &self.actor_opt), ("critic_opt", &self.critic_opt)];
        write_checkpoint(self, &self.nets(), &opts, &self.rng)
    }

    fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        let (method, dims) = (self.method(), (self.obs_dim, self.act_dim));
        let nets = [
            ("actor", &self.actor as &dyn NamedVars),
            ("actor_ema", &self.actor_ema),
            ("critic", &self.critic),
            ("critic_target", &self.critic_target),
        ];
        let opts = vec![("actor_opt", &mut self.actor_opt), ("critic_opt", &mut self.critic_opt)];
        let (rng, obs_norm, step) = read_checkpoint(ck, method, dims, &nets, opts)?;
        (self.rng, self.obs_norm, self.step) = (rng, obs_norm, step);
        Ok(())
    }
}

/// The actor's MeanFlow behaviour-cloning loss L_FBC on the whole batch, and its gradient.
fn flow_loss(actor: &VelocityNet, batch: &Batch, draw: &MeanFlowDraw) -> Result<FlowLoss> {
    let (n, act_dim) = batch.actions.dims2()?;
    let (sum, _, _) = meanflow_sq_error(actor, &batch.observations, &batch.actions, draw)?;
    let loss = (sum / (n * act_dim) as f64)?;
    Ok(FlowLoss { grads: loss.backward()?, loss })
}

/// The randomness of one iteration.
struct Draw {
    /// e for a' = pi_ema(s', e): k rows per next state (k > 1 for the max-Q backup).
    target_noise: Tensor,
    /// (t, r) and the noise of the MeanFlow loss.
    flow: MeanFlowDraw,
    /// e for a = pi(s, e) in the Q term.
    policy_noise: Tensor,
    /// Which critic head the Q term uses (the other normalises it).
    head_1: bool,
}

struct FlowLoss {
    loss: Tensor,
    grads: GradStore,
}

struct ActorStep {
    flow: Tensor,
    q: Tensor,
    total: Tensor,
    grad_norm: f64,
    q1_policy_mean: Tensor,
}

/// One step of a velocity network from noise, clamped to the action bounds.
fn one_step(net: &VelocityNet, s: &Tensor, noise: &Tensor) -> Result<Tensor> {
    Ok(clamp_actions(&one_step_sample(net, s, noise)?, -1.0, 1.0)?)
}
