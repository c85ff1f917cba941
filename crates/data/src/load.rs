//! Open any supported file by looking at its bytes, not its name.

use std::io::Read;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::{d4rl, minari, parquet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// D4RL's HDF5 layout (flat keys).
    D4rl,
    /// Minari's `main_data.hdf5` with `episode_*` groups.
    Minari,
    /// Parquet, one row per step or the HF mirror's one row per episode.
    Parquet,
}

const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// Which layout `path` holds (a Minari dataset may be given as its folder).
pub fn detect(path: &Path) -> Result<Format> {
    if !path.exists() {
        return Err(DataError::MissingFile(path.to_path_buf()).into());
    }
    if path.is_dir() {
        let main = minari::main_data_path(path);
        if !main.exists() {
            return Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
                why: format!("a folder without {}", minari::MAIN_FILE),
            }
            .into());
        }
        return Ok(Format::Minari);
    }
    let mut head = [0u8; 8];
    let n = std::fs::File::open(path)?.read(&mut head)?;
    if n >= 4 && &head[..4] == PARQUET_MAGIC {
        return Ok(Format::Parquet);
    }
    if n < 8 || &head != HDF5_MAGIC {
        let why =
            if n == 0 { "the file is empty".into() } else { "no HDF5 or parquet signature".into() };
        return Err(DataError::UnknownFormat { path: path.to_path_buf(), why }.into());
    }
    let file = d4rl::open_hdf5(path)?;
    Ok(if minari::is_minari_file(&file) { Format::Minari } else { Format::D4rl })
}

/// Read a dataset in any supported layout; checked (lengths, finite floats) before returning.
pub fn load(path: &Path) -> Result<(Dataset, Format)> {
    let format = detect(path)?;
    let data = match format {
        Format::D4rl => d4rl::read_d4rl(path)?,
        Format::Minari => minari::read_minari(path)?,
        Format::Parquet => parquet::read_parquet(path)?,
    };
    Ok((data, format))
}
