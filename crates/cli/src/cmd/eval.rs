//! `ofql eval`: evaluate a trained agent in MuJoCo with the paper's protocol or plainly.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::Device;
use clap::{Args, ValueEnum};
use ofql_algo::agent::{self, Agent};
use ofql_algo::config::{Config, EvalProtocol};
use ofql_algo::eval::{EnvEvaluator, eval_env};
use ofql_algo::train::RunDir;
use ofql_envs::{EnvConfig, EnvId};
use ofql_nets::Checkpoint;
use serde::Serialize;

use crate::output::Output;

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    Last,
    Best,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory (from `ofql train`) or a checkpoint file (.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Which checkpoint of a run directory.
    #[arg(long, value_enum, default_value = "last")]
    pub which: Which,
    /// Episodes [default: the run's eval.episodes, 150 for the paper's protocol].
    #[arg(long)]
    pub episodes: Option<usize>,
    /// cleandiffuser: the run's eval.candidates (50) at noise eval.temperature (0.5), one
    /// drawn by softmax(eval.q_weight * min Q) (the paper's); plain: one sample at
    /// temperature 1.
    #[arg(long, default_value = "cleandiffuser")]
    pub protocol: EvalProtocol,
    /// Environment [default: the run's data.env or the one its dataset implies].
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Environments stepped in lockstep [default: the run's eval.parallel_envs].
    #[arg(long)]
    pub num_envs: Option<usize>,
    /// Threads stepping the environments [default: the available cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Download cache holding the run's dataset, for the reference scores a Minari dataset
    /// stores [default: $OFQL_DATA_DIR or data/cache].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Override a value of the run's [eval] section for this evaluation, e.g. --set
    /// eval.q_weight=30 (repeatable; eval.* keys only: the rest is the trained agent's).
    #[arg(long = "set", value_name = "eval.KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Serialize)]
struct EvalOutput {
    checkpoint: PathBuf,
    step: u64,
    env: String,
    protocol: EvalProtocol,
    episodes: usize,
    /// The Q-softmax protocol's settings as used (the run's, or --set's).
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    q_weight: Option<f64>,
    score_mean: f64,
    score_std: f64,
    return_mean: f64,
    returns: Vec<f64>,
    lengths: Vec<usize>,
    /// A maze's closest approach (m) of the ant to the goal, per episode and on average.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    closest_goal_distances: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closest_goal_distance_mean: Option<f64>,
}

/// The agent in `checkpoint`: a checkpoint file, or a run directory's last or best one.
pub fn load_agent(checkpoint: &Path, which: Which) -> Result<(PathBuf, Box<dyn Agent>)> {
    let file = if checkpoint.is_dir() {
        let dir = RunDir::new(checkpoint);
        match which {
            Which::Last => dir.last(),
            Which::Best => dir.best(),
        }
    } else {
        checkpoint.to_path_buf()
    };
    if !file.is_file() {
        bail!("checkpoint {} does not exist (train first, or pass --which last)", file.display());
    }
    let ck = Checkpoint::load(&file, &Device::Cpu)
        .with_context(|| format!("cannot load checkpoint {}", file.display()))?;
    let agent = agent::from_checkpoint(&ck, &Device::Cpu)
        .with_context(|| format!("{} is not a checkpoint of a run", file.display()))?;
    Ok((file, agent))
}

pub fn run(args: EvalArgs, out: &Output) -> Result<()> {
    let (file, agent) = load_agent(&args.checkpoint, args.which)?;
    let cfg = agent.config().clone();

    // The environment the run trained for (its data.env, or the one its dataset implies).
    let trained_for = eval_env(&cfg.data, None).ok().flatten();
    let env: EnvConfig = match &args.env {
        // The run's own settings (a maze's evaluation map) when it names the same environment.
        Some(name) => {
            let id: EnvId = name.parse()?;
            match &trained_for {
                Some(trained) if trained.id == id => trained.clone(),
                _ => id.into(),
            }
        }
        None => trained_for.clone().with_context(|| {
            format!(
                "the run's dataset `{}` names no simulated environment: pass --env, e.g. hopper-v4",
                cfg.data.dataset
            )
        })?,
    };
    let id = env.id;
    if let Some(trained) = trained_for.as_ref().filter(|t| t.id.task != id.task) {
        eprintln!(
            "warning: {} was trained for {trained} (dataset {}), but is evaluated in {id}: the \
             scores say nothing about the run unless that is what you meant",
            file.display(),
            cfg.data.dataset
        );
    }
    // The run's [eval] section with this command's overrides and flags.
    let mut eval_cfg = eval_overrides(&cfg, &args.set)?;
    eval_cfg.protocol = args.protocol;
    eval_cfg.episodes = args.episodes.unwrap_or(cfg.eval.episodes);
    eval_cfg.parallel_envs = args.num_envs.unwrap_or(cfg.eval.parallel_envs);
    eval_cfg.also_plain = false;
    let episodes = eval_cfg.episodes;
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // The run's dataset, for Minari's reference scores, when the run is evaluated where it
    // trained and the file is still here.
    let dataset = match &trained_for {
        Some(trained) if trained.id == id => {
            ofql_algo::prepare::resolve(&cfg.data.dataset, args.cache_dir.as_deref())
                .ok()
                .map(|(path, _)| path)
        }
        _ => None,
    };
    let evaluator = EnvEvaluator::new(env, dataset.as_deref(), &eval_cfg, args.seed, threads)?;
    eprintln!("{id}: {episodes} episodes of {} (step {})", file.display(), agent.step());
    let r = evaluator.evaluate_agent(agent.as_ref())?;
    let q_softmax = args.protocol == EvalProtocol::Cleandiffuser;
    let report = EvalOutput {
        checkpoint: file,
        step: agent.step(),
        env: id.to_string(),
        protocol: args.protocol,
        episodes,
        candidates: q_softmax.then_some(eval_cfg.candidates),
        temperature: q_softmax.then_some(eval_cfg.temperature),
        q_weight: q_softmax.then_some(eval_cfg.q_weight),
        score_mean: r.score_mean,
        score_std: r.score_std,
        return_mean: r.return_mean,
        returns: r.returns,
        lengths: r.lengths,
        closest_goal_distance_mean: r.closest_goal_distance_mean,
        closest_goal_distances: r.closest_goal_distances,
    };
    out.report(&report, || {
        let join = |xs: &[f64], digits: usize| {
            xs.iter().map(|x| format!("{x:.digits$}")).collect::<Vec<_>>().join(" ")
        };
        let mut text = format!(
            "{} step {} on {}: score {:.1} +- {:.1} (return {:.1} over {} episodes)\nreturns: {}",
            report.checkpoint.display(),
            report.step,
            report.env,
            report.score_mean,
            report.score_std,
            report.return_mean,
            report.episodes,
            join(&report.returns, 1)
        );
        if let Some(mean) = report.closest_goal_distance_mean {
            text.push_str(&format!(
                "\nclosest to the goal (m), {mean:.2} on average: {}",
                join(&report.closest_goal_distances, 2)
            ));
        }
        text
    });
    Ok(())
}

/// The run's [eval] section with `--set` overrides, checked as a config file's are. Only eval.*
/// keys: the others describe the trained agent, which an evaluation cannot change; the
/// protocol, the episode and environment counts have flags of their own.
fn eval_overrides(cfg: &Config, overrides: &[String]) -> Result<ofql_algo::config::EvalConfig> {
    for item in overrides {
        let key = item.split_once('=').map_or(item.as_str(), |(k, _)| k).trim();
        if !key.starts_with("eval.") {
            bail!(
                "--set {item}: ofql eval overrides eval.* keys only (eval.q_weight, \
                 eval.candidates, eval.temperature); `{key}` belongs to the trained agent"
            );
        }
        let flag = match key {
            "eval.protocol" => Some("--protocol"),
            "eval.episodes" => Some("--episodes"),
            "eval.parallel_envs" => Some("--num-envs"),
            _ => None,
        };
        if let Some(flag) = flag {
            bail!("--set {item}: use {flag} for {key}");
        }
    }
    if overrides.is_empty() {
        return Ok(cfg.eval.clone());
    }
    Ok(Config::from_toml_with(&cfg.to_toml(), overrides)
        .context("in the run's config with --set")?
        .eval)
}
