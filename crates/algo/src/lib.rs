//! Offline training: the methods, their configuration, the training loop and evaluation.
//!
//! - [`agent::Agent`] is the seam every method implements; [`agent::build`] makes one by name.
//! - [`ofql::Ofql::iterate`] is one iteration of the paper's Algorithm 1.
//! - [`train::train`] runs an agent with metrics, checkpoints, evaluation and exact resume.
//! - [`policy`] and [`eval`] act with a trained agent in the simulator.

pub mod agent;
pub mod config;
pub mod dql;
pub mod eval;
pub mod fql;
pub mod ofql;
pub mod policy;
pub mod prepare;
pub mod q_learning;
pub mod run_lock;
pub mod schedule;
pub mod train;

pub use agent::{Agent, Metrics};
pub use config::Config;
pub use dql::Dql;
pub use fql::Fql;
pub use ofql::{Losses, Ofql};
