//! Diffusion-QL (Wang et al., 2023), the paper's multi-step baseline, on the same seam,
//! critics and data path as OFQL. One call of [`Dql::iterate`] is one iteration of its
//! training loop, in its order:
//! 1. draw: every random number of the iteration, in one order;
//! 2. critic step: a' from the EMA actor's full T-step sample, clipped double-Q target (or the
//!    max-Q backup), Adam step, then the Polyak step of the target critics;
//! 3. actor step: the noise-prediction loss at a uniform random step + eta * DQL's normalised
//!    Q term, the Q term back-propagated through all T sampling steps; Adam step;
//! 4. target step: the EMA actor every `ema_every` steps.
//!
//! Its own keys are `[dql]` (eta, steps, the time embedding); the networks' widths, learning
//! rates, gradient clipping and EMA are `[actor]`'s and `[critic]`'s, as for OFQL (DQL's
//! values, from which OFQL took them). docs/methods.md lists what differs from DQL's code.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use ofql_data::replay::Batch;
use ofql_flow::{
    CompiledDiffusion, DiffusionDraw, VpSchedule, diffusion_sample, noise_prediction_loss,
};
use ofql_nets::{
    Adam, AdamConfig, Checkpoint, CompiledDoubleQ, DoubleQ, NamedVars, NoiseNet, NoiseNetConfig,
    gaussian,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::agent::{
    Agent, CompiledActor, CompiledCritic, Metrics, read_checkpoint, write_checkpoint,
};
use crate::config::Config;
use crate::prepare::ObsNorm;
use crate::q_learning::{
    clip_norm, critic_step, ema_step, learning_rates, q_term, scalar, td_targets,
};
use crate::schedule::{self, Shards};

pub struct Dql {
    cfg: Config,
    schedule: VpSchedule,
    pub actor: NoiseNet,
    pub actor_ema: NoiseNet,
    pub critic: DoubleQ,
    pub critic_target: DoubleQ,
    actor_opt: Adam,
    critic_opt: Adam,
    rng: ChaCha8Rng,
    step: u64,
    obs_dim: usize,
    act_dim: usize,
    device: Device,
    obs_norm: Option<ObsNorm>,
    threads: usize,
}

/// The randomness of one iteration.
struct Draw {
    /// The EMA actor's chain noise for a' (k rows per next state), (n k, T act_dim).
    target_noise: Tensor,
    /// The noise-prediction loss's steps and noise.
    bc: DiffusionDraw,
    /// The actor's chain noise for the Q term, (n, T act_dim).
    policy_noise: Tensor,
    head_1: bool,
}

impl Dql {
    /// Fresh networks, initialised from `cfg.train.seed`.
    pub fn new(cfg: &Config, obs_dim: usize, act_dim: usize, device: &Device) -> Result<Dql> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.seed);
        let net = NoiseNetConfig {
            obs_dim,
            act_dim,
            hidden: cfg.actor.hidden,
            layers: cfg.actor.layers,
            time_dim: cfg.dql.time_dim,
            time_hidden: cfg.dql.time_hidden,
        };
        let actor = NoiseNet::new(&net, DType::F32, device, &mut rng)?;
        let actor_ema = actor.deep_clone()?;
        let c = &cfg.critic;
        let critic =
            DoubleQ::new(obs_dim, act_dim, c.hidden, c.layers, DType::F32, device, &mut rng)?;
        let critic_target = critic.deep_clone()?;
        let adam = |lr| AdamConfig { lr, ..AdamConfig::default() };
        let actor_opt = Adam::new(actor.prefixed_vars("actor"), adam(cfg.actor.lr))?;
        let critic_opt = Adam::new(critic.prefixed_vars("critic"), adam(c.lr))?;
        Ok(Dql {
            cfg: cfg.clone(),
            schedule: VpSchedule::new(cfg.dql.steps),
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

    pub fn with_obs_norm(mut self, obs_norm: Option<ObsNorm>) -> Dql {
        self.obs_norm = obs_norm;
        self
    }

    /// One training iteration (see the module's header); the critic step runs beside the
    /// noise-prediction loss, the TD target and the Q term by row shards, as OFQL's.
    pub fn iterate(&mut self, batch: &Batch) -> Result<Metrics> {
        schedule::on_a_worker(self.threads > 1, || self.iterate_here(batch))
    }

    fn iterate_here(&mut self, batch: &Batch) -> Result<Metrics> {
        let n = batch.actions.dim(0)?;
        let shards = Shards::new(n, self.threads);
        let (actor_lr, critic_lr) = learning_rates(&self.cfg, self.step);
        self.actor_opt.set_lr(actor_lr);
        self.critic_opt.set_lr(critic_lr);
        let draw = self.draw(n)?;

        let next = |s: &Tensor, e: &Tensor| self.sample(&self.actor_ema, s, e);
        let y = td_targets(
            &self.cfg.critic,
            &next,
            &self.critic_target,
            batch,
            &draw.target_noise,
            &shards,
        )?;
        let (critic, bc) = schedule::side_by_side(
            shards.parallel(),
            || {
                let c = (&self.critic, &self.critic_target, &mut self.critic_opt);
                critic_step(&self.cfg.critic, c, self.step + 1, batch, &y)
            },
            || -> Result<(GradStore, Tensor)> {
                let s = &batch.observations;
                let loss = noise_prediction_loss(
                    &self.actor,
                    &self.schedule,
                    s,
                    &batch.actions,
                    &draw.bc,
                )?;
                Ok((loss.backward()?, loss))
            },
        );
        let (critic, (bc_grads, bc)) = (critic?, bc?);

        let eta = self.cfg.dql.eta;
        let pi = |s: &Tensor, e: &Tensor| self.sample(&self.actor, s, e);
        let term = q_term(&self.critic, &pi, batch, &draw.policy_noise, draw.head_1, eta, &shards)?;
        let total = (&bc + (&term.q * eta)?)?;
        let mut grads: Vec<&GradStore> = term.grads.iter().collect();
        grads.push(&bc_grads);
        let actor_grad_norm =
            self.actor_opt.step_clipped(&grads, clip_norm(self.cfg.actor.grad_norm))?;

        self.step += 1;
        ema_step(&self.cfg.actor, self.step, &self.actor_ema, &self.actor)?;

        let named = [
            ("critic", scalar(&critic.loss)?),
            ("bc", scalar(&bc)?),
            ("q_mean", scalar(&(critic.q1_sum / n as f64)?)?),
            ("q_policy", scalar(&term.q1_policy_mean)?),
            ("q", scalar(&term.q)?),
            ("actor", scalar(&total)?),
            ("critic_grad_norm", critic.grad_norm),
            ("actor_grad_norm", actor_grad_norm),
            ("actor_lr", actor_lr),
            ("critic_lr", critic_lr),
        ];
        Ok(Metrics(named.iter().map(|&(k, v)| (k.to_string(), v)).collect()))
    }

    /// Every random number of the iteration, drawn first and in one order.
    fn draw(&mut self, n: usize) -> Result<Draw> {
        let c = &self.cfg.critic;
        let k = if c.max_q_backup { c.max_q_samples } else { 1 };
        let width = self.noise_width();
        let target_noise = gaussian(&mut self.rng, n * k, width, 1.0, DType::F32, &self.device)?;
        let bc = DiffusionDraw::new(
            n,
            self.act_dim,
            &self.schedule,
            DType::F32,
            &self.device,
            &mut self.rng,
        )?;
        let policy_noise = gaussian(&mut self.rng, n, width, 1.0, DType::F32, &self.device)?;
        let head_1 = self.rng.random::<f64>() > 0.5;
        Ok(Draw { target_noise, bc, policy_noise, head_1 })
    }

    fn sample(&self, net: &NoiseNet, s: &Tensor, noise: &Tensor) -> Result<Tensor> {
        Ok(diffusion_sample(net, &self.schedule, s, noise)?)
    }
}

impl Agent for Dql {
    fn method(&self) -> &'static str {
        "dql"
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

    fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    fn update(&mut self, batch: &Batch) -> Result<Metrics> {
        self.iterate(batch)
    }

    /// x_T and the noise of steps T-1 .. 1.
    fn noise_width(&self) -> usize {
        self.act_dim * self.schedule.steps()
    }

    /// The EMA actor's T-step sample.
    fn act(&self, obs: &Tensor, noise: &Tensor) -> Result<Tensor> {
        self.sample(&self.actor_ema, obs, noise)
    }

    fn min_q(&self, obs: &Tensor, actions: &Tensor) -> Result<Tensor> {
        Ok(self.critic_target.min(obs, actions)?)
    }

    fn obs_norm(&self) -> Option<&ObsNorm> {
        self.obs_norm.as_ref()
    }

    fn compile_actor(&self) -> Result<Box<dyn CompiledActor>> {
        Ok(Box::new(CompiledDiffusion::new(&self.actor_ema, &self.schedule)?))
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

impl CompiledActor for CompiledDiffusion {
    fn sample(&mut self, obs: &[f32], noise: &[f32], action: &mut [f32]) {
        self.sample_many(obs, noise, action)
    }
    fn sample_many(&mut self, obs: &[f32], noise: &[f32], actions: &mut [f32]) {
        CompiledDiffusion::sample_many(self, obs, noise, actions)
    }
    fn boxed_clone(&self) -> Box<dyn CompiledActor> {
        Box::new(self.clone())
    }
}
