//! From a config's `[data]` section to a replay buffer: find the file (a path, or a registry
//! name in the download cache), build transitions by `qlearning_dataset` rules, transform
//! rewards, and optionally normalise observations (the statistics go into the checkpoint so
//! the policy normalises what it sees at evaluation the same way).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use ofql_data::transitions::normalize_rows;
use ofql_data::{NextObs, ReplayBuffer, Stats, TransitionOptions, Transitions, fetch, registry};
use serde::{Deserialize, Serialize};

use crate::config::DataConfig;

/// Per-dimension observation normalisation: s <- (s - mean) / std.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ObsNorm {
    pub fn apply(&self, obs: &mut [f32]) {
        normalize_rows(obs, &self.mean, &self.std);
    }
}

pub struct Prepared {
    pub buffer: ReplayBuffer,
    pub obs_norm: Option<ObsNorm>,
    pub path: PathBuf,
    /// The registry entry when the file is a known dataset (scores, episode length).
    pub info: Option<registry::DatasetInfo>,
}

/// The file `dataset` names: an existing path, or a registry name already in the cache.
pub fn resolve(
    dataset: &str,
    cache: Option<&Path>,
) -> Result<(PathBuf, Option<registry::DatasetInfo>)> {
    if dataset.is_empty() {
        bail!("no dataset given: pass --dataset PATH|NAME or set data.dataset in the config");
    }
    let path = Path::new(dataset);
    if path.is_file() {
        return Ok((path.to_path_buf(), registry::infer_from_file(path)));
    }
    if dataset.contains(['/', '\\']) || dataset.ends_with(".hdf5") || dataset.ends_with(".parquet")
    {
        bail!("dataset file {dataset} does not exist");
    }
    let info = registry::lookup(dataset)?;
    let dir = fetch::cache_dir(cache);
    let file = fetch::safe_join(&dir, &info.file_name())?;
    if !file.is_file() {
        bail!(
            "dataset {dataset} is not in the cache {}: run `ofql dataset fetch {dataset}` (needs \
             the D4RL server), put the file there by hand as {}, or pass a file path",
            dir.display(),
            file.display()
        );
    }
    Ok((file, Some(info)))
}

pub fn prepare(cfg: &DataConfig, cache: Option<&Path>) -> Result<Prepared> {
    let (path, info) = resolve(&cfg.dataset, cache)?;
    let (dataset, _format) = ofql_data::load(&path)?;
    let opts = TransitionOptions {
        next_obs: if cfg.use_next_observations { NextObs::Recorded } else { NextObs::Shifted },
        max_episode_steps: info.as_ref().map(|i| i.episode_length),
    };
    let mut transitions = Transitions::from_dataset(&dataset, opts)?;
    if transitions.is_empty() {
        bail!("{} yields no transitions", path.display());
    }
    let (shift, scale) = (cfg.reward_shift as f32, cfg.reward_scale as f32);
    if shift != 0.0 || scale != 1.0 {
        transitions.map_rewards(|r| (r + shift) * scale);
    }
    let obs_norm = if cfg.normalize_obs {
        let (mean, std) = Stats::of(&dataset).normalizer(1e-3);
        transitions.normalize_observations(&mean, &std);
        Some(ObsNorm { mean, std })
    } else {
        None
    };
    Ok(Prepared { buffer: ReplayBuffer::new(transitions), obs_norm, path, info })
}
