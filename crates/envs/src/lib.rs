//! MuJoCo locomotion environments (HalfCheetah, Hopper, Walker2d) defined as Gymnasium
//! defines them (`-v4` and `-v5`), Gymnasium-Robotics' AntMaze (v4) and FrankaKitchen (v1),
//! on `mujoco-rs`, and the evaluation runner.
//!
//! - [`EnvId`] names one of the environments; [`Env`] steps it.
//! - [`evaluate`] runs a [`Policy`] for N episodes on M environments in lockstep.
//! - [`verify`] replays a dataset's recorded states through the simulator.

pub mod action;
pub mod env;
pub mod error;
pub mod id;
pub mod kinematics;
pub mod kitchen;
pub mod maze;
pub mod models;
mod mujoco_log;
pub mod np_random;
pub mod policy;
pub mod runner;
pub mod score;
pub mod spec;
pub mod verify;

pub use action::ActionScalar;
pub use env::{Env, EnvConfig, MazeOptions, MazeReward, Step, StepInfo, load_env_model};
pub use error::EnvError;
pub use id::{EnvId, Task, Version};
pub use kinematics::{SiteKinematics, SitePose};
pub use kitchen::{KitchenOptions, KitchenState, KitchenTask};
pub use maze::{Maze, MazeMap};
pub use models::{ModelError, load_model, models_dir, robotics_assets_dir};
pub use policy::{Policy, RandomPolicy, ZeroPolicy};
pub use runner::{Episode, EvalConfig, EvalError, EvalReport, Summary, evaluate};
pub use score::ScoreRef;
pub use spec::{MAX_EPISODE_STEPS, Spec};
pub use verify::{NoiseFloor, Recorded, VerifyOptions, VerifyReport, verify};

/// The MuJoCo library version actually loaded at run time (e.g. "3.17.0").
pub fn mujoco_version() -> &'static str {
    mujoco_rs::mujoco_version()
}
