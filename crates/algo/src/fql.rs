//! Flow Q-Learning (Park et al., 2025), the paper's other one-step baseline, on the same seam
//! and data path. One call of [`Fql::iterate`] is one step of FQL's `total_loss` and update:
//! 1. draw: every random number of the step, in one order;
//! 2. critic loss: a' from the one-step policy, target r + gamma (1 - d) agg_i Q'_i(s', a')
//!    (agg: mean or min over the ensemble of two), mean squared error over both critics;
//! 3. actor loss: the flow-matching BC loss of the velocity field (linear path, t ~ U(0, 1)),
//!    plus alpha times the distillation loss of the one-step policy mu(s, z) towards 10 Euler
//!    steps of the field from the same z (no gradient into the field), plus the Q loss
//!    -mean Q(s, mu) (the critics held constant);
//! 4. one Adam step over critic loss + actor loss, then the Polyak step of the target critics.
//!
//! The two losses share no trained parameter (the Q loss holds the critics constant), so with
//! several threads the critic's loss and gradient run beside the actor's ([`crate::schedule`]);
//! the gradients, and so every number, are the same as one backward pass over the sum.
//!
//! Its keys are `[fql]`; `critic.gamma` is the task's discount. docs/methods.md lists what
//! differs from FQL's code.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use ofql_data::replay::Batch;
use ofql_nets::{
    Adam, AdamConfig, Checkpoint, CompiledDoubleQ, CompiledMlp, GeluMlp, NamedVars, gaussian,
    soft_update,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::agent::{
    Agent, CompiledActor, CompiledCritic, Metrics, read_checkpoint, write_checkpoint,
};
use crate::config::{Config, FqlConfig};
use crate::prepare::ObsNorm;
use crate::q_learning::{bounded, scalar};
use crate::schedule;

/// FQL's critic: an ensemble of two Q networks on [s, a].
#[derive(Debug)]
pub struct Ensemble {
    pub q1: GeluMlp,
    pub q2: GeluMlp,
}

impl Ensemble {
    fn forward(&self, s: &Tensor, a: &Tensor, frozen: bool) -> Result<(Tensor, Tensor)> {
        let x = Tensor::cat(&[s, a], 1)?;
        Ok(if frozen {
            (self.q1.forward_frozen(&x)?, self.q2.forward_frozen(&x)?)
        } else {
            (self.q1.forward(&x)?, self.q2.forward(&x)?)
        })
    }

    fn deep_clone(&self) -> Result<Ensemble> {
        Ok(Ensemble { q1: self.q1.deep_clone()?, q2: self.q2.deep_clone()? })
    }
}

impl NamedVars for Ensemble {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        let q1 = self.q1.named_vars().into_iter().map(|(n, v)| (format!("q1.{n}"), v));
        q1.chain(self.q2.named_vars().into_iter().map(|(n, v)| (format!("q2.{n}"), v))).collect()
    }
}

pub struct Fql {
    cfg: Config,
    /// The flow-matching BC velocity field v(s, x_t, t).
    pub bc_flow: GeluMlp,
    /// The one-step policy mu(s, z).
    pub onestep: GeluMlp,
    pub critic: Ensemble,
    pub critic_target: Ensemble,
    /// One optimiser over every trained parameter, as FQL's single TrainState.
    opt: Adam,
    rng: ChaCha8Rng,
    step: u64,
    obs_dim: usize,
    act_dim: usize,
    device: Device,
    obs_norm: Option<ObsNorm>,
    threads: usize,
}

impl Fql {
    pub fn new(cfg: &Config, obs_dim: usize, act_dim: usize, device: &Device) -> Result<Fql> {
        let f = &cfg.fql;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.seed);
        let dims = |input: usize, out: usize| {
            let mut d = vec![input];
            d.extend(std::iter::repeat_n(f.hidden, f.layers));
            d.push(out);
            d
        };
        let mut mlp =
            |input, out, norm| GeluMlp::new(&dims(input, out), norm, DType::F32, device, &mut rng);
        let bc_flow = mlp(obs_dim + act_dim + 1, act_dim, f.actor_layer_norm)?;
        let onestep = mlp(obs_dim + act_dim, act_dim, f.actor_layer_norm)?;
        let critic = Ensemble {
            q1: mlp(obs_dim + act_dim, 1, f.critic_layer_norm)?,
            q2: mlp(obs_dim + act_dim, 1, f.critic_layer_norm)?,
        };
        let critic_target = critic.deep_clone()?;
        let mut vars = bc_flow.prefixed_vars("bc_flow");
        vars.extend(onestep.prefixed_vars("onestep"));
        vars.extend(critic.prefixed_vars("critic"));
        let opt = Adam::new(vars, AdamConfig { lr: f.lr, ..AdamConfig::default() })?;
        Ok(Fql {
            cfg: cfg.clone(),
            bc_flow,
            onestep,
            critic,
            critic_target,
            opt,
            rng,
            step: 0,
            obs_dim,
            act_dim,
            device: device.clone(),
            obs_norm: None,
            threads: candle_core::utils::get_num_threads(),
        })
    }

    pub fn with_obs_norm(mut self, obs_norm: Option<ObsNorm>) -> Fql {
        self.obs_norm = obs_norm;
        self
    }

    /// mu(s, z) clipped to the action bounds.
    fn policy(&self, s: &Tensor, z: &Tensor, frozen: bool) -> Result<Tensor> {
        let x = Tensor::cat(&[s, z], 1)?;
        let a = if frozen { self.onestep.forward_frozen(&x)? } else { self.onestep.forward(&x)? };
        Ok(a.clamp(-1.0, 1.0)?)
    }

    /// `fql.flow_steps` Euler steps of the BC field from z at t = 0 to t = 1, clipped, without
    /// gradient (FQL's `compute_flow_actions`): the distillation target.
    pub fn flow_actions(&self, s: &Tensor, z: &Tensor) -> Result<Tensor> {
        let steps = self.cfg.fql.flow_steps;
        let n = z.dim(0)?;
        let mut a = z.detach();
        for i in 0..steps {
            let t = Tensor::full(i as f32 / steps as f32, (n, 1), &self.device)?;
            let v = self.bc_flow.forward_frozen(&Tensor::cat(&[s, &a, &t], 1)?)?;
            a = (a + (v / steps as f64)?)?.detach();
        }
        Ok(a.clamp(-1.0, 1.0)?)
    }

    /// One training step (see the module's header).
    pub fn iterate(&mut self, batch: &Batch) -> Result<Metrics> {
        schedule::on_a_worker(self.threads > 1, || self.iterate_here(batch))
    }

    fn iterate_here(&mut self, batch: &Batch) -> Result<Metrics> {
        let f: FqlConfig = self.cfg.fql.clone();
        let (n, a) = batch.actions.dims2()?;
        let dev = self.device.clone();

        // 1. Draw: next-action noise, then (t, x_0) of the BC loss, then the distillation noise.
        let next_noise = gaussian(&mut self.rng, n, a, 1.0, DType::F32, &dev)?;
        let t: Vec<f32> = (0..n).map(|_| self.rng.random::<f32>()).collect();
        let t = Tensor::from_vec(t, (n, 1), &dev)?;
        let x0 = gaussian(&mut self.rng, n, a, 1.0, DType::F32, &dev)?;
        let z = gaussian(&mut self.rng, n, a, 1.0, DType::F32, &dev)?;

        // 2. and 3., side by side: each loss with its own backward pass.
        let (critic, actor) = schedule::side_by_side(
            self.threads > 1,
            || self.critic_loss(batch, &next_noise),
            || self.actor_loss(batch, &t, &x0, &z),
        );
        let (critic, actor) = (critic?, actor?);

        // 4. One Adam step over both losses, then the target critics.
        let grad_norm = self.opt.step_clipped(&[&critic.grads, &actor.grads], f64::INFINITY)?;
        soft_update(&self.critic_target, &self.critic, f.tau)?;
        self.step += 1;

        let named = [
            ("critic", scalar(&critic.loss)?),
            ("bc", scalar(&actor.bc_loss)?),
            ("q_mean", scalar(&critic.q1_mean)?),
            ("q_policy", scalar(&actor.q1_policy_mean)?),
            ("distill", scalar(&actor.distill)?),
            ("q", scalar(&actor.q_loss)?),
            ("actor", scalar(&actor.actor_loss)?),
            ("grad_norm", grad_norm),
            ("lr", f.lr),
        ];
        Ok(Metrics(named.iter().map(|&(k, v)| (k.to_string(), v)).collect()))
    }

    /// The critic's loss and gradient: a' from the one-step policy at s', the target
    /// r + gamma (1 - d) agg_i Q'_i(s', a'), squared errors of both critics.
    fn critic_loss(&self, batch: &Batch, next_noise: &Tensor) -> Result<CriticLoss> {
        let (s, act, s2) = (&batch.observations, &batch.actions, &batch.next_observations);
        let a2 = self.policy(s2, next_noise, true)?.detach();
        let (t1, t2) = self.critic_target.forward(s2, &a2, true)?;
        let next_q = match self.cfg.fql.q_agg.as_str() {
            "min" => t1.minimum(&t2)?,
            _ => ((t1 + t2)? * 0.5)?,
        };
        let next_q = bounded(&self.cfg.critic, next_q)?;
        let not_done = (1.0 - &batch.dones)?;
        let y =
            (&batch.rewards + (not_done * next_q)?.affine(self.cfg.critic.gamma, 0.0)?)?.detach();
        let (q1, q2) = self.critic.forward(s, act, false)?;
        let loss = ((q1.broadcast_sub(&y)?.sqr()?.mean_all()?
            + q2.broadcast_sub(&y)?.sqr()?.mean_all()?)?
            * 0.5)?;
        Ok(CriticLoss { grads: loss.backward()?, loss, q1_mean: q1.mean_all()? })
    }

    /// The actor's loss and gradient: flow-matching BC at (t, x_0), alpha times the
    /// distillation towards the Euler target from z, and the Q loss (critics held constant).
    fn actor_loss(&self, batch: &Batch, t: &Tensor, x0: &Tensor, z: &Tensor) -> Result<ActorLoss> {
        let f = &self.cfg.fql;
        let (s, act) = (&batch.observations, &batch.actions);
        let x_t = (x0.broadcast_mul(&(1.0 - t)?)? + act.broadcast_mul(t)?)?;
        let velocity = (act - x0)?;
        let pred = self.bc_flow.forward(&Tensor::cat(&[s, &x_t, t], 1)?)?;
        let bc_loss = (pred - velocity)?.sqr()?.mean_all()?;
        let target = self.flow_actions(s, z)?;
        let mu = self.onestep.forward(&Tensor::cat(&[s, z], 1)?)?;
        let distill = (&mu - target)?.sqr()?.mean_all()?;
        let (p1, p2) = self.critic.forward(s, &mu.clamp(-1.0, 1.0)?, true)?;
        let q1_policy_mean = p1.mean_all()?.detach();
        let q = ((p1 + p2)? * 0.5)?;
        let mut q_loss = q.mean_all()?.neg()?;
        if f.normalize_q_loss {
            q_loss = (q_loss / q.abs()?.mean_all()?.detach())?;
        }
        let actor_loss = ((&bc_loss + (&distill * f.alpha)?)? + &q_loss)?;
        let grads = actor_loss.backward()?;
        Ok(ActorLoss { grads, bc_loss, distill, q_loss, actor_loss, q1_policy_mean })
    }
}

struct CriticLoss {
    loss: Tensor,
    q1_mean: Tensor,
    grads: candle_core::backprop::GradStore,
}

struct ActorLoss {
    bc_loss: Tensor,
    distill: Tensor,
    q_loss: Tensor,
    actor_loss: Tensor,
    /// mean Q_1(s, mu(s, z)) on the one-step policy's actions.
    q1_policy_mean: Tensor,
    grads: candle_core::backprop::GradStore,
}

impl Agent for Fql {
    fn method(&self) -> &'static str {
        "fql"
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

    /// With more than one, the critic's and the actor's losses run side by side. Default:
    /// candle's count (RAYON_NUM_THREADS, else the cores).
    fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    fn update(&mut self, batch: &Batch) -> Result<Metrics> {
        self.iterate(batch)
    }

    fn noise_width(&self) -> usize {
        self.act_dim
    }

    /// The one-step policy (FQL's `sample_actions`).
    fn act(&self, obs: &Tensor, noise: &Tensor) -> Result<Tensor> {
        self.policy(obs, noise, true)
    }

    /// The target critics' min, as the Q-softmax protocol takes it for every method.
    fn min_q(&self, obs: &Tensor, actions: &Tensor) -> Result<Tensor> {
        let (q1, q2) = self.critic_target.forward(obs, actions, true)?;
        Ok(q1.minimum(&q2)?)
    }

    fn obs_norm(&self) -> Option<&ObsNorm> {
        self.obs_norm.as_ref()
    }

    fn compile_actor(&self) -> Result<Box<dyn CompiledActor>> {
        let net = self.onestep.compile()?;
        Ok(Box::new(CompiledPolicy { net, obs_dim: self.obs_dim, input: vec![] }))
    }

    fn compile_critic(&self) -> Result<Box<dyn CompiledCritic>> {
        let (q1, q2) = (self.critic_target.q1.compile()?, self.critic_target.q2.compile()?);
        Ok(Box::new(CompiledDoubleQ::from_heads(q1, q2, self.act_dim)))
    }

    fn checkpoint(&self) -> Result<Checkpoint> {
        write_checkpoint(self, &self.nets(), &[("opt", &self.opt)], &self.rng)
    }

    fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        let (method, dims) = (self.method(), (self.obs_dim, self.act_dim));
        let nets = [
            ("bc_flow", &self.bc_flow as &dyn NamedVars),
            ("onestep", &self.onestep),
            ("critic", &self.critic),
            ("critic_target", &self.critic_target),
        ];
        let (rng, obs_norm, step) =
            read_checkpoint(ck, method, dims, &nets, vec![("opt", &mut self.opt)])?;
        (self.rng, self.obs_norm, self.step) = (rng, obs_norm, step);
        Ok(())
    }
}

impl Fql {
    fn nets(&self) -> [(&'static str, &dyn NamedVars); 4] {
        [
            ("bc_flow", &self.bc_flow),
            ("onestep", &self.onestep),
            ("critic", &self.critic),
            ("critic_target", &self.critic_target),
        ]
    }
}

/// FQL's one-step policy mu(s, z) compiled: the observation's share of the first layer once
/// per decision for many candidates, one row [s, z] for one (the Decider clamps the actions).
#[derive(Clone)]
struct CompiledPolicy {
    net: CompiledMlp,
    obs_dim: usize,
    /// [s, z] of a single decision.
    input: Vec<f32>,
}

impl CompiledActor for CompiledPolicy {
    fn sample(&mut self, obs: &[f32], noise: &[f32], action: &mut [f32]) {
        self.input.clear();
        self.input.extend_from_slice(obs);
        self.input.extend_from_slice(noise);
        action.copy_from_slice(self.net.forward_one(&self.input));
    }
    fn sample_many(&mut self, obs: &[f32], noise: &[f32], actions: &mut [f32]) {
        let (s, width) = (self.obs_dim, self.net.in_dim() - self.obs_dim);
        let rows = noise.len() / width.max(1);
        actions.copy_from_slice(self.net.forward_rows(noise, s..s + width, obs, 0..s, rows));
    }
    fn boxed_clone(&self) -> Box<dyn CompiledActor> {
        Box::new(self.clone())
    }
}
