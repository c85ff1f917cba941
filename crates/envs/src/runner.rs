//! The evaluation runner: N episodes of a policy on M environments stepped in lockstep (the
//! policy sees one batch per step), the stepping spread over worker threads.
//!
//! Reproducible by construction: episode k's reset noise comes from its own random stream
//! (`seed`, k), and episodes are handed to free environments in a fixed order, so the results
//! do not depend on the thread count (nor, for a deterministic policy, on M).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use mujoco_rs::prelude::MjModel;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::env::{Env, EnvConfig, StepInfo};
use crate::error::EnvError;
use crate::policy::Policy;
use crate::score::ScoreRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EvalConfig {
    pub episodes: usize,
    /// Environments stepped in lockstep (the policy's batch size); at most `episodes` are used.
    pub num_envs: usize,
    /// Worker threads stepping the environments; 1 steps them on the calling thread.
    pub threads: usize,
    pub seed: u64,
}

impl EvalConfig {
    pub fn new(episodes: usize, seed: u64) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        EvalConfig { episodes, num_envs: episodes.min(10), threads, seed }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Episode {
    pub index: usize,
    #[serde(rename = "return")]
    pub ret: f64,
    pub length: usize,
    /// Ended by a fall rather than by the time limit.
    pub terminated: bool,
    /// A maze's closest approach (m) of the ant's torso to the goal over the episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closest_goal_distance: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub mean: f64,
    /// Population standard deviation (NumPy's default), over episodes.
    pub std: f64,
}

impl Summary {
    fn of(values: impl Iterator<Item = f64> + Clone) -> Summary {
        let n = values.clone().count().max(1) as f64;
        let mean = values.clone().sum::<f64>() / n;
        let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Summary { mean, std: var.sqrt() }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    pub env: String,
    pub config: EvalConfig,
    /// In episode order.
    pub episodes: Vec<Episode>,
    pub returns: Summary,
    pub lengths: Summary,
    /// D4RL normalised score of the returns, when reference returns were given.
    pub normalized: Option<Summary>,
    /// A maze's closest approach (m) to the goal over the episodes; None elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closest_goal_distance: Option<Summary>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(
        "the policy takes {policy_obs}-dimensional observations and gives {policy_act}-dimensional \
         actions, but {env} has {env_obs} and {env_act}: was it trained on another environment?"
    )]
    PolicyShape {
        env: String,
        policy_obs: usize,
        policy_act: usize,
        env_obs: usize,
        env_act: usize,
    },
    #[error("the policy failed: {0:#}")]
    Policy(anyhow::Error),
    #[error("the policy gave a non-finite action ({value}) in episode {episode}, step {step}")]
    NonFinite { episode: usize, step: usize, value: f32 },
    #[error("invalid evaluation settings: {0}")]
    Config(String),
    #[error("an environment worker thread stopped unexpectedly")]
    WorkerLost,
}

/// The reset noise stream of episode `index` (public so that a hand-written loop can replay
/// an episode of the runner).
pub fn episode_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

enum Command {
    /// Start episode `.1` in local slot `.0`.
    Reset(Vec<(usize, usize)>),
    /// Step these local slots with these actions (rows in slot order).
    Step(Vec<usize>, Vec<f32>),
}

/// Observations (rows in the command's slot order) and, for steps, each slot's outcome.
struct Reply {
    obs: Vec<f64>,
    infos: Vec<StepInfo>,
}

/// A contiguous block of environments owned by one thread.
struct Worker {
    envs: Vec<Env>,
    seed: u64,
}

impl Worker {
    fn handle(&mut self, command: Command) -> Result<Reply, EnvError> {
        let obs_dim = self.envs[0].obs_dim();
        match command {
            Command::Reset(starts) => {
                let mut obs = Vec::with_capacity(starts.len() * obs_dim);
                for (slot, episode) in starts {
                    obs.extend(self.envs[slot].reset(&mut episode_rng(self.seed, episode)));
                }
                Ok(Reply { obs, infos: Vec::new() })
            }
            Command::Step(slots, actions) => {
                let act_dim = self.envs[0].act_dim();
                let mut obs = vec![0.0; slots.len() * obs_dim];
                let mut infos = Vec::with_capacity(slots.len());
                for ((&slot, action), row) in slots
                    .iter()
                    .zip(actions.chunks_exact(act_dim))
                    .zip(obs.chunks_exact_mut(obs_dim))
                {
                    infos.push(self.envs[slot].step_into(action, row)?);
                }
                Ok(Reply { obs, infos })
            }
        }
    }
}

/// Where a worker runs: on the caller's thread, or on its own behind channels.
enum Lane {
    Inline(Worker),
    Thread(Sender<Command>, Receiver<Result<Reply, EnvError>>),
}

impl Lane {
    fn send(&mut self, command: Command) -> Result<Option<Reply>, EvalError> {
        match self {
            Lane::Inline(worker) => Ok(Some(worker.handle(command)?)),
            Lane::Thread(tx, _) => {
                tx.send(command).map_err(|_| EvalError::WorkerLost)?;
                Ok(None)
            }
        }
    }

    fn finish(&mut self, inline: Option<Reply>) -> Result<Reply, EvalError> {
        match (self, inline) {
            (_, Some(reply)) => Ok(reply),
            (Lane::Thread(_, rx), None) => Ok(rx.recv().map_err(|_| EvalError::WorkerLost)??),
            (Lane::Inline(_), None) => unreachable!("an inline lane always replies at once"),
        }
    }
}

/// Send one command per lane (those with work), then collect the replies in lane order: the
/// threads step concurrently.
fn round(
    lanes: &mut [Lane],
    commands: Vec<Option<Command>>,
) -> Result<Vec<Option<Reply>>, EvalError> {
    let mut pending = Vec::with_capacity(lanes.len());
    for (lane, command) in lanes.iter_mut().zip(commands) {
        pending.push(match command {
            Some(c) => Some(lane.send(c)?),
            None => None,
        });
    }
    lanes
        .iter_mut()
        .zip(pending)
        .map(|(lane, p)| p.map(|inline| lane.finish(inline)).transpose())
        .collect()
}

/// The state of one environment slot, seen from the coordinating thread.
#[derive(Clone)]
struct Slot {
    episode: Option<usize>,
    ret: f64,
    length: usize,
    closest_goal_distance: Option<f64>,
}

/// Run `config.episodes` episodes of `policy` in `env` (an `EnvId` or an `EnvConfig` with a
/// maze's options); `score` adds D4RL's normalised score.
pub fn evaluate(
    env: impl Into<EnvConfig>,
    policy: &mut dyn Policy,
    config: &EvalConfig,
    score: Option<ScoreRef>,
) -> Result<EvalReport, EvalError> {
    if config.episodes == 0 || config.num_envs == 0 || config.threads == 0 {
        return Err(EvalError::Config(format!(
            "episodes ({}), environments ({}) and threads ({}) must all be at least 1",
            config.episodes, config.num_envs, config.threads
        )));
    }
    let env: EnvConfig = env.into();
    let id = env.id;
    let model = env.load_model()?;
    let probe = env.make(Arc::clone(&model))?;
    let (obs_dim, act_dim) = (probe.obs_dim(), probe.act_dim());
    if policy.obs_dim() != obs_dim || policy.act_dim() != act_dim {
        return Err(EvalError::PolicyShape {
            env: id.to_string(),
            policy_obs: policy.obs_dim(),
            policy_act: policy.act_dim(),
            env_obs: obs_dim,
            env_act: act_dim,
        });
    }
    let num_envs = config.num_envs.min(config.episodes);
    let lanes_n = config.threads.min(num_envs);
    // Slot s lives in lane s / per_lane, at local index s % per_lane.
    let per_lane = num_envs.div_ceil(lanes_n);
    let make_worker = |lane: usize, model: &Arc<MjModel>| Worker {
        envs: (lane * per_lane..((lane + 1) * per_lane).min(num_envs))
            .map(|_| env.make(Arc::clone(model)).expect("the probe was made from this model"))
            .collect(),
        seed: config.seed,
    };
    let lanes_n = num_envs.div_ceil(per_lane);

    std::thread::scope(|scope| {
        let mut lanes: Vec<Lane> = (0..lanes_n)
            .map(|lane| {
                let mut worker = make_worker(lane, &model);
                if lanes_n == 1 {
                    return Lane::Inline(worker);
                }
                let (cmd_tx, cmd_rx) = channel::<Command>();
                let (reply_tx, reply_rx) = channel();
                scope.spawn(move || {
                    for command in cmd_rx {
                        if reply_tx.send(worker.handle(command)).is_err() {
                            break;
                        }
                    }
                });
                Lane::Thread(cmd_tx, reply_rx)
            })
            .collect();
        run_episodes(&mut lanes, per_lane, num_envs, obs_dim, act_dim, policy, config.episodes)
        // Dropping the lanes closes the channels, which ends the worker threads.
    })
    .map(|episodes| {
        let returns = Summary::of(episodes.iter().map(|e| e.ret));
        let lengths = Summary::of(episodes.iter().map(|e| e.length as f64));
        let normalized =
            score.map(|s| Summary::of(episodes.iter().map(move |e| s.normalize(e.ret))));
        let closest = episodes.iter().filter_map(|e| e.closest_goal_distance);
        let closest_goal_distance = (closest.clone().count() > 0).then(|| Summary::of(closest));
        EvalReport {
            env: id.to_string(),
            config: *config,
            episodes,
            returns,
            lengths,
            normalized,
            closest_goal_distance,
        }
    })
}

fn run_episodes(
    lanes: &mut [Lane],
    per_lane: usize,
    num_envs: usize,
    obs_dim: usize,
    act_dim: usize,
    policy: &mut dyn Policy,
    total: usize,
) -> Result<Vec<Episode>, EvalError> {
    let mut slots =
        vec![Slot { episode: None, ret: 0.0, length: 0, closest_goal_distance: None }; num_envs];
    let mut obs = vec![0.0f64; num_envs * obs_dim];
    let mut done: Vec<Option<Episode>> = vec![None; total];
    let mut next_episode = 0;

    // Hand the next episodes to the given free slots (in slot order) and reset them.
    let mut start = |free: Vec<usize>,
                     slots: &mut [Slot],
                     obs: &mut [f64],
                     lanes: &mut [Lane]|
     -> Result<(), EvalError> {
        let mut commands: Vec<Vec<(usize, usize)>> = vec![Vec::new(); lanes.len()];
        let mut order = Vec::new();
        for s in free {
            if next_episode < total {
                slots[s] = Slot {
                    episode: Some(next_episode),
                    ret: 0.0,
                    length: 0,
                    closest_goal_distance: None,
                };
                commands[s / per_lane].push((s % per_lane, next_episode));
                order.push(s);
                next_episode += 1;
            }
        }
        let commands =
            commands.into_iter().map(|c| (!c.is_empty()).then_some(Command::Reset(c))).collect();
        let replies = round(lanes, commands)?;
        let rows = replies.into_iter().flatten().flat_map(|r| r.obs);
        let mut rows = rows.collect::<Vec<_>>().into_iter();
        for s in order {
            for o in &mut obs[s * obs_dim..(s + 1) * obs_dim] {
                *o = rows.next().expect("one observation row per reset");
            }
        }
        Ok(())
    };

    start((0..num_envs).collect(), &mut slots, &mut obs, lanes)?;
    let mut batch_obs = Vec::new();
    let mut batch_act = Vec::new();
    loop {
        let active: Vec<usize> = (0..num_envs).filter(|&s| slots[s].episode.is_some()).collect();
        if active.is_empty() {
            break;
        }
        batch_obs.clear();
        for &s in &active {
            batch_obs.extend(obs[s * obs_dim..(s + 1) * obs_dim].iter().map(|&x| x as f32));
        }
        batch_act.clear();
        batch_act.resize(active.len() * act_dim, 0.0f32);
        policy.act(&batch_obs, active.len(), &mut batch_act).map_err(EvalError::Policy)?;
        for (row, &s) in batch_act.chunks_exact(act_dim).zip(&active) {
            if let Some(&value) = row.iter().find(|a| !a.is_finite()) {
                let (episode, step) = (slots[s].episode.unwrap_or(0), slots[s].length);
                return Err(EvalError::NonFinite { episode, step, value });
            }
        }

        let mut commands: Vec<(Vec<usize>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); lanes.len()];
        for (row, &s) in batch_act.chunks_exact(act_dim).zip(&active) {
            let (local, actions) = &mut commands[s / per_lane];
            local.push(s % per_lane);
            actions.extend_from_slice(row);
        }
        let commands = commands
            .into_iter()
            .map(|(l, a)| (!l.is_empty()).then_some(Command::Step(l, a)))
            .collect();
        let replies = round(lanes, commands)?;
        let mut outcomes = replies
            .into_iter()
            .flatten()
            .flat_map(|r| {
                let rows: Vec<Vec<f64>> =
                    r.obs.chunks_exact(obs_dim).map(<[f64]>::to_vec).collect();
                rows.into_iter().zip(r.infos)
            })
            .collect::<Vec<_>>()
            .into_iter();

        let mut finished = Vec::new();
        for &s in &active {
            let (row, info) = outcomes.next().expect("one outcome per stepped slot");
            obs[s * obs_dim..(s + 1) * obs_dim].copy_from_slice(&row);
            let slot = &mut slots[s];
            slot.ret += info.reward;
            slot.length += 1;
            if let Some(d) = info.goal_distance {
                slot.closest_goal_distance =
                    Some(slot.closest_goal_distance.map_or(d, |c| c.min(d)));
            }
            if info.terminated || info.truncated {
                let index = slot.episode.take().expect("active slot");
                done[index] = Some(Episode {
                    index,
                    ret: slot.ret,
                    length: slot.length,
                    terminated: info.terminated,
                    closest_goal_distance: slot.closest_goal_distance,
                });
                finished.push(s);
            }
        }
        if !finished.is_empty() {
            start(finished, &mut slots, &mut obs, lanes)?;
        }
    }
    Ok(done.into_iter().map(|e| e.expect("every episode ran")).collect())
}
