//! Known D4RL datasets and environments: where to download them, their dimensions, episode
//! length and the reference scores of D4RL's normalised score.

use serde::Serialize;

use crate::error::DataError;

/// D4RL's download server (plain http: pin a SHA-256 per file, see `fetch`).
pub const DEFAULT_BASE_URL: &str = "http://rail.eecs.berkeley.edu/datasets/offline_rl";

/// An environment's shapes and D4RL's reference returns (random policy, expert).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EnvSpec {
    pub name: &'static str,
    pub obs_dim: usize,
    pub act_dim: usize,
    pub episode_length: usize,
    pub ref_min: f64,
    pub ref_max: f64,
}

impl EnvSpec {
    /// D4RL's normalised score: 100 * (return - min) / (max - min).
    pub fn normalized_score(&self, ret: f64) -> f64 {
        100.0 * (ret - self.ref_min) / (self.ref_max - self.ref_min)
    }

    /// The data's observation and action sizes must be this environment's.
    pub fn check_dims(&self, obs_dim: usize, act_dim: usize) -> Result<(), DataError> {
        let mismatch = |what, got, expected| DataError::DimMismatch {
            what,
            env: self.name.to_string(),
            got,
            expected,
        };
        if act_dim != self.act_dim {
            return Err(mismatch("action", act_dim, self.act_dim));
        }
        if obs_dim != self.obs_dim {
            return Err(mismatch("observation", obs_dim, self.obs_dim));
        }
        Ok(())
    }
}

const fn env(
    name: &'static str,
    obs_dim: usize,
    act_dim: usize,
    episode_length: usize,
    ref_min: f64,
    ref_max: f64,
) -> EnvSpec {
    EnvSpec { name, obs_dim, act_dim, episode_length, ref_min, ref_max }
}

/// Constants from d4rl's `infos.py` (REF_MIN_SCORE / REF_MAX_SCORE).
pub const ENVS: &[EnvSpec] = &[
    env("halfcheetah", 17, 6, 1000, -280.178953, 12135.0),
    env("hopper", 11, 3, 1000, -20.272305, 3234.3),
    env("walker2d", 17, 6, 1000, 1.629008, 4592.3),
    env("ant", 111, 8, 1000, -325.6, 3879.7),
    env("antmaze", 29, 8, 1000, 0.0, 1.0),
    env("kitchen", 60, 9, 280, 0.0, 4.0),
    env("pen", 45, 24, 100, 96.262799, 3076.8331017826877),
];

/// One downloadable dataset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetInfo {
    pub name: String,
    /// Environment family, a key of `ENVS` (e.g. "halfcheetah").
    pub env: &'static str,
    /// Path of the file below the base URL.
    pub remote_path: String,
    pub episode_length: usize,
    pub obs_dim: usize,
    pub act_dim: usize,
    pub ref_min: f64,
    pub ref_max: f64,
}

impl DatasetInfo {
    /// The download URL below `base` (D4RL's server unless a mirror or test server is given).
    pub fn url(&self, base: &str) -> String {
        format!("{}/{}", base.trim_end_matches('/'), self.remote_path)
    }

    /// The file's name in the cache folder (the registry name, so always a plain name).
    pub fn file_name(&self) -> String {
        format!("{}.hdf5", self.name)
    }

    pub fn env_spec(&self) -> EnvSpec {
        let base = ENVS.iter().find(|e| e.name == self.env).copied().expect("registered env");
        EnvSpec { episode_length: self.episode_length, ..base }
    }

    pub fn normalized_score(&self, ret: f64) -> f64 {
        self.env_spec().normalized_score(ret)
    }
}

const LOCOMOTION_ENVS: [&str; 3] = ["halfcheetah", "hopper", "walker2d"];
const LOCOMOTION_KINDS: [&str; 6] =
    ["random", "medium", "expert", "medium-replay", "full-replay", "medium-expert"];

/// (name, maze file, multistart, multigoal, episode length) of AntMaze v2.
const ANTMAZE: [(&str, &str, bool, bool, usize); 6] = [
    ("antmaze-umaze-v2", "u-maze", false, false, 700),
    ("antmaze-umaze-diverse-v2", "u-maze", true, true, 700),
    ("antmaze-medium-play-v2", "big-maze", true, false, 1000),
    ("antmaze-medium-diverse-v2", "big-maze", true, true, 1000),
    ("antmaze-large-play-v2", "hardest-maze", true, false, 1000),
    ("antmaze-large-diverse-v2", "hardest-maze", true, true, 1000),
];

const KITCHEN: [(&str, &str); 2] = [
    ("kitchen-partial-v0", "kitchen_microwave_kettle_light_slider-v0"),
    ("kitchen-mixed-v0", "kitchen_microwave_kettle_bottomburner_light-v0"),
];

/// Every registered dataset, in a stable order.
pub fn all() -> Vec<DatasetInfo> {
    let mut out = Vec::new();
    let make = |name: String, env_name: &'static str, remote_path: String, len: Option<usize>| {
        let spec = ENVS.iter().find(|e| e.name == env_name).expect("registered env");
        DatasetInfo {
            name,
            env: spec.name,
            remote_path,
            episode_length: len.unwrap_or(spec.episode_length),
            obs_dim: spec.obs_dim,
            act_dim: spec.act_dim,
            ref_min: spec.ref_min,
            ref_max: spec.ref_max,
        }
    };
    for env_name in LOCOMOTION_ENVS {
        for kind in LOCOMOTION_KINDS {
            let file = format!("gym_mujoco_v2/{env_name}_{}-v2.hdf5", kind.replace('-', "_"));
            out.push(make(format!("{env_name}-{kind}-v2"), env_name, file, None));
        }
    }
    for (name, maze, multistart, multigoal, len) in ANTMAZE {
        let file = format!(
            "ant_maze_v2/Ant_maze_{maze}_noisy_multistart_{}_multigoal_{}_sparse_fixed.hdf5",
            py_bool(multistart),
            py_bool(multigoal)
        );
        out.push(make(name.to_string(), "antmaze", file, Some(len)));
    }
    for (name, file) in KITCHEN {
        out.push(make(name.to_string(), "kitchen", format!("kitchen/{file}.hdf5"), None));
    }
    out
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// The dataset registered under `name`; unknown names get the closest known ones suggested.
pub fn lookup(name: &str) -> Result<DatasetInfo, DataError> {
    let all = all();
    if let Some(info) = all.iter().find(|d| d.name == name) {
        return Ok(info.clone());
    }
    let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
    Err(DataError::UnknownDataset { name: name.to_string(), suggestions: closest(name, &names) })
}

/// The registered dataset whose name or remote file name matches a local file's name
/// (e.g. `hopper-medium-v2.hdf5` or `hopper_medium-v2.hdf5`).
pub fn infer_from_file(path: &std::path::Path) -> Option<DatasetInfo> {
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_suffix(".hdf5").unwrap_or(file);
    all().into_iter().find(|d| {
        d.name == stem || d.remote_path.rsplit('/').next() == Some(file) || d.name == file
    })
}

/// The environment for a name such as "halfcheetah", "HalfCheetah-v4", "half_cheetah" or a
/// dataset name such as "hopper-medium-v2".
pub fn env_spec(name: &str) -> Result<EnvSpec, DataError> {
    if let Ok(info) = lookup(name) {
        return Ok(info.env_spec());
    }
    let key = canonical_env(name);
    if let Some(spec) = ENVS.iter().find(|e| e.name == key) {
        return Ok(*spec);
    }
    let names: Vec<&str> = ENVS.iter().map(|e| e.name).collect();
    Err(DataError::UnknownEnv { name: name.to_string(), suggestions: closest(&key, &names) })
}

/// D4RL's normalised score of an undiscounted return in environment `env`.
pub fn normalized_score(env: &str, ret: f64) -> Result<f64, DataError> {
    Ok(env_spec(env)?.normalized_score(ret))
}

/// "HalfCheetah-v4" -> "halfcheetah": lower case, version and separators dropped.
fn canonical_env(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let base = match lower.rfind("-v") {
        Some(i) if lower[i + 2..].chars().all(|c| c.is_ascii_digit()) => &lower[..i],
        _ => &lower[..],
    };
    base.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// Up to three known names within a small edit distance, nearest first.
pub fn closest(name: &str, known: &[&str]) -> Vec<String> {
    let limit = (name.len() / 3).max(3);
    let mut scored: Vec<(usize, &str)> = known
        .iter()
        .map(|k| (levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= limit || k.contains(name) && name.len() >= 3)
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k.to_string()).collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_holds_the_named_datasets_with_d4rl_urls() {
        let all = all();
        assert_eq!(all.len(), 18 + 6 + 2);
        let hc = lookup("halfcheetah-medium-replay-v2").unwrap();
        assert_eq!(
            hc.url(DEFAULT_BASE_URL),
            "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/halfcheetah_medium_replay-v2.hdf5"
        );
        assert_eq!((hc.obs_dim, hc.act_dim, hc.episode_length), (17, 6, 1000));
        let maze = lookup("antmaze-large-play-v2").unwrap();
        assert!(maze.remote_path.ends_with(
            "Ant_maze_hardest-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5"
        ));
        let kitchen = lookup("kitchen-mixed-v0").unwrap();
        assert_eq!(kitchen.episode_length, 280);
        assert_eq!(
            kitchen.url("http://127.0.0.1:9/x/"),
            "http://127.0.0.1:9/x/kitchen/kitchen_microwave_kettle_bottomburner_light-v0.hdf5"
        );
        assert_eq!(lookup("hopper-expert-v2").unwrap().obs_dim, 11);
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let msg = lookup("hopper-medium-replay-v1").unwrap_err().to_string();
        assert!(msg.contains("unknown dataset `hopper-medium-replay-v1`"), "{msg}");
        assert!(msg.contains("`hopper-medium-replay-v2`"), "{msg}");
        let msg = lookup("halfchetah-medium-v2").unwrap_err().to_string();
        assert!(msg.contains("did you mean `halfcheetah-medium-v2`"), "{msg}");
        let msg = env_spec("hoper").unwrap_err().to_string();
        assert!(msg.contains("`hopper`"), "{msg}");
    }

    #[test]
    fn normalised_score_uses_d4rl_constants() {
        assert_eq!(normalized_score("hopper", -20.272305).unwrap(), 0.0);
        assert!((normalized_score("HalfCheetah-v4", 12135.0).unwrap() - 100.0).abs() < 1e-12);
        let w = normalized_score("walker2d-medium-v2", 2296.964504).unwrap();
        assert!((w - 50.0).abs() < 1e-6, "{w}");
        assert_eq!(env_spec("half_cheetah").unwrap().act_dim, 6);
        assert_eq!(env_spec("antmaze-umaze-v2").unwrap().episode_length, 700);
    }

    #[test]
    fn dimension_check_names_the_environment() {
        let hopper = env_spec("hopper").unwrap();
        assert!(hopper.check_dims(11, 3).is_ok());
        let msg = hopper.check_dims(11, 6).unwrap_err().to_string();
        assert!(msg.contains("action dimension is 6") && msg.contains("`hopper` has 3"), "{msg}");
        let msg = hopper.check_dims(17, 3).unwrap_err().to_string();
        assert!(msg.contains("observation dimension is 17"), "{msg}");
    }

    #[test]
    fn local_files_are_matched_to_their_dataset() {
        let p = std::path::Path::new("/tmp/hopper_medium_replay-v2.hdf5");
        assert_eq!(infer_from_file(p).unwrap().name, "hopper-medium-replay-v2");
        let p = std::path::Path::new("walker2d-expert-v2.hdf5");
        assert_eq!(infer_from_file(p).unwrap().env, "walker2d");
        assert!(infer_from_file(std::path::Path::new("mine.hdf5")).is_none());
    }
}
