//! `ofql train`: train a method (OFQL by default, `[algo] name`) on an offline dataset,
//! evaluating in MuJoCo as it goes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::curves::write_curves;
use anyhow::{Context, Result, bail};
use candle_core::Device;
use clap::Args;
use ofql_algo::eval::{EnvEvaluator, eval_env};
use ofql_algo::prepare::{RewardTransform, prepare};
use ofql_algo::train::{
    EvalReport, Evaluator, Job, Observer, RunDir, Summary, read_metrics, train,
};
use ofql_algo::{Config, Metrics, agent};
use serde::Serialize;

use crate::output::{Output, Reported};
use crate::progress::Progress;

#[derive(Args)]
pub struct TrainArgs {
    /// Run configuration (TOML), e.g. configs/hopper-medium-v2.toml or configs/quick.toml.
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Dataset file, or a registry name already in the download cache (data.dataset).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Evaluation environment when the dataset does not imply one, e.g. hopper-v4 (data.env).
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of gradient steps (train.steps).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Run directory [default: runs/<dataset>-seed<seed>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, conflicts_with_all = ["config", "dataset", "env", "seed", "out"])]
    pub resume: Option<PathBuf>,
    /// Override any config value, e.g. --set actor.eta=0.3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Download cache holding registry datasets [default: $OFQL_DATA_DIR or data/cache].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Train without evaluating (no simulator needed).
    #[arg(long)]
    pub no_eval: bool,
}

#[derive(Serialize)]
struct TrainReport {
    out: PathBuf,
    dataset: String,
    eval_env: Option<String>,
    /// What was done to the rewards (also in the run's data.json and its checkpoints).
    rewards: RewardTransform,
    #[serde(flatten)]
    summary: Summary,
}

pub fn run(args: TrainArgs, out: &Output) -> Result<()> {
    let (cfg, dir, resume) = resolve_config(&args)?;
    let data = prepare(&cfg.data, args.cache_dir.as_deref())?;
    let t = data.buffer.transitions();
    eprintln!(
        "dataset {} ({} transitions, obs {} / act {}); rewards x {:.4} ({}), observations {}",
        data.path.display(),
        t.len(),
        t.obs_dim,
        t.act_dim,
        data.rewards.factor,
        data.rewards.norm,
        if data.obs_norm.is_some() { "normalised" } else { "raw" }
    );
    if let Some(rewarded) = data.relabelled_rewards {
        eprintln!(
            "goals relabelled to the evaluation maze's goal (data.goal = \"evaluation\"): \
             {rewarded} rows rewarded"
        );
    }

    let env = if args.no_eval || cfg.train.eval_every == 0 {
        None
    } else {
        eval_env(&cfg.data, data.info.as_ref())?
    };
    let mut evaluator = match env {
        Some(ref env) => {
            let id = env.id;
            let e = env.make_one()?;
            if (e.obs_dim(), e.act_dim()) != (t.obs_dim, t.act_dim) {
                bail!(
                    "{id} has obs_dim {} / act_dim {} but the dataset has {} / {}: name the \
                     right environment with --env, or pass --no-eval",
                    e.obs_dim(),
                    e.act_dim(),
                    t.obs_dim,
                    t.act_dim
                );
            }
            // The thread budget the caller gave candle (RAYON_NUM_THREADS), else all cores.
            let threads = candle_core::utils::get_num_threads();
            let seed = cfg.train.seed.wrapping_add(1_000_000);
            Some(EnvEvaluator::new(env.clone(), Some(&data.path), &cfg.eval, seed, threads)?)
        }
        None => {
            if !args.no_eval && cfg.train.eval_every > 0 {
                eprintln!("no simulator for this dataset: training without evaluation");
            }
            None
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            // A second Ctrl-C while the checkpoint is written: give up at once.
            std::process::exit(130);
        }
        eprintln!("\nstopping: writing a checkpoint (Ctrl-C again to abort)");
    })
    .context("cannot install the Ctrl-C handler")?;

    let mut bar = Bar::new(cfg.train.steps);
    let mut agent = agent::build(&cfg, t.obs_dim, t.act_dim, data.obs_norm.clone(), &Device::Cpu)?;
    let job = Job { buffer: &data.buffer, rewards: data.rewards.clone() };
    let summary = train(
        agent.as_mut(),
        job,
        &dir,
        resume,
        evaluator.as_mut().map(|e| e as &mut dyn Evaluator),
        &stop,
        &mut bar,
    )?;
    bar.progress.bar.finish_and_clear();

    let title = cfg.data.dataset.rsplit('/').next().unwrap_or(&cfg.data.dataset).to_string();
    let rows = read_metrics(&RunDir::new(&dir).metrics())?;
    match write_curves(&rows, &dir, &title) {
        Ok(files) => eprintln!(
            "curves: {}",
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
        Err(e) => eprintln!("warning: no learning curves: {e:#}"),
    }
    let report = TrainReport {
        out: dir.clone(),
        dataset: cfg.data.dataset.clone(),
        eval_env: env.map(|id| id.to_string()),
        rewards: data.rewards.clone(),
        summary,
    };
    out.report(&report, || text(&report, resume));
    if report.summary.interrupted {
        return Err(Reported(format!(
            "interrupted at step {}; continue with `ofql train --resume {}`",
            report.summary.steps,
            dir.display()
        ))
        .into());
    }
    Ok(())
}

/// The config (with overrides), the run directory, and whether this continues a run.
fn resolve_config(args: &TrainArgs) -> Result<(Config, PathBuf, bool)> {
    // Flags become overrides applied after the file and before --set; strings are quoted so
    // that paths with dots or colons stay strings.
    let mut overrides = Vec::new();
    if let Some(d) = &args.dataset {
        overrides.push(format!("data.dataset={}", toml_quote(d)));
    }
    if let Some(e) = &args.env {
        overrides.push(format!("data.env={}", toml_quote(e)));
    }
    if let Some(seed) = args.seed {
        overrides.push(format!("train.seed={seed}"));
    }
    if let Some(steps) = args.steps {
        overrides.push(format!("train.steps={steps}"));
    }
    overrides.extend(args.set.iter().cloned());

    if let Some(dir) = &args.resume {
        let path = RunDir::new(dir).config();
        if !path.is_file() {
            bail!("{} is not a run directory (no config.toml)", dir.display());
        }
        let cfg = Config::load(&path, &overrides)?;
        return Ok((cfg, dir.clone(), true));
    }
    let file = args.config.as_ref().expect("clap requires --config without --resume");
    let cfg = Config::load(file, &overrides)?;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => default_run_dir(&cfg),
    };
    Ok((cfg, dir, false))
}

fn toml_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn default_run_dir(cfg: &Config) -> PathBuf {
    let stem = Path::new(&cfg.data.dataset)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("run")
        .to_string();
    PathBuf::from("runs").join(format!("{stem}-seed{}", cfg.train.seed))
}

/// `ofql train`'s progress: the bar (or plain lines in a log) with the latest losses and
/// score, and every evaluation and message.
struct Bar {
    progress: Progress,
    last_score: Option<f64>,
}

impl Bar {
    fn new(total: u64) -> Bar {
        Bar { progress: Progress::new(total), last_score: None }
    }
}

impl Observer for Bar {
    fn on_step(&mut self, step: u64, total: u64, m: &Metrics) {
        if step.is_multiple_of(50) {
            self.progress.bar.set_message(m.headline(3));
        }
        let score = self.last_score;
        self.progress.step(step, total, || {
            let score = score.map(|s| format!(", last score {s:.1}")).unwrap_or_default();
            format!("{}{score}", m.headline(3))
        });
    }
    fn on_eval(&mut self, step: u64, r: &EvalReport) {
        self.last_score = Some(r.score_mean);
        let plain = r
            .plain
            .map(|p| format!("; plain {:.1} +- {:.1}", p.score_mean, p.score_std))
            .unwrap_or_default();
        let closest = r
            .closest_goal_distance_mean
            .map(|d| format!("; closest to the goal {d:.2} m on average"))
            .unwrap_or_default();
        self.progress.println(&format!(
            "step {step}: score {:.1} +- {:.1} (return {:.1}){plain}{closest}",
            r.score_mean, r.score_std, r.return_mean
        ));
    }
    fn message(&mut self, text: &str) {
        self.progress.println(text);
    }
}

fn text(r: &TrainReport, resumed: bool) -> String {
    let s = &r.summary;
    let mut t = format!(
        "{} {} steps in {} ({:.1} steps/s)\nlast update: {}",
        if resumed { "resumed run reached" } else { "trained" },
        s.steps,
        r.out.display(),
        s.steps_per_second,
        s.final_losses.headline(5)
    );
    if let (Some(m), Some(sd)) = (s.score_mean, s.score_std) {
        t.push_str(&format!("\nscore (last) {m:.1} +- {sd:.1}"));
    }
    if let Some(b) = s.best_score {
        t.push_str(&format!(", best {b:.1}"));
    }
    if let (Some(m), Some(sd)) = (s.plain_score_mean, s.plain_score_std) {
        t.push_str(&format!("; plain (last) {m:.1} +- {sd:.1}"));
    }
    t
}
