//! Offline RL datasets: D4RL HDF5, Minari and parquet files, downloads, and the replay buffer.

pub mod hdf5_io;

/// The HDF5 library version compiled in (built from source by `hdf5-metno-src`).
pub fn hdf5_version() -> String {
    let (major, minor, patch) = hdf5::library_version();
    format!("{major}.{minor}.{patch}")
}
