//! Soft Actor-Critic (Haarnoja et al. 2018, the version with a learned temperature), the
//! online learner D4RL used to make its behaviour policies. Reuses the nets crate: Mish MLPs
//! with PyTorch's initialisation, `DoubleQ`, Adam with saveable state, Polyak targets.
//!
//! Defaults are the usual ones: 2x256 networks, lr 3e-4, batch 256, gamma 0.99, tau 0.005,
//! target entropy -act_dim, log-std clamped to [-20, 2], 10,000 uniform random steps first.

use anyhow::{Context, Result};
use candle_core::{D, DType, Device, Tensor, Var};
use ofql_data::replay::Batch;
use ofql_nets::{Adam, AdamConfig, Checkpoint, CompiledMlp, DoubleQ, Mlp, NamedVars, soft_update};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use ofql_nets::gaussian;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SacConfig {
    pub hidden: usize,
    pub layers: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub gamma: f64,
    pub tau: f64,
    /// Uniform random actions for this many environment steps before the policy acts.
    pub random_steps: u64,
    pub seed: u64,
    /// Gradient clipping (global L2 norm) for actor and critics; large = effectively off.
    pub grad_norm: f64,
}

impl Default for SacConfig {
    fn default() -> Self {
        SacConfig {
            hidden: 256,
            layers: 2,
            lr: 3e-4,
            batch_size: 256,
            gamma: 0.99,
            tau: 0.005,
            random_steps: 10_000,
            seed: 0,
            grad_norm: 100.0,
        }
    }
}

/// The tanh-Gaussian policy: an MLP giving the mean and log-std of a Gaussian whose sample is
/// squashed by tanh into the action box [-1, 1].
pub struct SacActor {
    pub mlp: Mlp,
    act_dim: usize,
}

const LOG_STD_MIN: f64 = -20.0;
const LOG_STD_MAX: f64 = 2.0;

impl SacActor {
    pub fn new(
        obs_dim: usize,
        act_dim: usize,
        cfg: &SacConfig,
        rng: &mut ChaCha8Rng,
    ) -> Result<Self> {
        let mut dims = vec![obs_dim];
        dims.extend(std::iter::repeat_n(cfg.hidden, cfg.layers));
        dims.push(2 * act_dim);
        Ok(SacActor { mlp: Mlp::new(&dims, DType::F32, &Device::Cpu, rng)?, act_dim })
    }

    fn mean_log_std(&self, obs: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = self.mlp.forward(obs)?;
        let mean = out.narrow(1, 0, self.act_dim)?;
        let log_std = out.narrow(1, self.act_dim, self.act_dim)?.clamp(LOG_STD_MIN, LOG_STD_MAX)?;
        Ok((mean, log_std))
    }

    /// A reparameterised sample and its log-probability (B, 1) under the squashed Gaussian.
    pub fn sample(&self, obs: &Tensor, rng: &mut ChaCha8Rng) -> Result<(Tensor, Tensor)> {
        let (mean, log_std) = self.mean_log_std(obs)?;
        let eps = gaussian(rng, obs.dim(0)?, self.act_dim, 1.0, DType::F32, obs.device())?;
        let u = (&mean + (log_std.exp()? * &eps)?)?;
        let a = u.tanh()?;
        // log N(u; mean, std) = -eps^2/2 - log std - log(2 pi)/2, per dimension; the tanh
        // correction log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) is the stable form.
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let gauss = ((eps.sqr()? * -0.5)? - &log_std)?.affine(1.0, -half_log_2pi)?;
        let softplus = (u.affine(-2.0, 0.0)?.exp()? + 1.0)?.log()?;
        let correction = ((u.neg()? - softplus)?.affine(2.0, 2.0 * std::f64::consts::LN_2))?;
        let log_prob = (gauss - correction)?.sum_keepdim(D::Minus1)?;
        Ok((a, log_prob))
    }

    /// The deterministic action tanh(mean): what the evaluated (and saved) policy does.
    pub fn mean_action(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self.mean_log_std(obs)?.0.tanh()?)
    }
}

/// The actor frozen for rolling out. [`CompiledMlp`] sums every product in one fixed order
/// (input by input into each output), where candle's gemm blocks its sums by the CPU's cache
/// sizes; so the policy acts bit for bit alike on every x86-64 host with FMA and a generated
/// dataset is the same file on every such machine. (Through candle, hopper-medium regenerated
/// on another host came out different: 1283 episodes instead of the run's, and the run could
/// not be resumed on it.)
pub struct FrozenSacActor {
    mlp: CompiledMlp,
    act_dim: usize,
}

impl FrozenSacActor {
    pub fn new(actor: &SacActor) -> Result<Self> {
        Ok(FrozenSacActor {
            mlp: CompiledMlp::new(actor.mlp.layers(), &[])?,
            act_dim: actor.act_dim,
        })
    }

    /// tanh(mean), as [`SacActor::mean_action`].
    pub fn mean_action(&mut self, obs: &[f32]) -> Vec<f32> {
        self.mlp.forward_one(obs)[..self.act_dim].iter().map(|m| m.tanh()).collect()
    }

    /// A tanh-Gaussian sample, its noise drawn from `rng` as [`SacActor::sample`] draws it.
    pub fn sample(&mut self, obs: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let (mean, log_std) = self.mlp.forward_one(obs).split_at(self.act_dim);
        mean.iter()
            .zip(log_std)
            .map(|(m, l)| {
                let eps: f32 = rng.sample(StandardNormal);
                (m + (l.clamp(LOG_STD_MIN as f32, LOG_STD_MAX as f32).exp() * eps)).tanh()
            })
            .collect()
    }
}

impl NamedVars for SacActor {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        self.mlp.named_vars()
    }
}

/// What one SAC update reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SacLosses {
    pub critic: f64,
    pub actor: f64,
    pub alpha: f64,
    pub entropy: f64,
    pub q_mean: f64,
}

pub struct Sac {
    pub cfg: SacConfig,
    pub actor: SacActor,
    pub critic: DoubleQ,
    pub critic_target: DoubleQ,
    log_alpha: Var,
    actor_opt: Adam,
    critic_opt: Adam,
    alpha_opt: Adam,
    pub rng: ChaCha8Rng,
    target_entropy: f64,
    updates: u64,
}

impl Sac {
    pub fn new(cfg: &SacConfig, obs_dim: usize, act_dim: usize) -> Result<Sac> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let actor = SacActor::new(obs_dim, act_dim, cfg, &mut rng)?;
        let dev = Device::Cpu;
        let critic =
            DoubleQ::new(obs_dim, act_dim, cfg.hidden, cfg.layers, DType::F32, &dev, &mut rng)?;
        let critic_target = critic.deep_clone()?;
        let log_alpha = Var::from_tensor(&Tensor::zeros(1, DType::F32, &dev)?)?;
        let adam = AdamConfig { lr: cfg.lr, ..AdamConfig::default() };
        Ok(Sac {
            actor_opt: Adam::new(actor.prefixed_vars("actor"), adam)?,
            critic_opt: Adam::new(critic.prefixed_vars("critic"), adam)?,
            alpha_opt: Adam::new(vec![("log_alpha".into(), log_alpha.clone())], adam)?,
            cfg: cfg.clone(),
            actor,
            critic,
            critic_target,
            log_alpha,
            rng,
            target_entropy: -(act_dim as f64),
            updates: 0,
        })
    }

    pub fn alpha(&self) -> Result<f64> {
        Ok(self.log_alpha.as_tensor().exp()?.to_vec1::<f32>()?[0] as f64)
    }

    /// One gradient step of critics, actor and temperature on `batch`.
    pub fn update(&mut self, batch: &Batch) -> Result<SacLosses> {
        let (s, a, r) = (&batch.observations, &batch.actions, &batch.rewards);
        let (s2, done) = (&batch.next_observations, &batch.dones);
        let alpha = self.alpha()?;

        // Critics: y = r + gamma (1 - d) (min Q'(s', a') - alpha log pi(a'|s')).
        let (a2, logp2) = self.actor.sample(s2, &mut self.rng)?;
        let q_next = (self.critic_target.min(s2, &a2)? - (logp2 * alpha)?)?;
        let y = (r + ((1.0 - done)? * q_next)?.affine(self.cfg.gamma, 0.0)?)?.detach();
        let (q1, q2) = self.critic.forward(s, a)?;
        let critic_loss = ((&q1 - &y)?.sqr()?.mean_all()? + (&q2 - &y)?.sqr()?.mean_all()?)?;
        self.critic_opt.step_clipped(&[&critic_loss.backward()?], self.cfg.grad_norm)?;

        // Actor: minimise alpha log pi(a|s) - min Q(s, a) with the reparameterised sample.
        let (a_pi, logp) = self.actor.sample(s, &mut self.rng)?;
        let q_pi = self.critic.min(s, &a_pi)?;
        let actor_loss = ((&logp * alpha)? - q_pi)?.mean_all()?;
        self.actor_opt.step_clipped(&[&actor_loss.backward()?], self.cfg.grad_norm)?;

        // Temperature: minimise -log_alpha (log pi + target entropy).
        let logp = logp.detach();
        let alpha_loss = (self
            .log_alpha
            .as_tensor()
            .broadcast_mul(&(logp.affine(1.0, self.target_entropy))?)?
            .mean_all()?
            .neg())?;
        let grads = alpha_loss.backward()?;
        self.alpha_opt.step(&grads)?;

        soft_update(&self.critic_target, &self.critic, self.cfg.tau)?;
        self.updates += 1;
        let scalar =
            |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        Ok(SacLosses {
            critic: scalar(&critic_loss)?,
            actor: scalar(&actor_loss)?,
            alpha,
            entropy: -scalar(&logp.mean_all()?)?,
            q_mean: scalar(&q1.mean_all()?)?,
        })
    }

    /// Everything to resume: networks, targets, temperature, optimisers, RNG, counters.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let mut ck = Checkpoint::new();
        ck.add_vars("actor", &self.actor)?;
        ck.add_vars("critic", &self.critic)?;
        ck.add_vars("critic_target", &self.critic_target)?;
        ck.insert("log_alpha".into(), self.log_alpha.as_tensor().copy()?)?;
        ck.add_adam("actor_opt", &self.actor_opt)?;
        ck.add_adam("critic_opt", &self.critic_opt)?;
        ck.add_adam("alpha_opt", &self.alpha_opt)?;
        ck.set_json("sac_config", &self.cfg)?;
        ck.set_json("rng", &self.rng)?;
        ck.set_json("updates", &self.updates)?;
        Ok(ck)
    }

    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.restore_vars("actor", &self.actor).context("SAC actor")?;
        ck.restore_vars("critic", &self.critic).context("SAC critics")?;
        ck.restore_vars("critic_target", &self.critic_target).context("SAC target critics")?;
        let la = ck.tensor("log_alpha").context("checkpoint has no log_alpha")?;
        self.log_alpha.set(la)?;
        ck.restore_adam("actor_opt", &mut self.actor_opt)?;
        ck.restore_adam("critic_opt", &mut self.critic_opt)?;
        ck.restore_adam("alpha_opt", &mut self.alpha_opt)?;
        self.rng = ck.json("rng")?;
        self.updates = ck.json("updates")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The squashed-Gaussian log-density against a direct evaluation in f64.
    #[test]
    fn log_prob_matches_the_change_of_variables() {
        let cfg = SacConfig { hidden: 16, ..SacConfig::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let actor = SacActor::new(4, 3, &cfg, &mut rng).unwrap();
        let obs =
            Tensor::new(&[[0.3f32, -0.2, 0.5, 1.0], [1.0, 0.0, -1.0, 0.2]], &Device::Cpu).unwrap();
        let mut draw = ChaCha8Rng::seed_from_u64(2);
        let (a, logp) = actor.sample(&obs, &mut draw).unwrap();
        let (mean, log_std) = actor.mean_log_std(&obs).unwrap();
        let (a, logp) = (a.to_vec2::<f32>().unwrap(), logp.to_vec2::<f32>().unwrap());
        let (mean, log_std) = (mean.to_vec2::<f32>().unwrap(), log_std.to_vec2::<f32>().unwrap());
        for i in 0..2 {
            let mut want = 0.0f64;
            for j in 0..3 {
                let u = (a[i][j] as f64).atanh();
                let (m, ls) = (mean[i][j] as f64, log_std[i][j] as f64);
                let z = (u - m) / ls.exp();
                want += -0.5 * z * z - ls - 0.5 * (2.0 * std::f64::consts::PI).ln();
                want -= (1.0 - (a[i][j] as f64).powi(2)).ln();
            }
            assert!((logp[i][0] as f64 - want).abs() < 1e-3, "row {i}: {} vs {want}", logp[i][0]);
        }
    }

    /// The frozen actor acts as the candle one does, to float rounding, and draws the same
    /// noise from the same stream.
    #[test]
    fn frozen_actor_matches_the_trained_one() {
        let cfg = SacConfig { hidden: 24, ..SacConfig::default() };
        let actor = SacActor::new(5, 3, &cfg, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let mut frozen = FrozenSacActor::new(&actor).unwrap();
        let obs = [0.3f32, -1.2, 0.5, 2.0, -0.1];
        let t = Tensor::new(&[obs], &Device::Cpu).unwrap();
        let want: Vec<f32> =
            actor.mean_action(&t).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
        let sample: Vec<f32> =
            actor.sample(&t, &mut r1).unwrap().0.flatten_all().unwrap().to_vec1().unwrap();
        let got_mean = frozen.mean_action(&obs);
        let got_sample = frozen.sample(&obs, &mut r2);
        for (g, w) in got_mean.iter().chain(&got_sample).zip(want.iter().chain(&sample)) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        assert_eq!(r1.random::<u64>(), r2.random::<u64>(), "the same noise drawn");
    }
}
