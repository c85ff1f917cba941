//! The seam between a method and everything around it.
//!
//! The training loop ([`crate::train`]), the evaluator ([`crate::eval`]), the policies and the
//! deployment path ([`crate::policy`]), `ofql train/eval/bench` and the report see a method
//! only through [`Agent`]. A method lives in a file of its own ([`crate::ofql`] is OFQL, the
//! paper's Algorithm 1) and is named here, in [`build`] and [`from_checkpoint`], under the
//! name a config gives in `[algo] name`.

use std::fmt;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use ofql_data::replay::Batch;
use ofql_flow::OneStepPolicy;
use ofql_nets::{Adam, Checkpoint, CompiledDoubleQ, NamedVars};
use rand_chacha::ChaCha8Rng;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::Config;
use crate::dql::Dql;
use crate::fql::Fql;
use crate::ofql::Ofql;
use crate::prepare::ObsNorm;

/// The methods this crate trains, by their config name.
pub const METHODS: [&str; 3] = ["ofql", "dql", "fql"];

/// A trainable, checkpointable policy with critics.
///
/// Observations given to [`Agent::act`] and [`Agent::min_q`] are already normalised with
/// [`Agent::obs_norm`]; the policies in [`crate::policy`] do that for raw observations.
pub trait Agent: Send + Sync {
    /// The method's name, as `[algo] name` gives it and checkpoints record it.
    fn method(&self) -> &'static str;
    fn config(&self) -> &Config;
    fn obs_dim(&self) -> usize;
    fn act_dim(&self) -> usize;
    /// Gradient steps taken so far.
    fn step(&self) -> u64;
    /// Threads one update may use. A seed and a thread count fix a run's numbers.
    fn set_threads(&mut self, threads: usize);
    /// One training iteration on `batch`; what it measured, by name.
    fn update(&mut self, batch: &Batch) -> Result<Metrics>;

    /// Columns of noise one action is drawn from (the policy's source of randomness).
    fn noise_width(&self) -> usize;
    /// Actions in [-1, 1] for observations (n, obs_dim) from noise (n, noise_width).
    fn act(&self, obs: &Tensor, noise: &Tensor) -> Result<Tensor>;
    /// min_i Q_i(s, a) of the critics the Q-softmax protocol weighs candidates with, (n, 1).
    fn min_q(&self, obs: &Tensor, actions: &Tensor) -> Result<Tensor>;
    /// The normalisation of observations the agent trained with (None: raw).
    fn obs_norm(&self) -> Option<&ObsNorm>;
    /// [`Agent::act`] compiled for one observation at a time (deployment).
    fn compile_actor(&self) -> Result<Box<dyn CompiledActor>>;
    /// [`Agent::min_q`] compiled likewise.
    fn compile_critic(&self) -> Result<Box<dyn CompiledCritic>>;

    /// Everything a resumed run needs, with the method's name (`"method"`).
    fn checkpoint(&self) -> Result<Checkpoint>;
    /// Restore from a checkpoint of the same method and sizes.
    fn restore(&mut self, ck: &Checkpoint) -> Result<()>;
}

/// A policy on plain f32 slices: rows of noise in, rows of actions out (not yet clamped).
pub trait CompiledActor: Send {
    fn sample(&mut self, obs: &[f32], noise: &[f32], action: &mut [f32]);
    /// Several actions for one observation (the protocol's candidates).
    fn sample_many(&mut self, obs: &[f32], noise: &[f32], actions: &mut [f32]);
    fn boxed_clone(&self) -> Box<dyn CompiledActor>;
}

/// min_i Q_i(s, a_k) on plain f32 slices for one observation and several actions.
pub trait CompiledCritic: Send {
    fn min_q(&mut self, obs: &[f32], actions: &[f32], out: &mut [f32]);
    fn boxed_clone(&self) -> Box<dyn CompiledCritic>;
}

impl CompiledActor for OneStepPolicy {
    fn sample(&mut self, obs: &[f32], noise: &[f32], action: &mut [f32]) {
        OneStepPolicy::sample(self, obs, noise, action)
    }
    fn sample_many(&mut self, obs: &[f32], noise: &[f32], actions: &mut [f32]) {
        OneStepPolicy::sample_many(self, obs, noise, actions)
    }
    fn boxed_clone(&self) -> Box<dyn CompiledActor> {
        Box::new(self.clone())
    }
}

impl CompiledCritic for CompiledDoubleQ {
    fn min_q(&mut self, obs: &[f32], actions: &[f32], out: &mut [f32]) {
        CompiledDoubleQ::min_q(self, obs, actions, out)
    }
    fn boxed_clone(&self) -> Box<dyn CompiledCritic> {
        Box::new(self.clone())
    }
}

/// A fresh agent of the method `cfg.algo.name`, initialised from `cfg.train.seed`, for data
/// of these sizes (with `obs_norm` when the data's observations were normalised).
pub fn build(
    cfg: &Config,
    obs_dim: usize,
    act_dim: usize,
    obs_norm: Option<ObsNorm>,
    device: &Device,
) -> Result<Box<dyn Agent>> {
    match cfg.algo.name.as_str() {
        "ofql" => Ok(Box::new(Ofql::new(cfg, obs_dim, act_dim, device)?.with_obs_norm(obs_norm))),
        "dql" => Ok(Box::new(Dql::new(cfg, obs_dim, act_dim, device)?.with_obs_norm(obs_norm))),
        "fql" => Ok(Box::new(Fql::new(cfg, obs_dim, act_dim, device)?.with_obs_norm(obs_norm))),
        other => bail!("unknown method [algo] name = {other:?}: use one of {}", METHODS.join(", ")),
    }
}

/// The method a checkpoint was written by. Checkpoints from before methods were named are
/// OFQL's, the only method there was.
pub fn checkpoint_method(ck: &Checkpoint) -> String {
    ck.json::<String>("method").unwrap_or_else(|_| "ofql".into())
}

/// An agent rebuilt from a checkpoint alone (evaluation, deployment).
pub fn from_checkpoint(ck: &Checkpoint, device: &Device) -> Result<Box<dyn Agent>> {
    let cfg: Config = ck.json("config").context("checkpoint has no config")?;
    let (obs_dim, act_dim): (usize, usize) = ck.json("dims").context("network sizes")?;
    let method = checkpoint_method(ck);
    if method != cfg.algo.name {
        bail!("checkpoint written by `{method}` holds a config for `{}`", cfg.algo.name);
    }
    let mut agent = build(&cfg, obs_dim, act_dim, None, device)?;
    agent.restore(ck)?;
    Ok(agent)
}

/// A checkpoint of an agent: its networks and optimisers under the given names (OFQL and
/// DQL: `actor`, `actor_ema`, `critic`, `critic_target`, `actor_opt`, `critic_opt`), its
/// generator, and what `from_checkpoint` needs (method, config, sizes, observation
/// normalisation, step).
pub(crate) fn write_checkpoint(
    agent: &dyn Agent,
    nets: &[(&str, &dyn NamedVars)],
    opts: &[(&str, &Adam)],
    rng: &ChaCha8Rng,
) -> Result<Checkpoint> {
    let mut ck = Checkpoint::new();
    for (name, net) in nets {
        ck.add_vars(name, *net)?;
    }
    for (name, opt) in opts {
        ck.add_adam(name, opt)?;
    }
    ck.set_json("method", &agent.method())?;
    ck.set_json("rng", rng)?;
    ck.set_json("config", agent.config())?;
    ck.set_json("dims", &(agent.obs_dim(), agent.act_dim()))?;
    ck.set_json("obs_norm", &agent.obs_norm())?;
    ck.set_step(agent.step());
    Ok(ck)
}

/// Restores what [`write_checkpoint`] wrote into an agent of `method` with these sizes;
/// returns the generator, the observation normalisation and the step.
pub(crate) fn read_checkpoint(
    ck: &Checkpoint,
    method: &str,
    dims: (usize, usize),
    nets: &[(&str, &dyn NamedVars)],
    opts: Vec<(&str, &mut Adam)>,
) -> Result<(ChaCha8Rng, Option<ObsNorm>, u64)> {
    check_method(ck, method)?;
    let saved: (usize, usize) = ck.json("dims").context("network sizes")?;
    if saved != dims {
        bail!(
            "checkpoint is for obs_dim {} / act_dim {}, this agent has {} / {}",
            saved.0,
            saved.1,
            dims.0,
            dims.1
        );
    }
    for (name, net) in nets {
        ck.restore_vars(name, *net).with_context(|| format!("network `{name}`"))?;
    }
    for (name, opt) in opts {
        ck.restore_adam(name, opt).with_context(|| format!("optimiser `{name}`"))?;
    }
    Ok((
        ck.json("rng").context("RNG state")?,
        ck.json("obs_norm").context("observation normalisation")?,
        ck.step()?,
    ))
}

/// Refuses a checkpoint of another method than `expected` (restore's first check).
pub fn check_method(ck: &Checkpoint, expected: &str) -> Result<()> {
    let found = checkpoint_method(ck);
    if found != expected {
        bail!(
            "the checkpoint was written by method `{found}`, this agent is `{expected}`: load it \
             with [algo] name = \"{found}\""
        );
    }
    Ok(())
}

/// The numbers one update reports, by name, in the method's order. Written as JSON object
/// members (in `metrics.jsonl` rows, a run's final losses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics(pub Vec<(String, f64)>);

impl Metrics {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    pub fn all_finite(&self) -> bool {
        self.0.iter().all(|(_, v)| v.is_finite())
    }

    /// `name value` pairs, the first `n` of them (a progress line).
    pub fn headline(&self, n: usize) -> String {
        let pairs = self.0.iter().take(n).map(|(k, v)| format!("{k} {}", short(*v)));
        pairs.collect::<Vec<_>>().join(" ")
    }
}

/// Four significant digits, without exponent for everyday sizes.
fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        let decimals = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.decimals$}")
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline(self.0.len()))
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Metrics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Metrics, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Metrics;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("named numbers")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Metrics, A::Error> {
                let mut out = vec![];
                // JSON has no NaN: serde_json writes it as null.
                while let Some((k, v)) = m.next_entry::<String, Option<f64>>()? {
                    out.push((k, v.unwrap_or(f64::NAN)));
                }
                Ok(Metrics(out))
            }
        }
        d.deserialize_map(InOrder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_keep_their_order_through_json() {
        let m = Metrics(vec![("critic".into(), 2.5), ("flow".into(), 0.125), ("a".into(), -1.0)]);
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, r#"{"critic":2.5,"flow":0.125,"a":-1.0}"#);
        assert_eq!(serde_json::from_str::<Metrics>(&text).unwrap(), m);
        assert_eq!(m.get("flow"), Some(0.125));
        assert_eq!(m.headline(2), "critic 2.500 flow 0.1250");
        let nan: Metrics = serde_json::from_str(r#"{"critic":null}"#).unwrap();
        assert!(!nan.all_finite());
    }
}
