//! Errors a user can act on: each names the file or key and says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "file not found: {0} (give the path of an existing file, or a dataset name known to `ofql dataset fetch`)"
    )]
    MissingFile(PathBuf),

    #[error(
        "{path} is not an HDF5 or parquet file ({why}); D4RL files are HDF5 (.hdf5), see docs/data.md"
    )]
    UnknownFormat { path: PathBuf, why: String },

    #[error(
        "{path} could not be opened as HDF5 (truncated or corrupt? download it again): {source}"
    )]
    BadHdf5 { path: PathBuf, source: hdf5::Error },

    #[error(
        "{path}: key `{key}` is missing (a D4RL file needs observations, actions, rewards and terminals)"
    )]
    MissingKey { path: PathBuf, key: String },

    #[error(
        "{path}: `{key}` has {got} rows but `{reference}` has {expected}; the file is inconsistent"
    )]
    LengthMismatch { path: PathBuf, key: String, got: usize, reference: String, expected: usize },

    #[error("{path}: `{key}` has shape {shape:?}, expected {expected}")]
    BadShape { path: PathBuf, key: String, shape: Vec<usize>, expected: String },

    #[error(
        "`{key}` holds a non-finite value ({value}) at row {row}, column {col}; clean or re-download the data"
    )]
    NonFinite { key: String, row: usize, col: usize, value: f32 },

    #[error(
        "the data's {what} dimension is {got} but environment `{env}` has {expected}; pass the right --env or check the file"
    )]
    DimMismatch { what: &'static str, env: String, got: usize, expected: usize },

    #[error(
        "dataset `{name}` is not downloaded yet ({} does not exist in the cache {}): run `ofql dataset fetch {name}`, put the file there by hand, or pass a file path",
        .file.display(), .cache.display()
    )]
    NotDownloaded { name: String, file: PathBuf, cache: PathBuf },

    #[error(
        "`{0}` is not a Hugging Face dataset name: write hf:<owner>/<name>:<config> (letters, digits, `-`, `_`, `.`), e.g. hf:edbeeching/decision_transformer_gym_replay:hopper-medium-v2"
    )]
    BadHubName(String),

    #[error(
        "the Hugging Face dataset {repo} has no parquet files for config `{config}`; its configs: {}",
        .found.join(", ")
    )]
    HubConfigMissing { repo: String, config: String, found: Vec<String> },

    #[error(
        "config `{config}` of the Hugging Face dataset {repo} has no `train` split; its splits: {}",
        .found.join(", ")
    )]
    HubSplitMissing { repo: String, config: String, found: Vec<String> },

    #[error("the dataset's parquet shards cannot be joined: {0}")]
    ShardMismatch(String),

    #[error("unknown dataset `{name}`{}", suggest(.suggestions))]
    UnknownDataset { name: String, suggestions: Vec<String> },

    #[error("unknown environment `{name}`{}", suggest(.suggestions))]
    UnknownEnv { name: String, suggestions: Vec<String> },

    #[error(
        "`{0}` is not a valid file name for the cache: use a plain name without `/`, `\\`, `..` or a leading dot"
    )]
    UnsafeName(String),

    #[error(
        "checksum mismatch for {name}: pinned sha256 {pinned}, downloaded {got}; the download was removed (delete the pin only if the source changed on purpose)"
    )]
    ChecksumMismatch { name: String, pinned: String, got: String },
}

fn suggest(names: &[String]) -> String {
    if names.is_empty() {
        "; run `ofql dataset fetch --list` for the known names".to_string()
    } else {
        format!(
            "; did you mean {}?",
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        )
    }
}
