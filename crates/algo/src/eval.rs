//! Evaluation of an agent in the MuJoCo environments: the envs crate's lockstep runner with
//! the agent as its batch policy.

use anyhow::Result;
use candle_core::{Device, Tensor};
use ofql_data::registry::DatasetInfo;
use ofql_envs::runner::{self, EvalConfig as RunnerConfig};
use ofql_envs::{EnvId, Policy, ScoreRef, Version};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::agent::Agent;
use crate::config::{DataConfig, EvalConfig};
use crate::policy::{Protocol, select_actions};
use crate::train::{EvalReport, Evaluator, PlainScore};

/// The agent as a batch policy for the runner, with its own seeded noise.
pub struct AgentPolicy<'a> {
    agent: &'a dyn Agent,
    protocol: Protocol,
    rng: ChaCha8Rng,
    scratch: Vec<f32>,
}

impl<'a> AgentPolicy<'a> {
    pub fn new(agent: &'a dyn Agent, protocol: Protocol, seed: u64) -> Self {
        AgentPolicy { agent, protocol, rng: ChaCha8Rng::seed_from_u64(seed), scratch: Vec::new() }
    }
}

impl Policy for AgentPolicy<'_> {
    fn obs_dim(&self) -> usize {
        self.agent.obs_dim()
    }
    fn act_dim(&self) -> usize {
        self.agent.act_dim()
    }
    fn act(&mut self, obs: &[f32], n: usize, actions: &mut [f32]) -> Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(obs);
        if let Some(norm) = self.agent.obs_norm() {
            norm.apply(&mut self.scratch);
        }
        let obs = Tensor::from_slice(&self.scratch, (n, self.agent.obs_dim()), &Device::Cpu)?;
        let acts = select_actions(self.agent, &obs, self.protocol, &mut self.rng)?;
        let acts: Vec<f32> = acts.flatten_all()?.to_vec1()?;
        actions.copy_from_slice(&acts);
        Ok(())
    }
}

/// Evaluates in one environment with fixed episode seeds, so every evaluation of a run sees
/// the same start states.
pub struct EnvEvaluator {
    pub env: EnvId,
    pub protocol: Protocol,
    pub runner: RunnerConfig,
    pub score: Option<ScoreRef>,
    /// Also score one plain sample per state (same episodes), when `protocol` is not plain.
    pub also_plain: bool,
}

impl EnvEvaluator {
    /// The evaluator a run's `[eval]` section describes (protocol, episodes, parallel
    /// environments, the plain score beside), with D4RL's reference scores for `env`: what
    /// `ofql train` evaluates with and `ofql eval` too (with its flags applied to `eval`).
    pub fn new(env: EnvId, eval: &EvalConfig, seed: u64, threads: usize) -> Result<EnvEvaluator> {
        Ok(EnvEvaluator {
            env,
            protocol: Protocol::from_config(eval),
            runner: RunnerConfig {
                episodes: eval.episodes,
                num_envs: eval.parallel_envs,
                threads,
                seed,
            },
            score: d4rl_reference(env)?,
            also_plain: eval.also_plain,
        })
    }

    pub fn evaluate_agent(&self, agent: &dyn Agent) -> Result<EvalReport> {
        let mut report = self.evaluate_with(agent, self.protocol)?;
        if self.also_plain && self.protocol != Protocol::Plain {
            let plain = self.evaluate_with(agent, Protocol::Plain)?;
            report.plain =
                Some(PlainScore { score_mean: plain.score_mean, score_std: plain.score_std });
        }
        Ok(report)
    }

    fn evaluate_with(&self, agent: &dyn Agent, protocol: Protocol) -> Result<EvalReport> {
        let mut policy = AgentPolicy::new(agent, protocol, self.runner.seed ^ 0xACE);
        let r = runner::evaluate(self.env, &mut policy, &self.runner, self.score)?;
        let returns: Vec<f64> = r.episodes.iter().map(|e| e.ret).collect();
        let (score_mean, score_std) = match &r.normalized {
            Some(s) => (s.mean, s.std),
            None => (f64::NAN, f64::NAN),
        };
        Ok(EvalReport {
            score_mean,
            score_std,
            return_mean: r.returns.mean,
            returns,
            lengths: r.episodes.iter().map(|e| e.length).collect(),
            plain: None,
        })
    }
}

impl Evaluator for EnvEvaluator {
    fn evaluate(&mut self, agent: &dyn Agent) -> Result<EvalReport> {
        self.evaluate_agent(agent)
    }
}

/// D4RL's reference returns for an environment, for the v4 environments that match D4RL's
/// data (v5 differs: its scores are not D4RL's).
pub fn d4rl_reference(id: EnvId) -> Result<Option<ScoreRef>> {
    if id.version != Version::V4 {
        return Ok(None);
    }
    let spec = ofql_data::registry::env_spec(id.task.d4rl_name())?;
    Ok(Some(ScoreRef { min: spec.ref_min, max: spec.ref_max }))
}

/// The environment a run evaluates in: `data.env` when set, else the one the dataset's name
/// implies (D4RL's v2 data -> the v4 environments). None when neither names one of ours.
pub fn eval_env(data: &DataConfig, info: Option<&DatasetInfo>) -> Result<Option<EnvId>> {
    if !data.env.is_empty() {
        return match data.env.parse::<EnvId>() {
            Ok(id) => Ok(Some(id)),
            // Families we have data for but no simulator of (AntMaze, Kitchen).
            Err(_) if ofql_data::registry::env_spec(&data.env).is_ok() => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    let by_name = EnvId::for_d4rl_dataset(&data.dataset);
    Ok(by_name.or_else(|| info.and_then(|i| EnvId::for_d4rl_dataset(i.env))))
}
