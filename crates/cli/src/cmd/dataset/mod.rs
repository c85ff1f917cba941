//! `ofql dataset ...`: inspect, convert, download, verify and generate offline RL datasets,
//! one file per subcommand. Add one with a file here, a variant of `DatasetCommand` and its
//! arm in `run`.

mod convert;
mod fetch;
mod generate;
mod info;
mod verify;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use ofql_data::registry::EnvSpec;

use crate::output::Output;

#[derive(Args)]
pub struct DatasetArgs {
    #[command(subcommand)]
    pub command: DatasetCommand,
}

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Sizes, dtypes, episodes and return statistics of a file or a downloaded dataset.
    Info(info::InfoArgs),
    /// Convert between D4RL HDF5, Minari and parquet layouts.
    Convert(convert::ConvertArgs),
    /// Download D4RL datasets into the cache folder (resumable, SHA-256 pinned).
    Fetch(fetch::FetchArgs),
    /// Replay a D4RL file's recorded states in the simulator and report how far its next
    /// observations, rewards and terminations are from the recorded ones.
    Verify(verify::VerifyArgs),
    /// Record a D4RL-style dataset with the project's own behaviour policies.
    Generate(generate::GenerateArgs),
}

pub fn run(args: DatasetArgs, out: &Output) -> Result<()> {
    match args.command {
        DatasetCommand::Info(a) => info::run(a, out),
        DatasetCommand::Convert(a) => convert::run(a, out),
        DatasetCommand::Fetch(a) => fetch::run(a, out),
        DatasetCommand::Verify(a) => verify::run(a, out),
        DatasetCommand::Generate(a) => generate::run(a, out),
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
        ofql_data::fetch::cache_dir(self.cache_dir.as_deref())
    }
}

/// A dataset file, or a registry name resolved to its file in the cache (`ofql_data::resolve`,
/// as `ofql train` resolves `data.dataset`).
pub fn resolve_source(source: &str, cache: &CacheArgs) -> Result<(PathBuf, Option<EnvSpec>)> {
    let (path, info) = ofql_data::resolve(source, Some(&cache.dir()))?;
    Ok((path, info.map(|i| i.env_spec())))
}
