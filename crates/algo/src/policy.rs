//! Acting with a trained agent: the EMA actor sampled in one step, either plainly (one
//! sample, noise temperature 1) or by the CleanDiffuser protocol the paper evaluates with
//! (50 candidates at temperature 0.5, one drawn from softmax(w * min_i Q'_i(s, a_k))).

use anyhow::Result;
use candle_core::{D, DType, Tensor};
use ofql_flow::{clamp_actions, gaussian, one_step_sample};
use ofql_nets::OneStepPolicy;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::agent::Ofql;
use crate::config::EvalConfig;
use crate::prepare::ObsNorm;

/// One observation in, one action out, by the plain protocol (one sample at temperature 1),
/// on the compiled EMA actor ([`OneStepPolicy`]): the deployment path. It computes what
/// `select_actions(.., Protocol::Plain, ..)` computes for a batch of one, up to the order of
/// float32 sums, without tensors or allocations.
pub struct PlainDecider {
    policy: OneStepPolicy,
    obs_norm: Option<ObsNorm>,
    obs: Vec<f32>,
    noise: Vec<f32>,
}

impl PlainDecider {
    /// Compile the agent's EMA actor as it is now.
    pub fn new(agent: &Ofql) -> Result<PlainDecider> {
        let policy = OneStepPolicy::new(&agent.actor_ema)?;
        let (s, a) = (policy.obs_dim(), policy.act_dim());
        Ok(PlainDecider {
            policy,
            obs_norm: agent.obs_norm.clone(),
            obs: vec![0.0; s],
            noise: vec![0.0; a],
        })
    }

    /// `action` in [-1, 1] for the raw observation `obs`.
    pub fn act<R: Rng>(&mut self, obs: &[f32], rng: &mut R, action: &mut [f32]) {
        self.obs.copy_from_slice(obs);
        if let Some(norm) = &self.obs_norm {
            norm.apply(&mut self.obs);
        }
        for z in &mut self.noise {
            *z = StandardNormal.sample(rng);
        }
        self.policy.sample(&self.obs, &self.noise, action);
        for a in action.iter_mut() {
            *a = a.clamp(-1.0, 1.0);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Protocol {
    /// `candidates` samples at noise `temperature`, one drawn by Q-softmax with weight `q_weight`.
    CleanDiffuser { candidates: usize, temperature: f64, q_weight: f64 },
    /// One sample at temperature 1.
    Plain,
}

impl Protocol {
    pub fn from_config(e: &EvalConfig) -> Protocol {
        match e.protocol.as_str() {
            "plain" => Protocol::Plain,
            _ => Protocol::CleanDiffuser {
                candidates: e.candidates,
                temperature: e.temperature,
                q_weight: e.q_weight,
            },
        }
    }
}

/// Actions in [-1, 1] for a batch of observations `obs` (n, obs_dim).
pub fn select_actions<R: Rng>(
    agent: &Ofql,
    obs: &Tensor,
    protocol: Protocol,
    rng: &mut R,
) -> Result<Tensor> {
    let (n, obs_dim) = obs.dims2()?;
    let act_dim = agent.actor_ema.config().act_dim;
    let dev = obs.device().clone();
    match protocol {
        Protocol::Plain => {
            let noise = gaussian(rng, n, act_dim, 1.0, DType::F32, &dev)?;
            Ok(clamp_actions(&one_step_sample(&agent.actor_ema, obs, &noise)?, -1.0, 1.0)?)
        }
        Protocol::CleanDiffuser { candidates: k, temperature, q_weight } => {
            // Row i of obs becomes rows i*k .. i*k+k-1.
            let obs_k = obs.unsqueeze(1)?.repeat((1, k, 1))?.reshape((n * k, obs_dim))?;
            let noise = gaussian(rng, n * k, act_dim, temperature, DType::F32, &dev)?;
            let acts =
                clamp_actions(&one_step_sample(&agent.actor_ema, &obs_k, &noise)?, -1.0, 1.0)?;
            let q = agent.critic_target.min(&obs_k, &acts)?.reshape((n, k))?;
            let logits = (q * q_weight)?;
            let choice = sample_rows(&logits, rng)?;
            let idx: Vec<u32> =
                choice.iter().enumerate().map(|(i, c)| (i * k + c) as u32).collect();
            let idx = Tensor::from_vec(idx, n, &dev)?;
            Ok(acts.index_select(&idx, 0)?)
        }
    }
}

/// One categorical draw per row of softmax(logits), stable for large logits.
fn sample_rows<R: Rng + ?Sized>(logits: &Tensor, rng: &mut R) -> Result<Vec<usize>> {
    let logits = logits.broadcast_sub(&logits.max_keepdim(D::Minus1)?)?;
    let rows: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(rows
        .iter()
        .map(|row| {
            let weights: Vec<f64> = row.iter().map(|&x| (x as f64).exp()).collect();
            let total: f64 = weights.iter().sum();
            let mut u = rng.random::<f64>() * total;
            for (i, w) in weights.iter().enumerate() {
                u -= w;
                if u <= 0.0 {
                    return i;
                }
            }
            weights.len() - 1
        })
        .collect())
}
