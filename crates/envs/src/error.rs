//! What can go wrong with an environment, said so that the user knows what to do.

use crate::models::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("unknown environment `{name}`: the known ones are {known}")]
    UnknownEnv { name: String, known: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{env} takes {expected}-dimensional actions, got {got}")]
    ActionDim { env: String, expected: usize, got: usize },
    #[error(
        "{env} has {expected} {what} coordinates (nq = {nq}, nv = {nv}), got {got}: the data was \
         not recorded in this environment (check `--env`)"
    )]
    StateDim { env: String, what: &'static str, expected: usize, got: usize, nq: usize, nv: usize },
    #[error("{0}")]
    Invalid(String),
}
