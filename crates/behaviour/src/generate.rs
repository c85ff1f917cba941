//! D4RL-style datasets from the project's own behaviour policies: roll a policy out in the
//! simulator and record what D4RL records (observations, actions, rewards, terminals,
//! timeouts, next_observations, infos/qpos, infos/qvel, metadata).
//!
//! Kinds, as D4RL made them: `random` (uniform actions), `medium` (the first snapshot whose
//! return reaches a third of the best one's), `expert` (the best snapshot), `medium-expert`
//! (the two concatenated), `medium-replay` (every transition the SAC run made until its medium
//! snapshot, in order, from the run's checkpoint). Policies act stochastically (a tanh-Gaussian sample), as D4RL's SAC
//! policies did when collecting.

use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use ndarray::{Array1, Array2};
use ofql_data::{Dataset, Stats};
use ofql_envs::{Env, EnvId};
use ofql_nets::Checkpoint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::online::{Snapshot, buffer_from, pick_snapshots, read_snapshots, state_log_from};
use crate::sac::{FrozenSacActor, SacActor, SacConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Random,
    Medium,
    Expert,
    MediumExpert,
    MediumReplay,
}

impl std::str::FromStr for Kind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Kind> {
        Ok(match s {
            "random" => Kind::Random,
            "medium" => Kind::Medium,
            "expert" => Kind::Expert,
            "medium-expert" => Kind::MediumExpert,
            "medium-replay" => Kind::MediumReplay,
            other => bail!(
                "unknown dataset kind `{other}`: use random, medium, expert, medium-replay or \
                 medium-expert"
            ),
        })
    }
}

/// Something that picks an action for one observation.
enum Actor {
    Random(Vec<(f64, f64)>),
    Sac(FrozenSacActor),
}

impl Actor {
    fn act(&mut self, obs: &[f32], rng: &mut ChaCha8Rng) -> Result<Vec<f32>> {
        match self {
            Actor::Random(bounds) => {
                Ok(bounds.iter().map(|&(lo, hi)| rng.random_range(lo as f32..=hi as f32)).collect())
            }
            Actor::Sac(actor) => Ok(actor.sample(obs, rng)),
        }
    }
}

fn load_actor(run: &Path, snap: &Snapshot, obs_dim: usize, act_dim: usize) -> Result<Actor> {
    let ck = Checkpoint::load(&run.join(&snap.file), &Device::Cpu)
        .with_context(|| format!("cannot load snapshot {}", snap.file))?;
    let cfg: SacConfig = ck.json("sac_config")?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let actor = SacActor::new(obs_dim, act_dim, &cfg, &mut rng)?;
    ck.restore_vars("actor", &actor)?;
    Ok(Actor::Sac(FrozenSacActor::new(&actor)?))
}

/// The exact (float64) simulator state before each row of a generated dataset. They are
/// written as `infos/qpos` and `infos/qvel` at full precision (`write_states_f64`), so that
/// the file replays exactly.
#[derive(Debug, Clone)]
pub struct States {
    pub qpos: Array2<f64>,
    pub qvel: Array2<f64>,
}

/// A generated dataset (its `qpos`/`qvel` left empty) and its exact states.
pub struct Generated {
    pub data: Dataset,
    pub states: States,
}

/// `steps` transitions of `actor`, in episodes of at most 1000 steps.
fn rollout(
    env: &mut Env,
    actor: &mut Actor,
    steps: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Generated> {
    let (d, a, nq, nv) = (env.obs_dim(), env.act_dim(), env.nq(), env.nv());
    let mut obs = Vec::with_capacity(steps * d);
    let mut next = Vec::with_capacity(steps * d);
    let mut acts = Vec::with_capacity(steps * a);
    let (mut qpos, mut qvel) = (Vec::with_capacity(steps * nq), Vec::with_capacity(steps * nv));
    let (mut rewards, mut terminals, mut timeouts) = (vec![], vec![], vec![]);
    let mut o: Vec<f32> = env.reset(rng).iter().map(|&x| x as f32).collect();
    for _ in 0..steps {
        // Row i holds the state at which observations[i] was taken (before the step).
        qpos.extend_from_slice(env.qpos());
        qvel.extend_from_slice(env.qvel());
        let u = actor.act(&o, rng)?;
        let step = env.step(&u)?;
        let n: Vec<f32> = step.obs.iter().map(|&x| x as f32).collect();
        obs.extend_from_slice(&o);
        acts.extend_from_slice(&u);
        next.extend_from_slice(&n);
        rewards.push(step.reward as f32);
        terminals.push(step.terminated);
        timeouts.push(step.truncated && !step.terminated);
        o = if step.terminated || step.truncated {
            env.reset(rng).iter().map(|&x| x as f32).collect()
        } else {
            n
        };
    }
    // The last row ends the data: mark it as cut so that no transition runs past it.
    if let Some(last) = timeouts.last_mut() {
        *last = !terminals.last().copied().unwrap_or(false);
    }
    let n = rewards.len();
    let mut data = Dataset::new(
        Array2::from_shape_vec((n, d), obs)?,
        Array2::from_shape_vec((n, a), acts)?,
        Array1::from(rewards),
        Array1::from(terminals),
        Array1::from(timeouts),
    );
    data.next_observations = Some(Array2::from_shape_vec((n, d), next)?);
    let states = States {
        qpos: Array2::from_shape_vec((n, nq), qpos)?,
        qvel: Array2::from_shape_vec((n, nv), qvel)?,
    };
    Ok(Generated { data, states })
}

/// Generate a dataset of `kind` in environment `env` (`policy_run` is a behaviour run
/// directory, needed for every kind but random). `command` is recorded in the metadata.
pub fn generate(
    env: EnvId,
    kind: Kind,
    steps: usize,
    policy_run: Option<&Path>,
    seed: u64,
    command: &str,
) -> Result<Generated> {
    let mut sim = Env::new(env)?;
    let (d, a) = (sim.obs_dim(), sim.act_dim());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut meta = vec![
        ("algorithm", json!(if kind == Kind::Random { "random" } else { "SAC (ofql)" })),
        ("seed", json!(seed)),
        ("command", json!(command)),
        ("env", json!(env.to_string())),
    ];
    // The random policy's level, recorded in every file beside the medium and expert returns
    // (D4RL's normalisation puts 0 there): 10 episodes from their own seeded stream.
    let mut random = Actor::Random(sim.action_bounds());
    let mut random_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7A2D_0A11);
    let probe = rollout(&mut sim, &mut random, 10 * 1000, &mut random_rng)?;
    meta.push(("policy/random_return", json!(Stats::of(&probe.data).return_mean)));
    let mut out = match kind {
        Kind::Random => {
            let mut random = Actor::Random(sim.action_bounds());
            rollout(&mut sim, &mut random, steps, &mut rng)?
        }
        _ => {
            let run = policy_run.context("this kind needs --policy DIR: a behaviour run (`ofql behaviour train --out DIR`), or for medium, expert and medium-expert a folder of shipped policies such as data/behaviour/hopper-v4")?;
            let (medium, expert) = pick_snapshots(&read_snapshots(run)?)?;
            meta.push(("policy/medium_return", json!(medium.return_mean)));
            meta.push(("policy/expert_return", json!(expert.return_mean)));
            let roll = |snap: &Snapshot, n: usize, sim: &mut Env, rng: &mut ChaCha8Rng| {
                rollout(sim, &mut load_actor(run, snap, d, a)?, n, rng)
            };
            match kind {
                Kind::MediumReplay => replay_until(run, medium.step, &sim)?,
                Kind::Medium => roll(&medium, steps, &mut sim, &mut rng)?,
                Kind::Expert => roll(&expert, steps, &mut sim, &mut rng)?,
                _ => {
                    let m = roll(&medium, steps / 2, &mut sim, &mut rng)?;
                    let e = roll(&expert, steps - steps / 2, &mut sim, &mut rng)?;
                    concat(&m, &e)?
                }
            }
        }
    };
    for (k, v) in meta {
        out.data.metadata.insert(k.to_string(), v);
    }
    Ok(out)
}

/// The first `rows` transitions of the behaviour run's replay buffer, with their states.
fn replay_until(run: &Path, rows: u64, sim: &Env) -> Result<Generated> {
    let path = run.join("checkpoint.safetensors");
    let ck = Checkpoint::load(&path, &Device::Cpu).with_context(|| {
        format!(
            "medium-replay needs the behaviour run's checkpoint {} (shipped policies do not have \
             one: train with `ofql behaviour train`)",
            path.display()
        )
    })?;
    let (d, a, nq, nv) = (sim.obs_dim(), sim.act_dim(), sim.nq(), sim.nv());
    let t = buffer_from(&ck, d, a)?;
    let states = state_log_from(&ck, t.len(), nq, nv)?;
    let n = rows as usize;
    if t.len() < n {
        bail!(
            "the checkpoint holds {} steps but the medium snapshot is at step {n}: resume the \
             run until its checkpoint passes the medium snapshot",
            t.len()
        );
    }
    let terminals: Vec<bool> = t.dones[..n].iter().map(|&x| x != 0.0).collect();
    let mut timeouts = states.timeouts[..n].to_vec();
    if let Some(last) = timeouts.last_mut() {
        *last = !terminals[n - 1];
    }
    let mut data = Dataset::new(
        Array2::from_shape_vec((n, d), t.observations[..n * d].to_vec())?,
        Array2::from_shape_vec((n, a), t.actions[..n * a].to_vec())?,
        Array1::from(t.rewards[..n].to_vec()),
        Array1::from(terminals),
        Array1::from(timeouts),
    );
    data.next_observations =
        Some(Array2::from_shape_vec((n, d), t.next_observations[..n * d].to_vec())?);
    let states = States {
        qpos: Array2::from_shape_vec((n, nq), states.qpos[..n * nq].to_vec())?,
        qvel: Array2::from_shape_vec((n, nv), states.qvel[..n * nv].to_vec())?,
    };
    Ok(Generated { data, states })
}

fn concat(x: &Generated, y: &Generated) -> Result<Generated> {
    use ndarray::concatenate;
    let (x, xs, y, ys) = (&x.data, &x.states, &y.data, &y.states);
    let cat2 =
        |p: &Array2<f32>, q: &Array2<f32>| concatenate(ndarray::Axis(0), &[p.view(), q.view()]);
    let cat64 =
        |p: &Array2<f64>, q: &Array2<f64>| concatenate(ndarray::Axis(0), &[p.view(), q.view()]);
    let mut out = Dataset::new(
        cat2(&x.observations, &y.observations)?,
        cat2(&x.actions, &y.actions)?,
        concatenate(ndarray::Axis(0), &[x.rewards.view(), y.rewards.view()])?,
        concatenate(ndarray::Axis(0), &[x.terminals.view(), y.terminals.view()])?,
        concatenate(ndarray::Axis(0), &[x.timeouts.view(), y.timeouts.view()])?,
    );
    out.next_observations = match (&x.next_observations, &y.next_observations) {
        (Some(p), Some(q)) => Some(cat2(p, q)?),
        _ => None,
    };
    let states = States { qpos: cat64(&xs.qpos, &ys.qpos)?, qvel: cat64(&xs.qvel, &ys.qvel)? };
    Ok(Generated { data: out, states })
}
