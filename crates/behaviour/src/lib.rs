//! Behaviour policies and the datasets made with them, for learning runs where the D4RL and
//! Minari files cannot be fetched.
//!
//! - [`sac`]: Soft Actor-Critic, the online learner D4RL's data came from.
//! - [`online`]: a SAC run in the simulator, evaluated snapshots, exact resume, export.
//! - [`generate`]: D4RL-style datasets (random, medium, expert, medium-expert, medium-replay)
//!   rolled out from those snapshots.

pub mod generate;
pub mod online;
pub mod sac;
