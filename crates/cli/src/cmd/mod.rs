//! One module per subcommand.

pub mod behaviour;
pub mod bench;
pub mod critic;
pub mod dataset;
pub mod env;
pub mod eval;
pub mod report;
pub mod toy;
pub mod train;
pub mod version;
