//! Offline RL datasets: D4RL HDF5, Minari and parquet files, downloads, and the replay buffer.
//!
//! `load` reads any supported file into a `Dataset` (one row per step, f32 arrays);
//! `Transitions::from_dataset` applies d4rl's `qlearning_dataset` rules; `ReplayBuffer`
//! samples batches of candle tensors; `registry` knows the D4RL names and scores.

pub mod d4rl;
pub mod dataset;
pub mod error;
pub mod fetch;
pub mod goals;
pub mod hdf5_io;
pub mod hub;
pub mod load;
pub mod minari;
pub mod parquet;
pub mod registry;
pub mod replay;
pub mod stats;
pub mod transitions;

pub use d4rl::{
    Actions, FullPrecision, read_d4rl, read_d4rl_full_precision, write_d4rl, write_states_f64,
};
pub use dataset::{Dataset, Dtype, Episode};
pub use error::DataError;
pub use fetch::resolve;
pub use load::{Format, detect, load};
pub use minari::{
    read_minari, read_minari_full_precision, write_minari, write_minari_infos,
    write_minari_with_layout,
};
pub use parquet::{read_parquet, write_parquet};
pub use registry::{DatasetInfo, EnvSpec, lookup, normalized_score};
pub use replay::{Batch, ReplayBuffer};
pub use stats::Stats;
pub use transitions::{NextObs, TransitionOptions, Transitions};

/// The HDF5 library version compiled in (built from source by `hdf5-metno-src`).
pub fn hdf5_version() -> String {
    let (major, minor, patch) = hdf5::library_version();
    format!("{major}.{minor}.{patch}")
}
