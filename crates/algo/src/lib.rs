//! The OFQL agent: its configuration, the update (Algorithm 1), training and evaluation.
//!
//! - [`agent::Ofql::update`] is one iteration of the paper's Algorithm 1.
//! - [`train::train`] runs it with metrics, checkpoints, evaluation and exact resume.
//! - [`policy`] and [`eval`] act with a trained agent in the simulator.

pub mod agent;
pub mod behaviour;
pub mod config;
pub mod curves;
pub mod eval;
pub mod generate;
pub mod paper;
pub mod policy;
pub mod prepare;
pub mod run_lock;
pub mod sac;
pub mod train;

pub use agent::{Losses, Ofql};
pub use config::Config;
