//! Evaluation of an agent in the MuJoCo environments: the envs crate's lockstep runner with
//! the agent as its batch policy.

use anyhow::Result;
use candle_core::{Device, Tensor};
use ofql_envs::runner::{self, EvalConfig as RunnerConfig};
use ofql_envs::{EnvId, Policy, ScoreRef};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::agent::Ofql;
use crate::policy::{Protocol, select_actions};
use crate::train::{EvalReport, Evaluator};

/// The agent as a batch policy for the runner, with its own seeded noise.
pub struct AgentPolicy<'a> {
    agent: &'a Ofql,
    protocol: Protocol,
    rng: ChaCha8Rng,
    scratch: Vec<f32>,
}

impl<'a> AgentPolicy<'a> {
    pub fn new(agent: &'a Ofql, protocol: Protocol, seed: u64) -> Self {
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
        if let Some(norm) = &self.agent.obs_norm {
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
}

impl EnvEvaluator {
    pub fn evaluate_agent(&self, agent: &Ofql) -> Result<EvalReport> {
        let mut policy = AgentPolicy::new(agent, self.protocol, self.runner.seed ^ 0xACE);
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
        })
    }
}

impl Evaluator for EnvEvaluator {
    fn evaluate(&mut self, agent: &Ofql) -> Result<EvalReport> {
        self.evaluate_agent(agent)
    }
}
