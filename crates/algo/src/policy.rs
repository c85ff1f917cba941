//! Acting with a trained agent ([`Agent::act`]), either plainly (one sample, noise
//! temperature 1) or by the CleanDiffuser protocol the paper evaluates with (50 candidates at
//! temperature 0.5, one drawn from softmax(w * min_i Q'_i(s, a_k)), [`Agent::min_q`]).

use anyhow::Result;
use candle_core::{DType, Tensor};
use ofql_nets::gaussian;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::agent::{Agent, CompiledActor, CompiledCritic};
use crate::config::{EvalConfig, EvalProtocol};
use crate::prepare::ObsNorm;

/// One observation in, one action out: the deployment path. The agent's actor compiled
/// ([`Agent::compile_actor`]) and, for the Q-softmax protocol, its critics compiled
/// ([`Agent::compile_critic`]). For the same random stream it decides what
/// `select_actions(.., protocol, ..)` decides for a batch of one, up to the order of float32
/// sums, without tensors, graphs or allocations. With several threads the candidates are
/// split between them (each has its own copy of the networks), so the result does not
/// depend on the thread count beyond float32 rounding.
pub struct Decider {
    protocol: Protocol,
    /// One per thread scoring candidates (one for the plain protocol).
    lanes: Vec<Lane>,
    obs_norm: Option<ObsNorm>,
    obs: Vec<f32>,
    /// candidates x act_dim, and the candidates' actions and values.
    noise: Vec<f32>,
    actions: Vec<f32>,
    q: Vec<f32>,
}

/// The compiled networks one thread scores its share of the candidates with.
struct Lane {
    policy: Box<dyn CompiledActor>,
    /// Present for the Q-softmax protocol.
    critic: Option<Box<dyn CompiledCritic>>,
}

impl Clone for Lane {
    fn clone(&self) -> Lane {
        Lane {
            policy: self.policy.boxed_clone(),
            critic: self.critic.as_ref().map(|c| c.boxed_clone()),
        }
    }
}

/// A thread's lane with its noise rows, action rows and values.
type Share<'a> = (((&'a mut Lane, &'a [f32]), &'a mut [f32]), &'a mut [f32]);

/// Fewer candidates than this per thread are not worth waking a thread for.
const MIN_CANDIDATES_PER_THREAD: usize = 16;

impl Decider {
    /// Compile the agent's actor (and critics) as they are now, to score the candidates on
    /// rayon's threads (RAYON_NUM_THREADS, else the cores).
    pub fn new(agent: &dyn Agent, protocol: Protocol) -> Result<Decider> {
        Decider::with_threads(agent, protocol, rayon::current_num_threads())
    }

    /// As [`Decider::new`], on at most `threads` threads.
    pub fn with_threads(agent: &dyn Agent, protocol: Protocol, threads: usize) -> Result<Decider> {
        let policy = agent.compile_actor()?;
        let (s, a, width) = (agent.obs_dim(), agent.act_dim(), agent.noise_width());
        let (k, lane) = match protocol {
            Protocol::Plain => (1, Lane { policy, critic: None }),
            Protocol::CleanDiffuser { candidates, .. } => {
                anyhow::ensure!(candidates > 0, "the Q-softmax protocol needs candidates >= 1");
                (candidates, Lane { policy, critic: Some(agent.compile_critic()?) })
            }
        };
        let lanes = threads.clamp(1, k.div_ceil(MIN_CANDIDATES_PER_THREAD).max(1));
        Ok(Decider {
            protocol,
            lanes: vec![lane; lanes],
            obs_norm: agent.obs_norm().cloned(),
            obs: vec![0.0; s],
            noise: vec![0.0; k * width],
            actions: vec![0.0; k * a],
            q: vec![0.0; k],
        })
    }

    /// `action` in [-1, 1] for the raw observation `obs`.
    pub fn act<R: Rng>(&mut self, obs: &[f32], rng: &mut R, action: &mut [f32]) {
        self.obs.copy_from_slice(obs);
        if let Some(norm) = &self.obs_norm {
            norm.apply(&mut self.obs);
        }
        // The noise is drawn as `gaussian` draws it (row-major, scaled in f32).
        let (temperature, q_weight) = match self.protocol {
            Protocol::Plain => (1.0, 0.0),
            Protocol::CleanDiffuser { temperature, q_weight, .. } => (temperature as f32, q_weight),
        };
        for z in &mut self.noise {
            *z = temperature * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng);
        }
        if self.protocol == Protocol::Plain {
            self.lanes[0].policy.sample(&self.obs, &self.noise, action);
            for a in action.iter_mut() {
                *a = a.clamp(-1.0, 1.0);
            }
            return;
        }
        // Each thread: its candidates' actions (clamped) and min_i Q'_i.
        let (a, obs) = (action.len(), &self.obs);
        let width = self.noise.len() / self.q.len();
        let per = self.q.len().div_ceil(self.lanes.len());
        let score = |(((lane, noise), acts), q): Share| {
            lane.policy.sample_many(obs, noise, acts);
            for x in acts.iter_mut() {
                *x = x.clamp(-1.0, 1.0);
            }
            if let Some(critic) = &mut lane.critic {
                critic.min_q(obs, acts, q);
            }
        };
        let (noise, acts, q) = (&self.noise, &mut self.actions, &mut self.q);
        if self.lanes.len() == 1 {
            let lanes = self.lanes.iter_mut().zip(noise.chunks(per * width));
            lanes.zip(acts.chunks_mut(per * a)).zip(q.chunks_mut(per)).for_each(score);
        } else {
            let lanes = self.lanes.par_iter_mut().zip(noise.par_chunks(per * width));
            lanes.zip(acts.par_chunks_mut(per * a)).zip(q.par_chunks_mut(per)).for_each(score);
        }
        for q in &mut self.q {
            *q *= q_weight as f32;
        }
        let choice = draw_softmax(&self.q, rng);
        action.copy_from_slice(&self.actions[choice * a..(choice + 1) * a]);
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
        match e.protocol {
            EvalProtocol::Plain => Protocol::Plain,
            EvalProtocol::Cleandiffuser => Protocol::CleanDiffuser {
                candidates: e.candidates,
                temperature: e.temperature,
                q_weight: e.q_weight,
            },
        }
    }
}

/// Actions in [-1, 1] for a batch of (normalised) observations `obs` (n, obs_dim).
pub fn select_actions<R: Rng>(
    agent: &dyn Agent,
    obs: &Tensor,
    protocol: Protocol,
    rng: &mut R,
) -> Result<Tensor> {
    let (n, obs_dim) = obs.dims2()?;
    let width = agent.noise_width();
    let dev = obs.device().clone();
    match protocol {
        Protocol::Plain => {
            let noise = gaussian(rng, n, width, 1.0, DType::F32, &dev)?;
            agent.act(obs, &noise)
        }
        Protocol::CleanDiffuser { candidates: k, temperature, q_weight } => {
            // Row i of obs becomes rows i*k .. i*k+k-1.
            let obs_k = obs.unsqueeze(1)?.repeat((1, k, 1))?.reshape((n * k, obs_dim))?;
            let noise = gaussian(rng, n * k, width, temperature, DType::F32, &dev)?;
            let acts = agent.act(&obs_k, &noise)?;
            let q = agent.min_q(&obs_k, &acts)?.reshape((n, k))?;
            let logits = (q * q_weight)?;
            let choice = sample_rows(&logits, rng)?;
            let idx: Vec<u32> =
                choice.iter().enumerate().map(|(i, c)| (i * k + c) as u32).collect();
            let idx = Tensor::from_vec(idx, n, &dev)?;
            Ok(acts.index_select(&idx, 0)?)
        }
    }
}

/// One categorical draw per row of softmax(logits).
fn sample_rows<R: Rng + ?Sized>(logits: &Tensor, rng: &mut R) -> Result<Vec<usize>> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(rows.iter().map(|row| draw_softmax(row, rng)).collect())
}

/// One draw from softmax(logits), stable for large logits (the largest is subtracted first).
fn draw_softmax<R: Rng + ?Sized>(logits: &[f32], rng: &mut R) -> usize {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights = logits.iter().map(|&x| ((x - max) as f64).exp());
    let total: f64 = weights.clone().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.enumerate() {
        u -= w;
        if u <= 0.0 {
            return i;
        }
    }
    logits.len() - 1
}
