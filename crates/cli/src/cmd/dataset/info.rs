//! `ofql dataset info`: sizes, dtypes, episodes and return statistics.

use std::path::Path;

use anyhow::Result;
use clap::{Args, ValueEnum};
use ofql_data::registry;
use ofql_data::{Dataset, Format, NextObs, Stats, TransitionOptions, Transitions};
use serde::Serialize;

use super::{CacheArgs, resolve_source};
use crate::output::Output;

#[derive(Clone, Copy, ValueEnum)]
pub enum NextObsArg {
    /// s' = observations[i + 1], time-limit rows skipped (d4rl's qlearning_dataset).
    Shifted,
    /// s' = the file's next_observations, every row kept.
    Recorded,
}

#[derive(Args)]
pub struct InfoArgs {
    /// A dataset file (D4RL .hdf5, Minari folder or main_data.hdf5, .parquet) or a D4RL name.
    pub source: String,
    /// Environment of the data (e.g. hopper), for files whose name does not say it.
    #[arg(long)]
    pub env: Option<String>,
    /// Where s' comes from when building transitions.
    #[arg(long, value_enum, default_value = "shifted")]
    pub next_obs: NextObsArg,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Serialize)]
struct InfoReport {
    path: String,
    format: Format,
    dtype: String,
    file_bytes: u64,
    memory_bytes: usize,
    rows: usize,
    transitions: usize,
    next_obs: NextObs,
    episodes: usize,
    obs_dim: usize,
    act_dim: usize,
    terminals: usize,
    timeouts: usize,
    has_timeouts: bool,
    has_next_observations: bool,
    has_qpos_qvel: bool,
    reward_min: f32,
    reward_max: f32,
    reward_mean: f64,
    return_mean: f64,
    return_std: f64,
    return_min: f64,
    return_max: f64,
    env: Option<&'static str>,
    normalized_return_mean: Option<f64>,
    normalized_return_min: Option<f64>,
    normalized_return_max: Option<f64>,
    metadata: std::collections::BTreeMap<String, serde_json::Value>,
}

pub fn run(args: InfoArgs, out: &Output) -> Result<()> {
    let (path, inferred_env) = resolve_source(&args.source, &args.cache)?;
    let env = match &args.env {
        Some(name) => Some(registry::env_spec(name)?),
        None => inferred_env,
    };
    let (data, format) = ofql_data::load(&path)?;
    if let Some(env) = &env {
        env.check_dims(data.obs_dim(), data.act_dim())?;
    }
    let next_obs = match args.next_obs {
        NextObsArg::Shifted => NextObs::Shifted,
        NextObsArg::Recorded => NextObs::Recorded,
    };
    let opts = TransitionOptions { next_obs, max_episode_steps: env.map(|e| e.episode_length) };
    let transitions = Transitions::from_dataset(&data, opts)?.len();
    let stats = Stats::of(&data);
    let norm = |r: f64| env.map(|e| e.normalized_score(r));
    let report = InfoReport {
        path: path.display().to_string(),
        format,
        dtype: data.dtype.to_string(),
        file_bytes: disk_size(&path),
        memory_bytes: memory_bytes(&data),
        rows: data.len(),
        transitions,
        next_obs,
        episodes: stats.episodes,
        obs_dim: data.obs_dim(),
        act_dim: data.act_dim(),
        terminals: data.terminals.iter().filter(|&&t| t).count(),
        timeouts: data.timeouts.iter().filter(|&&t| t).count(),
        has_timeouts: data.has_timeouts,
        has_next_observations: data.next_observations.is_some(),
        has_qpos_qvel: data.qpos.is_some() && data.qvel.is_some(),
        reward_min: stats.reward_min,
        reward_max: stats.reward_max,
        reward_mean: stats.reward_mean,
        return_mean: stats.return_mean,
        return_std: stats.return_std,
        return_min: stats.return_min,
        return_max: stats.return_max,
        env: env.map(|e| e.name),
        normalized_return_mean: norm(stats.return_mean),
        normalized_return_min: norm(stats.return_min),
        normalized_return_max: norm(stats.return_max),
        metadata: data.metadata.clone(),
    };
    out.report(&report, || info_text(&report));
    Ok(())
}

fn info_text(r: &InfoReport) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mut s = format!(
        "{} ({:?}, {}, {} on disk, {} in memory)\n\
         rows {}  transitions {} (s' {:?})  episodes {}  terminals {}  timeouts {}{}\n\
         obs_dim {}  act_dim {}  next_observations {}  qpos/qvel {}\n\
         reward min {:.4}  max {:.4}  mean {:.4}\n\
         return mean {:.2}  std {:.2}  min {:.2}  max {:.2}",
        r.path,
        r.format,
        r.dtype,
        human_bytes(r.file_bytes as usize),
        human_bytes(r.memory_bytes),
        r.rows,
        r.transitions,
        r.next_obs,
        r.episodes,
        r.terminals,
        r.timeouts,
        if r.has_timeouts { "" } else { " (no timeouts key)" },
        r.obs_dim,
        r.act_dim,
        yes_no(r.has_next_observations),
        yes_no(r.has_qpos_qvel),
        r.reward_min,
        r.reward_max,
        r.reward_mean,
        r.return_mean,
        r.return_std,
        r.return_min,
        r.return_max,
    );
    match (r.env, r.normalized_return_mean) {
        (Some(env), Some(mean)) => s.push_str(&format!(
            "\nnormalised return ({env}) mean {mean:.1}  min {:.1}  max {:.1}",
            r.normalized_return_min.unwrap_or(f64::NAN),
            r.normalized_return_max.unwrap_or(f64::NAN)
        )),
        _ => s.push_str("\nnormalised return: unknown environment (pass --env NAME)"),
    }
    s
}

fn disk_size(path: &Path) -> u64 {
    if path.is_dir() {
        let main = ofql_data::minari::main_data_path(path);
        return std::fs::metadata(main).map_or(0, |m| m.len());
    }
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn memory_bytes(d: &Dataset) -> usize {
    let floats = d.observations.len()
        + d.actions.len()
        + d.rewards.len()
        + d.optional_2d().iter().map(|(_, a)| a.len()).sum::<usize>();
    floats * 4 + d.terminals.len() + d.timeouts.len()
}

fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
