//! `ofql dataset ...`: inspect, convert and download offline RL datasets.
//! Add a subcommand by adding a variant to `DatasetCommand` and a `run_*` function.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use ofql_data::fetch::{self, Pins};
use ofql_data::registry::{self, DEFAULT_BASE_URL, EnvSpec};
use ofql_data::{Dataset, Dtype, Format, NextObs, Stats, TransitionOptions, Transitions};
use serde::Serialize;

use crate::output::Output;

/// Environment variable naming a mirror of D4RL's download server.
const BASE_URL_ENV: &str = "OFQL_D4RL_BASE_URL";

#[derive(Args)]
pub struct DatasetArgs {
    #[command(subcommand)]
    pub command: DatasetCommand,
}

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Sizes, dtypes, episodes and return statistics of a file or a downloaded dataset.
    Info(InfoArgs),
    /// Convert between D4RL HDF5, Minari and parquet layouts.
    Convert(ConvertArgs),
    /// Download D4RL datasets into the cache folder (resumable, SHA-256 pinned).
    Fetch(FetchArgs),
    /// Replay a D4RL file's recorded states in the simulator and report how far its next
    /// observations, rewards and terminations are from the recorded ones.
    Verify(super::dataset_verify::VerifyArgs),
    /// Record a D4RL-style dataset with the project's own behaviour policies.
    Generate(super::dataset_generate::GenerateArgs),
}

pub fn run(args: DatasetArgs, out: &Output) -> Result<()> {
    match args.command {
        DatasetCommand::Info(a) => run_info(a, out),
        DatasetCommand::Convert(a) => run_convert(a, out),
        DatasetCommand::Fetch(a) => run_fetch(a, out),
        DatasetCommand::Verify(a) => super::dataset_verify::run(a, out),
        DatasetCommand::Generate(a) => super::dataset_generate::run(a, out),
    }
}

#[derive(Args)]
pub struct CacheArgs {
    /// Cache folder [default: $OFQL_DATA_DIR, else data/cache].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    pub fn dir(&self) -> PathBuf {
        fetch::cache_dir(self.cache_dir.as_deref())
    }
}

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

/// A dataset file, or a registry name resolved to its file in the cache (`ofql_data::resolve`,
/// as `ofql train` resolves `data.dataset`).
pub fn resolve_source(source: &str, cache: &CacheArgs) -> Result<(PathBuf, Option<EnvSpec>)> {
    let (path, info) = ofql_data::resolve(source, Some(&cache.dir()))?;
    Ok((path, info.map(|i| i.env_spec())))
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

fn run_info(args: InfoArgs, out: &Output) -> Result<()> {
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

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// D4RL HDF5 (flat keys, gzip).
    D4rl,
    /// Minari folder (data/main_data.hdf5 + data/metadata.json).
    Minari,
    /// Parquet, one row per step.
    Parquet,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    Float32,
    Float64,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// Input file (any layout `info` reads) or a downloaded D4RL name.
    pub input: String,
    /// Output path: .parquet, .hdf5 (D4RL) or a folder (Minari).
    pub output: PathBuf,
    /// Output layout [default: from the output's extension].
    #[arg(long, value_enum)]
    pub to: Option<Layout>,
    /// Float type of a D4RL output [default: the input's].
    #[arg(long, value_enum)]
    pub dtype: Option<DtypeArg>,
    /// Minari `dataset_id` [default: the output folder's name].
    #[arg(long)]
    pub dataset_id: Option<String>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Serialize)]
struct ConvertReport {
    input: String,
    output: String,
    from: Format,
    to: Layout,
    dtype: String,
    rows: usize,
    episodes: usize,
}

fn run_convert(args: ConvertArgs, out: &Output) -> Result<()> {
    let (input, _) = resolve_source(&args.input, &args.cache)?;
    let to = args.to.unwrap_or_else(|| layout_of(&args.output));
    if args.output.exists() && !args.force {
        bail!("{} already exists; pass --force to replace it", args.output.display());
    }
    let (data, from) = ofql_data::load(&input)?;
    let dtype = match args.dtype {
        Some(DtypeArg::Float32) => Dtype::F32,
        Some(DtypeArg::Float64) => Dtype::F64,
        None => data.dtype,
    };
    crate::replace::write_replacing(&args.output, to == Layout::Minari, |path| match to {
        Layout::D4rl => ofql_data::write_d4rl(path, &data, dtype),
        Layout::Parquet => ofql_data::write_parquet(path, &Dataset { dtype, ..data.clone() }),
        Layout::Minari => {
            let id = args.dataset_id.clone().unwrap_or_else(|| {
                args.output
                    .file_name()
                    .map_or("dataset".into(), |n| n.to_string_lossy().into_owned())
            });
            ofql_data::write_minari(path, &data, &id)
        }
    })?;
    let report = ConvertReport {
        input: input.display().to_string(),
        output: args.output.display().to_string(),
        from,
        to,
        dtype: dtype.to_string(),
        rows: data.len(),
        episodes: data.episodes().len(),
    };
    out.report(&report, || {
        format!(
            "{} ({:?}) -> {} ({:?}, {}): {} rows, {} episodes",
            report.input, from, report.output, to, report.dtype, report.rows, report.episodes
        )
    });
    Ok(())
}

fn layout_of(path: &Path) -> Layout {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => Layout::Parquet,
        Some("hdf5" | "h5") => Layout::D4rl,
        _ => Layout::Minari,
    }
}

#[derive(Args)]
pub struct FetchArgs {
    /// D4RL dataset names, e.g. hopper-medium-replay-v2.
    #[arg(required_unless_present = "list")]
    pub names: Vec<String>,
    /// List the known names instead of downloading.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Pins file: SHA-256 per file, recorded on first download; commit it.
    #[arg(long, value_name = "FILE", default_value = fetch::DEFAULT_PINS_FILE)]
    pub pins: PathBuf,
    /// Download server [default: $OFQL_D4RL_BASE_URL, else D4RL's].
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Seconds to wait for a connection.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub connect_timeout: f64,
    /// Seconds to wait for any one read (the answer, or the next piece of the file).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub read_timeout: f64,
    /// Further attempts after a network error, a timeout or a server error; each resumes
    /// the partial file.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

#[derive(Serialize)]
struct FetchedReport {
    name: String,
    url: String,
    #[serde(flatten)]
    fetched: fetch::Fetched,
}

fn run_fetch(args: FetchArgs, out: &Output) -> Result<()> {
    if args.list {
        let all = registry::all();
        out.report(&serde_json::json!({ "datasets": all }), || {
            all.iter()
                .map(|d| {
                    format!(
                        "{:<32} {:<12} obs {:>3} act {:>2}",
                        d.name, d.env, d.obs_dim, d.act_dim
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(());
    }
    let base = args
        .base_url
        .clone()
        .or_else(|| std::env::var(BASE_URL_ENV).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
    // Check every name before downloading anything.
    let infos = args.names.iter().map(|n| registry::lookup(n)).collect::<Result<Vec<_>, _>>()?;
    let dir = args.cache.dir();
    let mut pins = Pins::load(&args.pins)?;
    let seconds = |v: f64, flag: &str| -> Result<std::time::Duration> {
        if !(v > 0.0 && v <= 86_400.0) {
            bail!("{flag} {v}: give a number of seconds in (0, 86400]");
        }
        Ok(std::time::Duration::from_secs_f64(v))
    };
    let opts = fetch::FetchOptions {
        progress: true,
        connect_timeout: seconds(args.connect_timeout, "--connect-timeout")?,
        read_timeout: seconds(args.read_timeout, "--read-timeout")?,
        retries: args.retries,
        ..fetch::FetchOptions::default()
    };
    let mut fetched = Vec::new();
    for info in infos {
        let url = info.url(&base);
        eprintln!("fetching {} from {url}", info.name);
        let f =
            fetch::fetch(&url, &dir, &info.file_name(), &mut pins, &opts).with_context(|| {
                format!(
                    "fetch {} (without the network, put the file by hand at {})",
                    info.name,
                    dir.join(info.file_name()).display()
                )
            })?;
        fetched.push(FetchedReport { name: info.name, url, fetched: f });
    }
    let report = serde_json::json!({ "fetched": fetched, "pins": pins.path() });
    out.report(&report, || {
        fetched
            .iter()
            .map(|f| {
                format!(
                    "{}: {} ({} bytes{}) sha256 {} {}",
                    f.name,
                    f.fetched.path.display(),
                    f.fetched.bytes,
                    if f.fetched.cached { ", cached" } else { "" },
                    f.fetched.sha256,
                    f.fetched.pin
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
