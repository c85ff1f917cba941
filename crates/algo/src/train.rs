//! The training loop around [`Agent::update`]: metrics, periodic evaluation, checkpoints,
//! exact resume, the divergence guard and a cooperative stop (Ctrl-C).
//!
//! A run directory holds `config.toml`, `metrics.jsonl` (one JSON object per logged step or
//! evaluation) and `checkpoint/{last,best}.safetensors`. `last` is written every
//! `train.checkpoint_every` steps, on stop and at the end, atomically; a run killed at any
//! moment resumes from it and, on one thread, reproduces the uninterrupted run's losses.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use ofql_data::replay::ReplayBuffer;
use ofql_nets::Checkpoint;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::agent::{Agent, Metrics};
use crate::config::Config;
use crate::prepare::{ObsNorm, RewardTransform};
use crate::run_lock::RunLock;

/// What an evaluation of the current agent reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub score_mean: f64,
    pub score_std: f64,
    pub return_mean: f64,
    pub returns: Vec<f64>,
    pub lengths: Vec<usize>,
    /// A maze's closest approach (m) to the goal in each episode; empty elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closest_goal_distances: Vec<f64>,
    /// Their mean, None when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closest_goal_distance_mean: Option<f64>,
    /// One plain sample per state (temperature 1, no critic), when the evaluator measured it
    /// beside the configured protocol (`eval.also_plain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<PlainScore>,
}

/// The plain protocol's score, measured beside the configured one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlainScore {
    pub score_mean: f64,
    pub score_std: f64,
    /// A maze's mean closest approach (m) to the goal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closest_goal_distance_mean: Option<f64>,
}

/// Evaluates an agent (in the simulator, for example). Optional: a dataset without a
/// simulator trains without evaluation.
pub trait Evaluator {
    fn evaluate(&mut self, agent: &dyn Agent) -> Result<EvalReport>;
}

/// Progress callbacks, so that the caller (the CLI) draws bars and logs; this crate prints
/// nothing.
pub trait Observer {
    fn on_step(&mut self, _step: u64, _total: u64, _metrics: &Metrics) {}
    fn on_eval(&mut self, _step: u64, _report: &EvalReport) {}
    fn message(&mut self, _text: &str) {}
}

/// An observer that ignores everything (tests, scripts).
pub struct Silent;
impl Observer for Silent {}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub step: u64,
    /// What the update measured, by name (the method's own).
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_std: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_score_mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_score_std: Option<f64>,
    /// A maze's mean closest approach (m) to the goal, under the protocol and plainly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closest_goal_distance_mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_closest_goal_distance_mean: Option<f64>,
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub steps: u64,
    pub final_losses: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_std: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_score: Option<f64>,
    /// The last evaluation's plain score, when it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_score_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_score_std: Option<f64>,
    pub steps_per_second: f64,
    /// True when the run stopped early on request; `last.safetensors` holds its state.
    pub interrupted: bool,
}

/// Paths inside a run directory.
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> RunDir {
        RunDir { root: root.to_path_buf() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn last(&self) -> PathBuf {
        self.root.join("checkpoint/last.safetensors")
    }
    pub fn best(&self) -> PathBuf {
        self.root.join("checkpoint/best.safetensors")
    }
    /// The data handling the run trained with (reward transform, observation normalisation).
    pub fn data(&self) -> PathBuf {
        self.root.join("data.json")
    }
}

/// The data an agent trains on, prepared for it (see `prepare`). The agent carries the
/// normalisation of the buffer's observations.
pub struct Job<'a> {
    pub buffer: &'a ReplayBuffer,
    /// What was done to the buffer's rewards.
    pub rewards: RewardTransform,
}

/// The record of a run's data handling, in `data.json` and in every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    pub rewards: RewardTransform,
    pub obs_norm: Option<ObsNorm>,
}

impl DataRecord {
    /// The same data handling, up to the last bits a trip through JSON may change
    /// (serde_json's default float parsing is not always correctly rounded).
    pub fn same_as(&self, other: &DataRecord) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0);
        let all_close = |a: &[f32], b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| close(x.into(), y.into()))
        };
        let (r, q) = (&self.rewards, &other.rewards);
        let rewards = r.norm == q.norm
            && [(r.return_min, q.return_min), (r.return_max, q.return_max)]
                .iter()
                .chain(&[(r.factor, q.factor), (r.shift, q.shift), (r.scale, q.scale)])
                .all(|&(a, b)| close(a, b));
        let obs = match (&self.obs_norm, &other.obs_norm) {
            (None, None) => true,
            (Some(a), Some(b)) => all_close(&a.mean, &b.mean) && all_close(&a.std, &b.std),
            _ => false,
        };
        rewards && obs
    }

    /// Where the observation statistics of two records part, when both normalise: the
    /// largest difference of a mean or a std and its column (the reward transform prints the
    /// same in both when only these differ).
    fn obs_difference(&self, other: &DataRecord) -> Option<String> {
        let (a, b) = (self.obs_norm.as_ref()?, other.obs_norm.as_ref()?);
        if a.mean.len() != b.mean.len() {
            return Some(format!(
                "the observations have {} columns, not {}",
                b.mean.len(),
                a.mean.len()
            ));
        }
        let mean = a.mean.iter().zip(&b.mean).enumerate().map(|(j, (&p, &q))| ("mean", j, p, q));
        let std = a.std.iter().zip(&b.std).enumerate().map(|(j, (&p, &q))| ("std", j, p, q));
        let (name, j, was, now) =
            mean.chain(std).max_by(|l, r| (l.2 - l.3).abs().total_cmp(&(r.2 - r.3).abs()))?;
        (was != now)
            .then(|| format!("observation {name} of column {j} was {was:e} and is now {now:e}"))
    }

    /// `rewards x F (+ S) x K (data.reward_norm = "..."), observations normalised|raw`.
    fn describe(&self) -> String {
        let r = &self.rewards;
        format!(
            "rewards x {} (+ {}) x {} (data.reward_norm = {:?}), observations {}",
            r.factor,
            r.shift,
            r.scale,
            r.norm,
            if self.obs_norm.is_some() { "normalised" } else { "raw" }
        )
    }
}

/// Train a fresh `agent` (see [`crate::agent::build`]) on `job` with the agent's config,
/// writing into `out`. With `resume`, continue the run in `out` from its last checkpoint
/// (the config must be the one saved there, except `train.steps`).
pub fn train(
    agent: &mut dyn Agent,
    job: Job,
    out: &Path,
    resume: bool,
    mut evaluator: Option<&mut dyn Evaluator>,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let Job { buffer, rewards } = job;
    let cfg = &agent.config().clone();
    let record = DataRecord { rewards, obs_norm: agent.obs_norm().cloned() };
    let dir = RunDir::new(out);
    let t = buffer.transitions();
    if (t.obs_dim, t.act_dim) != (agent.obs_dim(), agent.act_dim()) {
        bail!(
            "the agent is built for obs_dim {} / act_dim {}, the data has {} / {}",
            agent.obs_dim(),
            agent.act_dim(),
            t.obs_dim,
            t.act_dim
        );
    }
    // Batches are drawn from their own generator so that they do not depend on how many
    // random numbers an update consumes.
    let mut sampler = ChaCha8Rng::seed_from_u64(cfg.train.seed ^ 0x5EED_BA7C);
    let mut best_score: Option<f64> = None;
    // The losses reported at the end: those of the last step taken, also when a resumed run
    // has no step left to take.
    let mut losses = Metrics::default();

    // One process per run folder: the lock is released by the kernel when this one ends,
    // however it ends.
    let _lock = RunLock::acquire(out, resume, &dir.config())?;
    if resume {
        let last = dir.last();
        if !last.is_file() {
            bail!(
                "cannot resume {}: it has no checkpoint/last.safetensors (the run was stopped \
                 before its first checkpoint, at step {}, or the file was removed). Nothing was \
                 changed. Start it again in a new folder: `ofql train --config {} --out NEW_DIR`",
                out.display(),
                cfg.train.checkpoint_every,
                dir.config().display()
            );
        }
        let ck = Checkpoint::load(&last, &Device::Cpu)
            .with_context(|| format!("resuming: cannot load {}", last.display()))?;
        // The config the run trained with is the checkpoint's own; only train.steps may
        // change (to extend or shorten the run).
        let mut saved: Config = ck.json("config").context("resuming: the checkpoint's config")?;
        saved.train.steps = cfg.train.steps;
        if &saved != cfg {
            bail!(
                "cannot resume {}: the config differs from the one its checkpoint trained with \
                 (only train.steps may change on resume): {}. Nothing was changed; start a new \
                 run with another --out",
                out.display(),
                config_differences(&saved, cfg).join(", ")
            );
        }
        check_same_data(&ck, &record, out)?;
        agent.restore(&ck)?;
        sampler = ck.json("sampler_rng").context("resuming: sampler RNG state")?;
        best_score = ck.json::<Option<f64>>("best_score").unwrap_or(None);
        if let Some(last) = truncate_metrics(&dir.metrics(), agent.step())? {
            losses = last;
        }
        observer.message(&format!("resumed {} at step {}", out.display(), agent.step()));
    } else {
        fs::create_dir_all(out.join("checkpoint"))
            .with_context(|| format!("cannot create run directory {}", out.display()))?;
        fs::write(dir.config(), cfg.to_toml())?;
        fs::write(dir.data(), serde_json::to_string_pretty(&record)?)?;
        File::create(dir.metrics())?;
    }
    // Checkpoint writes that a kill interrupted leave their temporary files behind.
    ofql_nets::checkpoint::remove_partial_files(&out.join("checkpoint"))?;

    let mut metrics = OpenOptions::new().append(true).open(dir.metrics())?;
    let total = cfg.train.steps;
    let started = Instant::now();
    let first_step = agent.step();
    let mut last_eval: Option<EvalReport> = None;
    let save =
        |agent: &dyn Agent, sampler: &ChaCha8Rng, best: Option<f64>, path: &Path| -> Result<()> {
            let mut ck = agent.checkpoint()?;
            ck.set_json("sampler_rng", sampler)?;
            ck.set_json("best_score", &best)?;
            ck.set_json("data", &record)?;
            ck.save(path).with_context(|| format!("cannot write checkpoint {}", path.display()))
        };

    while agent.step() < total {
        if stop.load(Ordering::Relaxed) {
            save(agent, &sampler, best_score, &dir.last())?;
            observer.message(&format!("stopped at step {}; resume with --resume", agent.step()));
            return Ok(summary(agent, losses, &last_eval, best_score, started, first_step, true));
        }
        let batch = buffer.sample(cfg.train.batch_size, &mut sampler)?;
        losses = agent.update(&batch)?;
        let step = agent.step();
        if !losses.all_finite() {
            bail!(
                "training diverged at step {step}: {losses}. {} (lower the learning rates, eta \
                 or grad_norm, then resume or restart)",
                if dir.last().is_file() {
                    format!("The last good checkpoint is {}", dir.last().display())
                } else {
                    "No checkpoint was written before it".to_string()
                }
            );
        }
        observer.on_step(step, total, &losses);

        let eval_now = cfg.train.eval_every > 0
            && (step.is_multiple_of(cfg.train.eval_every) || step == total);
        let mut row = MetricsRow {
            step,
            metrics: losses.clone(),
            score_mean: None,
            score_std: None,
            plain_score_mean: None,
            plain_score_std: None,
            closest_goal_distance_mean: None,
            plain_closest_goal_distance_mean: None,
            wall_seconds: started.elapsed().as_secs_f64(),
        };
        if let (true, Some(ev)) = (eval_now, evaluator.as_deref_mut()) {
            let report = ev.evaluate(agent)?;
            observer.on_eval(step, &report);
            row.score_mean = Some(report.score_mean);
            row.score_std = Some(report.score_std);
            row.plain_score_mean = report.plain.map(|p| p.score_mean);
            row.plain_score_std = report.plain.map(|p| p.score_std);
            row.closest_goal_distance_mean = report.closest_goal_distance_mean;
            row.plain_closest_goal_distance_mean =
                report.plain.and_then(|p| p.closest_goal_distance_mean);
            if best_score.is_none_or(|b| report.score_mean > b) {
                best_score = Some(report.score_mean);
                save(agent, &sampler, best_score, &dir.best())?;
            }
            last_eval = Some(report);
        }
        if step.is_multiple_of(cfg.train.log_every) || row.score_mean.is_some() || step == total {
            writeln!(metrics, "{}", serde_json::to_string(&row)?)?;
        }
        if step.is_multiple_of(cfg.train.checkpoint_every) || step == total {
            metrics.flush()?;
            save(agent, &sampler, best_score, &dir.last())?;
        }
    }
    Ok(summary(agent, losses, &last_eval, best_score, started, first_step, false))
}

fn summary(
    agent: &dyn Agent,
    losses: Metrics,
    last_eval: &Option<EvalReport>,
    best_score: Option<f64>,
    started: Instant,
    first_step: u64,
    interrupted: bool,
) -> Summary {
    let done = agent.step() - first_step;
    Summary {
        steps: agent.step(),
        final_losses: losses,
        score_mean: last_eval.as_ref().map(|r| r.score_mean),
        score_std: last_eval.as_ref().map(|r| r.score_std),
        best_score,
        plain_score_mean: last_eval.as_ref().and_then(|r| r.plain).map(|p| p.score_mean),
        plain_score_std: last_eval.as_ref().and_then(|r| r.plain).map(|p| p.score_std),
        steps_per_second: done as f64 / started.elapsed().as_secs_f64().max(1e-9),
        interrupted,
    }
}

/// A resumed run must see the data its checkpoint trained on: the same reward transform
/// (recomputed from the file now) and the same observation statistics. A checkpoint from
/// before the record (raw rewards, normalisation in `obs_norm`) counts as raw rewards.
fn check_same_data(ck: &Checkpoint, now: &DataRecord, out: &Path) -> Result<()> {
    let saved: Option<DataRecord> = ck.json("data").ok();
    let differs = match &saved {
        Some(saved) => !saved.same_as(now),
        None => !now.rewards.is_identity(),
    };
    if differs {
        let was = saved.as_ref().map_or_else(
            || "raw rewards (a run from before data.reward_norm existed)".into(),
            DataRecord::describe,
        );
        let detail = saved
            .as_ref()
            .and_then(|saved| saved.obs_difference(now))
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        bail!(
            "cannot resume {}: its checkpoint trained on {was}, but the dataset and config now \
             give {}{detail}. Resume with the same dataset file, and for an older run set \
             data.reward_norm = \"none\" in its config.toml",
            out.display(),
            now.describe()
        );
    }
    Ok(())
}

/// Drop metrics rows past `step` (written after the checkpoint a resumed run restarts from),
/// so the file reads as one uninterrupted run. The new file replaces the old one whole.
/// Returns the losses of the last row kept.
fn truncate_metrics(path: &Path, step: u64) -> Result<Option<Metrics>> {
    let rows = read_metrics(path)?;
    let tmp = path.with_extension("jsonl.tmp");
    let mut f = File::create(&tmp)?;
    let mut last = None;
    for row in rows.into_iter().filter(|r| r.step <= step) {
        writeln!(f, "{}", serde_json::to_string(&row)?)?;
        last = Some(row.metrics.clone());
    }
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(last)
}

/// The top-level config keys whose values differ, as `section.key: old -> new`.
fn config_differences(old: &Config, new: &Config) -> Vec<String> {
    let table = |c: &Config| toml::Table::try_from(c).unwrap_or_default();
    let (old, new) = (table(old), table(new));
    let mut out = vec![];
    for (section, values) in &new {
        for (key, value) in values.as_table().into_iter().flatten() {
            let before = old.get(section).and_then(|s| s.get(key));
            if before != Some(value) {
                let before = before.map_or("(none)".to_string(), |v| v.to_string());
                out.push(format!("{section}.{key}: {before} -> {value}"));
            }
        }
    }
    out
}

/// All rows of a `metrics.jsonl`; a torn last line (a kill mid-write) is ignored.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let lines: Vec<String> = BufReader::new(f).lines().collect::<std::io::Result<_>>()?;
    let n = lines.len();
    let mut rows = Vec::with_capacity(n);
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(row) => rows.push(row),
            Err(_) if i + 1 == n => {}
            Err(e) => bail!("{} line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DataConfig;

    /// A refused resume names the observation statistic that moved, since the reward
    /// transform it prints is the same on both sides.
    #[test]
    fn a_refused_resume_names_the_observation_statistic_that_differs() {
        let rewards = RewardTransform::new(&DataConfig::default(), &[10.0, 30.0]).unwrap();
        let record = |mean: Vec<f32>| DataRecord {
            rewards: rewards.clone(),
            obs_norm: Some(ObsNorm { std: vec![1.0; mean.len()], mean }),
        };
        let (saved, now) = (record(vec![0.5, 2.0]), record(vec![0.5, 2.5]));
        assert!(!saved.same_as(&now));
        let dir = tempfile::tempdir().unwrap();
        let mut ck = Checkpoint::new();
        ck.set_json("data", &saved).unwrap();
        let err = check_same_data(&ck, &now, dir.path()).unwrap_err().to_string();
        assert!(err.contains("observation mean of column 1 was 2e0 and is now 2.5e0"), "{err}");
        check_same_data(&ck, &saved, dir.path()).unwrap();
        let err = check_same_data(&ck, &record(vec![0.5]), dir.path()).unwrap_err().to_string();
        assert!(err.contains("1 columns, not 2"), "{err}");
    }
}
