//! `ofql dataset fetch`: D4RL and Minari downloads into the cache (resumable, SHA-256 pinned).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ofql_data::fetch::{self, Pins};
use ofql_data::hub::{HubFetched, HubId, HubOptions};
use ofql_data::registry::{self, DEFAULT_BASE_URL, DEFAULT_MINARI_BASE_URL, Source};
use serde::Serialize;

use super::CacheArgs;
use crate::output::Output;

/// Environment variable naming a mirror of D4RL's download server.
const BASE_URL_ENV: &str = "OFQL_D4RL_BASE_URL";
/// Environment variable naming a mirror of Minari's remote (Hugging Face's dataset URLs).
const MINARI_BASE_URL_ENV: &str = "OFQL_MINARI_BASE_URL";

#[derive(Args)]
pub struct FetchArgs {
    /// Dataset names: D4RL's (hopper-medium-replay-v2) or Minari's ids
    /// (D4RL/antmaze/medium-play-v1, mujoco/hopper/medium-v0); `--list` shows them.
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
    /// Minari's remote: files are `<URL>/farama-minari/<namespace>/resolve/main/<path>`
    /// [default: $OFQL_MINARI_BASE_URL, else Hugging Face's dataset URLs].
    #[arg(long, value_name = "URL")]
    pub minari_base_url: Option<String>,
    /// Hugging Face's address for `hf:` names [default: $HF_ENDPOINT, else Hugging Face's].
    #[arg(long, value_name = "URL")]
    pub hub_endpoint: Option<String>,
    /// The Hugging Face cache the `hf:` shards are kept in [default: $HF_HUB_CACHE, else
    /// ~/.cache/huggingface/hub, shared with Python's huggingface_hub].
    #[arg(long, value_name = "DIR")]
    pub hf_cache: Option<PathBuf>,
    /// The revision `hf:` names are read at: the Hub's parquet conversion, or a branch, tag
    /// or commit of a dataset that keeps its parquet files in the same layout.
    #[arg(long, value_name = "REV", default_value = ofql_data::hub::PARQUET_REVISION)]
    pub hub_revision: String,
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

pub fn run(args: FetchArgs, out: &Output) -> Result<()> {
    if args.list {
        let all = registry::all();
        out.report(&serde_json::json!({ "datasets": all }), || {
            all.iter()
                .map(|d| {
                    format!(
                        "{:<32} {:<12} obs {:>3} act {:>2}  {}",
                        d.name,
                        d.env,
                        d.obs_dim,
                        d.act_dim,
                        d.eval_env.unwrap_or("(no simulator matches the recording)")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        return Ok(());
    }
    let base_for = |flag: &Option<String>, var: &str, default: &str| {
        flag.clone()
            .or_else(|| std::env::var(var).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| default.to_string())
    };
    let d4rl_base = base_for(&args.base_url, BASE_URL_ENV, DEFAULT_BASE_URL);
    let minari_base = base_for(&args.minari_base_url, MINARI_BASE_URL_ENV, DEFAULT_MINARI_BASE_URL);
    // Check every name before downloading anything.
    let mut hub_ids = Vec::new();
    let mut infos = Vec::new();
    for name in &args.names {
        match HubId::parse(name)? {
            Some(id) => hub_ids.push(id),
            None => infos.push(registry::lookup(name)?),
        }
    }
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
    let hub = fetch_hub(&hub_ids, &dir, &args, &opts)?;
    let mut fetched = Vec::new();
    for info in infos {
        let base = match info.source {
            Source::D4rl => &d4rl_base,
            Source::Minari => &minari_base,
        };
        for file in info.remote_files() {
            let url = format!("{}/{}", base.trim_end_matches('/'), file.url_path);
            eprintln!("fetching {} from {url}", info.name);
            let f = fetch::fetch_to(&url, &dir, &file.local_path, &mut pins, &opts).with_context(
                || {
                    format!(
                        "fetch {} (without the network, put the file by hand at {})",
                        info.name,
                        dir.join(&file.local_path).display()
                    )
                },
            )?;
            fetched.push(FetchedReport { name: info.name.clone(), url, fetched: f });
        }
    }
    let report = serde_json::json!({ "fetched": fetched, "hub": hub, "pins": pins.path() });
    out.report(&report, || {
        hub.iter()
            .map(hub_line)
            .chain(fetched.iter().map(|f| {
                format!(
                    "{}: {} ({} bytes{}) sha256 {} {}",
                    f.name,
                    f.fetched.path.display(),
                    f.fetched.bytes,
                    if f.fetched.cached { ", cached" } else { "" },
                    f.fetched.sha256,
                    f.fetched.pin
                )
            }))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn hub_line(h: &HubFetched) -> String {
    match (h.already_present, h.steps) {
        (false, Some(steps)) => format!(
            "{}: {} ({steps} steps from {} shard(s), commit {})",
            h.name,
            h.path.display(),
            h.files.len(),
            h.commit.as_deref().unwrap_or("unknown")
        ),
        _ => format!("{}: {} (already in the cache)", h.name, h.path.display()),
    }
}

fn fetch_hub(
    ids: &[HubId],
    dir: &std::path::Path,
    args: &FetchArgs,
    opts: &fetch::FetchOptions,
) -> Result<Vec<HubFetched>> {
    let hub_opts = HubOptions {
        endpoint: args.hub_endpoint.clone(),
        hf_cache: args.hf_cache.clone(),
        revision: args.hub_revision.clone(),
        connect_timeout: opts.connect_timeout,
        read_timeout: opts.read_timeout,
        retries: opts.retries,
    };
    ids.iter()
        .map(|id| {
            eprintln!("fetching {id} from the Hugging Face hub");
            ofql_data::hub::fetch(id, dir, &hub_opts).with_context(|| format!("fetch {id}"))
        })
        .collect()
}
