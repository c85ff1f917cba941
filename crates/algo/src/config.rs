//! The run configuration: every constant of the method is a field here (spec sections 2-7).
//! Files are TOML; unknown keys and out-of-range values are errors that name the key.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub train: TrainConfig,
    pub actor: ActorConfig,
    pub critic: CriticConfig,
    pub eval: EvalConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: u64,
    pub batch_size: usize,
    pub seed: u64,
    pub eval_every: u64,
    pub checkpoint_every: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorConfig {
    pub lr: f64,
    /// Weight of the Q term against the flow loss.
    pub eta: f64,
    /// P(t = r) in the MeanFlow loss.
    pub flow_ratio: f64,
    /// k in the sinusoidal time embedding cos/sin(k t f).
    pub time_scale: f64,
    pub grad_norm: f64,
    pub ema_decay: f64,
    pub ema_every: u64,
    pub ema_start: u64,
    pub hidden: usize,
    pub layers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriticConfig {
    pub lr: f64,
    pub gamma: f64,
    pub tau: f64,
    pub grad_norm: f64,
    pub max_q_backup: bool,
    pub hidden: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    pub episodes: usize,
    pub parallel_envs: usize,
    pub candidates: usize,
    pub temperature: f64,
    /// w in softmax(w * min Q) over the candidates.
    pub q_weight: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            train: TrainConfig {
                steps: 2_000_000,
                batch_size: 256,
                seed: 0,
                eval_every: 50_000,
                checkpoint_every: 10_000,
            },
            actor: ActorConfig {
                lr: 3e-4,
                eta: 0.1,
                flow_ratio: 0.5,
                time_scale: 1.0,
                grad_norm: 9.0,
                ema_decay: 0.995,
                ema_every: 5,
                ema_start: 1000,
                hidden: 256,
                layers: 3,
            },
            critic: CriticConfig {
                lr: 3e-4,
                gamma: 0.99,
                tau: 0.005,
                grad_norm: 9.0,
                max_q_backup: false,
                hidden: 256,
            },
            eval: EvalConfig {
                episodes: 150,
                parallel_envs: 50,
                candidates: 50,
                temperature: 0.5,
                q_weight: 50.0,
            },
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Config::default().train
    }
}
impl Default for ActorConfig {
    fn default() -> Self {
        Config::default().actor
    }
}
impl Default for CriticConfig {
    fn default() -> Self {
        Config::default().critic
    }
}
impl Default for EvalConfig {
    fn default() -> Self {
        Config::default().eval
    }
}

impl Config {
    /// Parse TOML and validate; errors name the offending key.
    pub fn from_toml(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, key: &str, value: impl std::fmt::Display, want: &str) -> Result<()> {
            if !ok {
                bail!("config value {key} = {value} is out of range: it must be {want}");
            }
            Ok(())
        }
        let (t, a, c, e) = (&self.train, &self.actor, &self.critic, &self.eval);
        check(t.steps > 0, "train.steps", t.steps, "> 0")?;
        check(t.batch_size > 0, "train.batch_size", t.batch_size, "> 0")?;
        check(t.checkpoint_every > 0, "train.checkpoint_every", t.checkpoint_every, "> 0")?;
        check(a.lr > 0.0 && a.lr.is_finite(), "actor.lr", a.lr, "a finite number > 0")?;
        check(a.eta >= 0.0 && a.eta.is_finite(), "actor.eta", a.eta, "a finite number >= 0")?;
        check((0.0..=1.0).contains(&a.flow_ratio), "actor.flow_ratio", a.flow_ratio, "in [0, 1]")?;
        check(a.time_scale > 0.0, "actor.time_scale", a.time_scale, "> 0")?;
        check(a.grad_norm > 0.0, "actor.grad_norm", a.grad_norm, "> 0")?;
        check((0.0..1.0).contains(&a.ema_decay), "actor.ema_decay", a.ema_decay, "in [0, 1)")?;
        check(a.ema_every > 0, "actor.ema_every", a.ema_every, "> 0")?;
        check(a.hidden > 0 && a.layers > 0, "actor.hidden/layers", a.hidden, "> 0")?;
        check(c.lr > 0.0 && c.lr.is_finite(), "critic.lr", c.lr, "a finite number > 0")?;
        check((0.0..=1.0).contains(&c.gamma), "critic.gamma", c.gamma, "in [0, 1]")?;
        check(c.tau > 0.0 && c.tau <= 1.0, "critic.tau", c.tau, "in (0, 1]")?;
        check(c.grad_norm > 0.0, "critic.grad_norm", c.grad_norm, "> 0")?;
        check(e.episodes > 0, "eval.episodes", e.episodes, "> 0")?;
        check(e.parallel_envs > 0, "eval.parallel_envs", e.parallel_envs, "> 0")?;
        check(e.candidates > 0, "eval.candidates", e.candidates, "> 0")?;
        check(e.temperature > 0.0, "eval.temperature", e.temperature, "> 0")?;
        check(e.q_weight >= 0.0, "eval.q_weight", e.q_weight, ">= 0")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_keeps_the_spec_defaults() {
        let c = Config::from_toml("[actor]\neta = 0.3\n[critic]\ngrad_norm = 2.0\n").unwrap();
        assert_eq!(c.actor.eta, 0.3);
        assert_eq!(c.critic.grad_norm, 2.0);
        assert_eq!(c.actor.flow_ratio, 0.5);
        assert_eq!(c.critic.gamma, 0.99);
        assert_eq!(c.train.batch_size, 256);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let err = Config::from_toml("[actor]\netta = 0.3\n").unwrap_err().to_string();
        assert!(err.contains("etta"), "{err}");
        let err = Config::from_toml("[actor]\nflow_ratio = 1.5\n").unwrap_err().to_string();
        assert!(err.contains("actor.flow_ratio"), "{err}");
        let err = Config::from_toml("[critic]\ngamma = -0.1\n").unwrap_err().to_string();
        assert!(err.contains("critic.gamma"), "{err}");
    }
}
