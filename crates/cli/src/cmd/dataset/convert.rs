//! `ofql dataset convert`: D4RL HDF5, Minari and parquet layouts, into each other.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use ofql_data::{Dataset, Dtype, Format};
use serde::Serialize;

use super::{CacheArgs, resolve_source};
use crate::output::Output;

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

pub fn run(args: ConvertArgs, out: &Output) -> Result<()> {
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
