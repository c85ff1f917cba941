//! The OFQL agent: its configuration, the update (Algorithm 1), training and evaluation policies.

pub mod config;

pub use config::Config;
