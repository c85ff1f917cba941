//! Behaviour policies and the datasets made with them, for learning runs where the D4RL and
//! Minari files cannot be fetched.
//!
//! - [`sac`]: Soft Actor-Critic, the online learner D4RL's data came from.
//! - [`online`]: a SAC run in the simulator, evaluated snapshots, exact resume, export.
//! - [`generate`]: D4RL-style datasets (random, medium, expert, medium-expert, medium-replay)
//!   rolled out from those snapshots.
//! - [`maze_data`]: AntMaze datasets as Minari made them: a goal-reaching ant steered by
//!   waypoints over the maze's cells, with noise on its actions.
//! - [`kitchen_script`]: Kitchen datasets from a scripted demonstrator (inverse kinematics
//!   along waypoints set from the kitchen's layout).

pub mod generate;
pub mod kitchen_script;
pub mod maze_data;
pub mod online;
mod rows;
pub mod sac;
