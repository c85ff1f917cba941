//! Training behaviour policies online with SAC, the way D4RL made its data: the policy is
//! evaluated every `eval_every` environment steps and saved as a snapshot with its return, so
//! that "medium" (the first snapshot reaching about a third of the expert's return) and
//! "expert" (the best) can be picked afterwards.
//!
//! A run directory holds `behaviour.toml`, `snapshots.jsonl` (step, return mean and std, file),
//! `snapshots/step_<N>.safetensors` (actor weights) and `checkpoint.safetensors` (everything
//! to resume: networks, optimisers, RNGs, the whole replay buffer and, row by row, the
//! simulator state before each step and whether the episode was cut there, which is what a
//! "medium-replay" dataset needs). A resumed run starts a new episode: the episode in progress
//! at the checkpoint is dropped and its last recorded row is marked as cut.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use ofql_data::{ReplayBuffer, Transitions};
use ofql_envs::runner::{EvalConfig as RunnerConfig, evaluate};
use ofql_envs::{EnvConfig, EnvId, MazeOptions, Policy, Task};
use ofql_nets::Checkpoint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::sac::{Sac, SacActor, SacConfig, SacLosses};
use ofql_algo::run_lock::RunLock;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviourConfig {
    /// Environment, e.g. "halfcheetah-v4", or a maze for `goal_reaching`.
    pub env: String,
    /// Train the goal-reaching ant that collects AntMaze data (`env` a maze, e.g.
    /// "AntMaze_Open-v4"): the maze's goal-reaching task (`MazeOptions::goal_reaching`), a new
    /// goal each time one is reached.
    pub goal_reaching: bool,
    /// The goal-reaching task's map instead of the id's, as rows of 1 (wall), 0, r, g, c
    /// (`ofql_envs::maze::Maze::from_rows`): e.g. a wide open field walled round, where goals
    /// lie farther apart than in AntMaze_Open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maze_map: Option<Vec<String>>,
    /// Environment steps (one gradient step each once learning starts).
    pub steps: u64,
    pub eval_every: u64,
    pub eval_episodes: usize,
    pub checkpoint_every: u64,
    pub sac: SacConfig,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        BehaviourConfig {
            env: String::new(),
            goal_reaching: false,
            maze_map: None,
            steps: 1_000_000,
            eval_every: 10_000,
            eval_episodes: 10,
            checkpoint_every: 10_000,
            sac: SacConfig::default(),
        }
    }
}

/// One line of `snapshots.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub step: u64,
    pub return_mean: f64,
    pub return_std: f64,
    /// Relative to the run directory.
    pub file: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BehaviourSummary {
    pub env: String,
    pub steps: u64,
    pub env_steps_per_second: f64,
    pub best_return: Option<f64>,
    pub last_losses: SacLosses,
    pub interrupted: bool,
}

/// What the replay buffer does not hold but a D4RL file does: the state before each step
/// (infos/qpos, infos/qvel) and whether the episode was cut after it (timeouts). Row i
/// belongs to row i of the replay buffer, which is never evicted: rows are in the order the
/// run made them.
#[derive(Debug, Clone, Default)]
pub struct StateLog {
    pub qpos: Vec<f64>,
    pub qvel: Vec<f64>,
    pub timeouts: Vec<bool>,
}

/// The deterministic SAC policy (tanh of the mean) for the evaluation runner.
pub struct SacPolicy<'a> {
    pub actor: &'a SacActor,
    pub obs_dim: usize,
    pub act_dim: usize,
}

impl Policy for SacPolicy<'_> {
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }
    fn act_dim(&self) -> usize {
        self.act_dim
    }
    fn act(&mut self, obs: &[f32], n: usize, actions: &mut [f32]) -> Result<()> {
        let obs = Tensor::from_slice(obs, (n, self.obs_dim), &Device::Cpu)?;
        let a = self.actor.mean_action(&obs)?.flatten_all()?.to_vec1::<f32>()?;
        actions.copy_from_slice(&a);
        Ok(())
    }
}

/// Progress of an online run, for the caller's progress bar.
pub trait BehaviourObserver {
    fn on_step(&mut self, _step: u64, _total: u64) {}
    fn on_snapshot(&mut self, _snapshot: &Snapshot, _losses: &SacLosses) {}
}

/// How a goal-reaching snapshot sees its goal (`ofql_envs::maze::heading_offset`).
pub const GOAL_FRAME: &str = "heading";

pub struct Quiet;
impl BehaviourObserver for Quiet {}

impl BehaviourConfig {
    /// The environment the policy trains in.
    pub fn env_config(&self) -> Result<EnvConfig> {
        let id: EnvId = self.env.parse()?;
        let mut env = EnvConfig::from(id);
        if self.goal_reaching {
            if !matches!(id.task, Task::AntMaze(_)) {
                bail!(
                    "goal_reaching trains the ant of a maze: env must be a maze (e.g. AntMaze_Open-v4), not {id}"
                );
            }
            env.maze = MazeOptions {
                goal_reaching: true,
                continuing_task: true,
                reset_target: true,
                cells_map: self.maze_map.clone(),
                ..MazeOptions::default()
            };
            // A bad map is an error now, not when the first environment is made.
            env.validate()?;
        } else if self.maze_map.is_some() {
            bail!("maze_map is the goal-reaching task's map: use it with goal_reaching");
        }
        Ok(env)
    }
}

pub fn train_behaviour(
    cfg: &BehaviourConfig,
    out: &Path,
    resume: bool,
    stop: &AtomicBool,
    observer: &mut dyn BehaviourObserver,
) -> Result<BehaviourSummary> {
    let env_config = cfg.env_config()?;
    let mut env = env_config.make_one()?;
    let (d, a) = (env.obs_dim(), env.act_dim());
    let mut sac = Sac::new(&cfg.sac, d, a)?;
    let mut buffer = ReplayBuffer::new(Transitions::empty(d, a));
    let mut states = StateLog::default();
    let mut env_rng = ChaCha8Rng::seed_from_u64(cfg.sac.seed.wrapping_add(17));
    let mut sampler = ChaCha8Rng::seed_from_u64(cfg.sac.seed.wrapping_add(29));
    let mut step = 0u64;
    let mut best: Option<f64> = None;
    let ck_path = out.join("checkpoint.safetensors");
    let cfg_path = out.join("behaviour.toml");

    let _lock = RunLock::acquire(out, resume, &cfg_path)?;
    if resume && !ck_path.is_file() {
        bail!(
            "cannot resume {}: it has no checkpoint.safetensors (stopped before its first \
             checkpoint, or the file was removed). Nothing was changed; start it again with \
             another --out",
            out.display()
        );
    }
    if resume {
        let saved: BehaviourConfig = toml::from_str(&fs::read_to_string(&cfg_path)?)?;
        let mut comparable = saved;
        comparable.steps = cfg.steps;
        if &comparable != cfg {
            bail!(
                "cannot resume {}: its behaviour.toml differs (only steps may change)",
                out.display()
            );
        }
        let ck = Checkpoint::load(&ck_path, &Device::Cpu)?;
        sac.restore(&ck)?;
        buffer = ReplayBuffer::new(buffer_from(&ck, d, a)?);
        states = state_log_from(&ck, buffer.len(), env.nq(), env.nv())?;
        // The episode in progress at the checkpoint ends here, cut.
        let last = buffer.len().checked_sub(1);
        if let Some(i) = last.filter(|&i| buffer.transitions().dones[i] == 0.0) {
            states.timeouts[i] = true;
        }
        env_rng = ck.json("env_rng")?;
        sampler = ck.json("sampler_rng")?;
        step = ck.step()?;
        // Snapshots written after the checkpoint belong to the lost part of the run.
        let kept: Vec<Snapshot> =
            read_snapshots(out)?.into_iter().filter(|s| s.step <= step).collect();
        let lines: String = kept
            .iter()
            .map(|s| serde_json::to_string(s).map(|l| l + "\n"))
            .collect::<Result<_, _>>()?;
        fs::write(out.join("snapshots.jsonl"), lines)?;
        best = kept.iter().map(|s| s.return_mean).reduce(f64::max);
    } else {
        fs::create_dir_all(out.join("snapshots"))
            .with_context(|| format!("cannot create {}", out.display()))?;
        fs::write(&cfg_path, toml::to_string(cfg)?)?;
        fs::write(out.join("snapshots.jsonl"), "")?;
    }
    let mut log = OpenOptions::new().append(true).open(out.join("snapshots.jsonl"))?;
    let bounds = env.action_bounds();
    let mut obs: Vec<f32> = env.reset(&mut env_rng).iter().map(|&x| x as f32).collect();
    let mut losses = SacLosses::default();
    let (started, first) = (Instant::now(), step);

    while step < cfg.steps {
        if stop.load(Ordering::Relaxed) {
            save(&sac, &buffer, &states, &env_rng, &sampler, step, &ck_path)?;
            return Ok(summary(cfg, step, first, started, best, losses, true));
        }
        let action: Vec<f32> = if step < cfg.sac.random_steps {
            bounds.iter().map(|&(lo, hi)| env_rng.random_range(lo as f32..=hi as f32)).collect()
        } else {
            let s = Tensor::from_slice(&obs, (1, d), &Device::Cpu)?;
            sac.actor.sample(&s, &mut sac.rng)?.0.flatten_all()?.to_vec1()?
        };
        states.qpos.extend_from_slice(env.qpos());
        states.qvel.extend_from_slice(env.qvel());
        let out_step = env.step(&action)?;
        let next: Vec<f32> = out_step.obs.iter().map(|&x| x as f32).collect();
        buffer.push(&obs, &action, out_step.reward as f32, &next, out_step.terminated);
        states.timeouts.push(out_step.truncated && !out_step.terminated);
        obs = if out_step.terminated || out_step.truncated {
            env.reset(&mut env_rng).iter().map(|&x| x as f32).collect()
        } else {
            next
        };
        step += 1;

        if step >= cfg.sac.random_steps.min(cfg.steps) && buffer.len() >= cfg.sac.batch_size {
            losses = sac.update(&buffer.sample(cfg.sac.batch_size, &mut sampler)?)?;
            if !(losses.critic.is_finite() && losses.actor.is_finite()) {
                bail!(
                    "SAC diverged at step {step}: critic {}, actor {}",
                    losses.critic,
                    losses.actor
                );
            }
        }
        observer.on_step(step, cfg.steps);

        if step.is_multiple_of(cfg.eval_every) || step == cfg.steps {
            let snap = snapshot(&sac, &env_config, d, a, step, cfg, out)?;
            best = Some(best.map_or(snap.return_mean, |b: f64| b.max(snap.return_mean)));
            writeln!(log, "{}", serde_json::to_string(&snap)?)?;
            observer.on_snapshot(&snap, &losses);
        }
        if step.is_multiple_of(cfg.checkpoint_every) || step == cfg.steps {
            log.flush()?;
            save(&sac, &buffer, &states, &env_rng, &sampler, step, &ck_path)?;
        }
    }
    Ok(summary(cfg, step, first, started, best, losses, false))
}

fn summary(
    cfg: &BehaviourConfig,
    step: u64,
    first: u64,
    started: Instant,
    best: Option<f64>,
    last_losses: SacLosses,
    interrupted: bool,
) -> BehaviourSummary {
    BehaviourSummary {
        env: cfg.env.clone(),
        steps: step,
        env_steps_per_second: (step - first) as f64 / started.elapsed().as_secs_f64().max(1e-9),
        best_return: best,
        last_losses,
        interrupted,
    }
}

/// Evaluate the deterministic policy and save its weights with the result.
fn snapshot(
    sac: &Sac,
    env: &EnvConfig,
    d: usize,
    a: usize,
    step: u64,
    cfg: &BehaviourConfig,
    out: &Path,
) -> Result<Snapshot> {
    let mut policy = SacPolicy { actor: &sac.actor, obs_dim: d, act_dim: a };
    let runner = RunnerConfig {
        episodes: cfg.eval_episodes,
        num_envs: cfg.eval_episodes,
        threads: 1,
        seed: step,
    };
    let report = evaluate(env.clone(), &mut policy, &runner, None)?;
    let file = format!("snapshots/step_{step}.safetensors");
    let mut ck = Checkpoint::new();
    ck.add_vars("actor", &sac.actor)?;
    ck.set_json("sac_config", &sac.cfg)?;
    ck.set_json("env", &env.id.to_string())?;
    ck.set_json("return_mean", &report.returns.mean)?;
    if cfg.goal_reaching {
        // The goal offset's frame: snapshots of the earlier world-frame task are refused.
        ck.set_json("goal_frame", &GOAL_FRAME)?;
    }
    ck.set_step(step);
    ck.save(&out.join(&file))?;
    Ok(Snapshot { step, return_mean: report.returns.mean, return_std: report.returns.std, file })
}

fn save(
    sac: &Sac,
    buffer: &ReplayBuffer,
    states: &StateLog,
    env_rng: &ChaCha8Rng,
    sampler: &ChaCha8Rng,
    step: u64,
    path: &Path,
) -> Result<()> {
    let mut ck = sac.checkpoint()?;
    let t = buffer.transitions();
    let n = t.len();
    let dev = Device::Cpu;
    ck.insert("buffer.obs".into(), Tensor::from_slice(&t.observations, (n, t.obs_dim), &dev)?)?;
    ck.insert("buffer.act".into(), Tensor::from_slice(&t.actions, (n, t.act_dim), &dev)?)?;
    ck.insert("buffer.rew".into(), Tensor::from_slice(&t.rewards, n, &dev)?)?;
    ck.insert(
        "buffer.next".into(),
        Tensor::from_slice(&t.next_observations, (n, t.obs_dim), &dev)?,
    )?;
    ck.insert("buffer.done".into(), Tensor::from_slice(&t.dones, n, &dev)?)?;
    let nq = states.qpos.len() / n.max(1);
    let nv = states.qvel.len() / n.max(1);
    ck.insert("states.qpos".into(), Tensor::from_slice(&states.qpos, (n, nq), &dev)?)?;
    ck.insert("states.qvel".into(), Tensor::from_slice(&states.qvel, (n, nv), &dev)?)?;
    let cut: Vec<u8> = states.timeouts.iter().map(|&b| b as u8).collect();
    ck.insert("states.timeout".into(), Tensor::from_slice(&cut, n, &dev)?)?;
    ck.set_json("env_rng", env_rng)?;
    ck.set_json("sampler_rng", sampler)?;
    ck.set_step(step);
    ck.save(path)
}

/// The replay buffer saved with a checkpoint, rows in the order the run made them.
pub fn buffer_from(ck: &Checkpoint, d: usize, a: usize) -> Result<Transitions> {
    let get = |k: &str| -> Result<Vec<f32>> {
        let t = ck.tensor(k).with_context(|| format!("checkpoint has no {k}"))?;
        Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    };
    let mut t = Transitions::empty(d, a);
    t.observations = get("buffer.obs")?;
    t.actions = get("buffer.act")?;
    t.rewards = get("buffer.rew")?;
    t.next_observations = get("buffer.next")?;
    t.dones = get("buffer.done")?;
    if t.observations.len() != t.rewards.len() * d || t.actions.len() != t.rewards.len() * a {
        bail!("the checkpoint's replay buffer has inconsistent sizes");
    }
    Ok(t)
}

/// The state log saved with a checkpoint of `rows` rows.
pub fn state_log_from(ck: &Checkpoint, rows: usize, nq: usize, nv: usize) -> Result<StateLog> {
    let get = |k: &str| -> Result<Tensor> {
        ck.tensor(k).cloned().with_context(|| {
            format!("checkpoint has no {k}: it was made before behaviour runs recorded states")
        })
    };
    // Float64 (checkpoints made before states were kept exactly hold f32: widened).
    let qpos: Vec<f64> = get("states.qpos")?.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let qvel: Vec<f64> = get("states.qvel")?.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let cut: Vec<u8> = get("states.timeout")?.to_dtype(DType::U8)?.to_vec1()?;
    if qpos.len() != rows * nq || qvel.len() != rows * nv || cut.len() != rows {
        bail!("the checkpoint's state log does not match its {rows}-row replay buffer");
    }
    Ok(StateLog { qpos, qvel, timeouts: cut.into_iter().map(|c| c != 0).collect() })
}

/// All snapshots of a run, in order.
pub fn read_snapshots(dir: &Path) -> Result<Vec<Snapshot>> {
    let text = fs::read_to_string(dir.join("snapshots.jsonl")).with_context(|| {
        format!("{} is not a behaviour run (no snapshots.jsonl)", dir.display())
    })?;
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| Ok(serde_json::from_str(l)?)).collect()
}

/// What `export_policies` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub env: String,
    pub medium: Snapshot,
    pub expert: Snapshot,
    pub trained_steps: u64,
    pub out: std::path::PathBuf,
}

/// Copy a run's medium and expert snapshots (D4RL's rule, [`pick_snapshots`]) into
/// `out`, as a small behaviour-run directory that `ofql dataset generate --policy` accepts,
/// with `provenance.json` naming the run's configuration and the command that made it.
pub fn export_policies(run: &Path, out: &Path) -> Result<Exported> {
    let snaps = read_snapshots(run)?;
    let (medium, expert) = pick_snapshots(&snaps)?;
    let cfg: BehaviourConfig = toml::from_str(
        &fs::read_to_string(run.join("behaviour.toml"))
            .with_context(|| format!("{} has no behaviour.toml", run.display()))?,
    )?;
    // An export replaces an earlier export's four files, never anything else.
    if let Ok(entries) = fs::read_dir(out) {
        let known =
            ["medium.safetensors", "expert.safetensors", "snapshots.jsonl", "provenance.json"];
        let foreign: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !known.contains(&n.as_str()))
            .collect();
        if !foreign.is_empty() {
            bail!(
                "{} holds other files ({}): an export only replaces an earlier export; choose \
                 another --out",
                out.display(),
                foreign.join(", ")
            );
        }
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut lines = String::new();
    let mut copied = vec![];
    for (name, s) in [("medium", &medium), ("expert", &expert)] {
        let file = format!("{name}.safetensors");
        fs::copy(run.join(&s.file), out.join(&file))
            .with_context(|| format!("cannot copy {}", run.join(&s.file).display()))?;
        let s = Snapshot { file, ..s.clone() };
        lines += &(serde_json::to_string(&s)? + "\n");
        copied.push(s);
    }
    fs::write(out.join("snapshots.jsonl"), lines)?;
    let trained_steps = snaps.last().map_or(0, |s| s.step);
    let command = format!(
        "ofql behaviour train --env {} --steps {} --seed {} --eval-every {} --out RUN",
        cfg.env, trained_steps, cfg.sac.seed, cfg.eval_every
    );
    let provenance = serde_json::json!({
        "env": cfg.env,
        "command": command,
        "export_command": "ofql behaviour export --run RUN --out DIR",
        "trained_steps": trained_steps,
        "config": cfg,
        "snapshots": snaps,
    });
    fs::write(out.join("provenance.json"), serde_json::to_string_pretty(&provenance)? + "\n")?;
    let mut copied = copied.into_iter();
    Ok(Exported {
        env: cfg.env,
        medium: copied.next().expect("two copied"),
        expert: copied.next().expect("two copied"),
        trained_steps,
        out: out.to_path_buf(),
    })
}

/// D4RL's rule: medium is the first snapshot reaching a third of the expert's return.
pub fn pick_snapshots(snaps: &[Snapshot]) -> Result<(Snapshot, Snapshot)> {
    let expert = snaps
        .iter()
        .max_by(|a, b| a.return_mean.total_cmp(&b.return_mean))
        .context("the behaviour run has no snapshots yet")?
        .clone();
    let medium = snaps
        .iter()
        .find(|s| s.return_mean >= expert.return_mean / 3.0)
        .expect("the expert itself qualifies")
        .clone();
    Ok((medium, expert))
}
