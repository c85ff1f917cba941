//! MuJoCo locomotion environments (HalfCheetah, Hopper, Walker2d) defined as Gymnasium
//! defines them, on `mujoco-rs`, and the evaluation runner.

pub mod models;

pub use models::{ModelError, load_model, models_dir};

/// The MuJoCo library version actually loaded at run time (e.g. "3.17.0").
pub fn mujoco_version() -> &'static str {
    mujoco_rs::mujoco_version()
}
