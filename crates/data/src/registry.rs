//! Known D4RL datasets and environments: where to download them, their dimensions, episode
//! length and the reference scores of D4RL's normalised score.

use serde::Serialize;

use crate::error::DataError;

/// D4RL's download server (plain http: pin a SHA-256 per file, see `fetch`).
pub const DEFAULT_BASE_URL: &str = "http://rail.eecs.berkeley.edu/datasets/offline_rl";
/// Where Minari keeps its datasets: Hugging Face dataset repos `farama-minari/<namespace>`,
/// read through the hub's plain-HTTP file URLs (`<base>/<repo>/resolve/main/<path>`).
pub const DEFAULT_MINARI_BASE_URL: &str = "https://huggingface.co/datasets";
/// The Hugging Face organisation holding Minari's remote.
pub const MINARI_HF_ORG: &str = "farama-minari";

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
    // Minari's regenerated D4RL tasks on Gymnasium-Robotics: AntMaze rows are achieved_goal,
    // observation, desired_goal (2 + 27 + 2); Kitchen rows its 59-number `observation`.
    env("antmaze-gr", 31, 8, 1000, 0.0, 1.0),
    env("kitchen-gr", 59, 9, 450, 0.0, 4.0),
];

/// Where a dataset is downloaded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// One HDF5 file on D4RL's server.
    D4rl,
    /// A Minari dataset (`data/main_data.hdf5` + `data/metadata.json`) on its remote.
    Minari,
}

/// One downloadable dataset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetInfo {
    /// D4RL's name (`hopper-medium-v2`) or Minari's id (`D4RL/antmaze/medium-play-v1`).
    pub name: String,
    pub source: Source,
    /// Environment family, a key of `ENVS` (e.g. "halfcheetah").
    pub env: &'static str,
    /// Path of the file below the base URL (D4RL), or the dataset id (Minari).
    pub remote_path: String,
    /// The simulator the data can honestly be scored in (`Hopper-v4`, `AntMaze_Medium-v4`);
    /// `None` where none matches the recording (D4RL's antmaze-v2 ant is not Gymnasium's).
    pub eval_env: Option<&'static str>,
    /// The maze map to evaluate in (Minari's `eval_env_spec`): one start and one goal cell.
    pub eval_maze_map: Option<&'static [&'static str]>,
    /// The kitchen tasks of the dataset (`tasks_to_complete` of its recording).
    pub kitchen_tasks: Option<&'static [&'static str]>,
    pub episode_length: usize,
    pub obs_dim: usize,
    pub act_dim: usize,
    pub ref_min: f64,
    pub ref_max: f64,
}

/// One file to download: its URL below the base, and its path below the cache folder.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteFile {
    pub url_path: String,
    pub local_path: String,
}

impl DatasetInfo {
    /// The download URL below `base` (D4RL's server unless a mirror or test server is given).
    /// Minari datasets have two files: see `remote_files`.
    pub fn url(&self, base: &str) -> String {
        format!("{}/{}", base.trim_end_matches('/'), self.remote_path)
    }

    /// The file's name in the cache folder (the registry name, so always a plain name).
    pub fn file_name(&self) -> String {
        format!("{}.hdf5", self.name)
    }

    /// The files that make the dataset. Minari's: `<id>/data/main_data.hdf5` and
    /// `metadata.json` in the repo `farama-minari/<namespace>` (`D4RL/antmaze/medium-play-v1`
    /// -> repo `D4RL`, path `antmaze/medium-play-v1/data/...`), kept below the cache as
    /// Minari keeps them (`<cache>/D4RL/antmaze/medium-play-v1/data/...`), so a Minari
    /// dataset folder can serve as the cache.
    pub fn remote_files(&self) -> Vec<RemoteFile> {
        match self.source {
            Source::D4rl => {
                vec![RemoteFile {
                    url_path: self.remote_path.clone(),
                    local_path: self.file_name(),
                }]
            }
            Source::Minari => {
                let (repo, rest) = self.remote_path.split_once('/').expect("namespaced id");
                ["main_data.hdf5", "metadata.json"]
                    .into_iter()
                    .map(|file| RemoteFile {
                        url_path: format!("{MINARI_HF_ORG}/{repo}/resolve/main/{rest}/data/{file}"),
                        local_path: format!("{}/data/{file}", self.name),
                    })
                    .collect()
            }
        }
    }

    /// What `resolve` returns once downloaded: the file (D4RL) or the dataset folder (Minari).
    pub fn local_path(&self) -> String {
        match self.source {
            Source::D4rl => self.file_name(),
            Source::Minari => self.name.clone(),
        }
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

/// Minari's AntMaze datasets (`D4RL/antmaze/<name>-v1`): the environment they were recorded
/// in, its time limit, and the evaluation map of their `eval_env_spec` (one start `r`, one
/// goal `g`; from minari-dataset-generation-scripts' `create_antmaze_dataset.py`, whose
/// umaze evaluation map is the mirror image of the recording maze).
const MINARI_ANTMAZE: [(&str, &str, usize, &[&str]); 6] = [
    ("umaze", "AntMaze_UMaze-v4", 700, &EVAL_UMAZE),
    ("umaze-diverse", "AntMaze_UMaze-v4", 700, &EVAL_UMAZE),
    ("medium-play", "AntMaze_Medium-v4", 1000, &EVAL_MEDIUM),
    ("medium-diverse", "AntMaze_Medium_Diverse_GR-v4", 1000, &EVAL_MEDIUM),
    ("large-play", "AntMaze_Large-v4", 1000, &EVAL_LARGE),
    ("large-diverse", "AntMaze_Large_Diverse_GR-v4", 1000, &EVAL_LARGE),
];
const EVAL_UMAZE: [&str; 5] = ["11111", "100r1", "10111", "100g1", "11111"];
const EVAL_MEDIUM: [&str; 8] = [
    "11111111", "1r011001", "10010001", "11000111", "10010001", "10100101", "100010g1", "11111111",
];
const EVAL_LARGE: [&str; 9] = [
    "111111111111",
    "1r0001000001",
    "101101010101",
    "100000010001",
    "101111011101",
    "100101000001",
    "110101010111",
    "100100010g01",
    "111111111111",
];

/// Minari's Kitchen datasets (`D4RL/kitchen/<name>-v2`, FrankaKitchen-v1), their time limits
/// and tasks (minari-dataset-generation-scripts' kitchen script; D4RL's own task sets).
const MINARI_KITCHEN: [(&str, usize, &[&str]); 3] = [
    ("complete", 280, &["microwave", "kettle", "light switch", "slide cabinet"]),
    ("partial", 450, &["microwave", "kettle", "light switch", "slide cabinet"]),
    ("mixed", 450, &["microwave", "kettle", "bottom burner", "light switch"]),
];

/// Minari's own MuJoCo datasets (`mujoco/<env>/<level>-v0`), recorded on the v5 environments.
const MINARI_MUJOCO: [(&str, &str); 3] =
    [("halfcheetah", "HalfCheetah-v5"), ("hopper", "Hopper-v5"), ("walker2d", "Walker2d-v5")];
const MINARI_MUJOCO_LEVELS: [&str; 3] = ["simple", "medium", "expert"];

/// Every registered dataset, in a stable order.
pub fn all() -> Vec<DatasetInfo> {
    let mut out = Vec::new();
    let make = |name: String, env_name: &'static str, remote_path: String, len: Option<usize>| {
        let spec = ENVS.iter().find(|e| e.name == env_name).expect("registered env");
        DatasetInfo {
            name,
            source: Source::D4rl,
            env: spec.name,
            remote_path,
            eval_env: None,
            eval_maze_map: None,
            kitchen_tasks: None,
            episode_length: len.unwrap_or(spec.episode_length),
            obs_dim: spec.obs_dim,
            act_dim: spec.act_dim,
            ref_min: spec.ref_min,
            ref_max: spec.ref_max,
        }
    };
    let minari =
        |id: String, env_name: &'static str, len: usize, eval_env: &'static str| DatasetInfo {
            source: Source::Minari,
            eval_env: Some(eval_env),
            ..make(id.clone(), env_name, id, Some(len))
        };
    for env_name in LOCOMOTION_ENVS {
        for kind in LOCOMOTION_KINDS {
            let file = format!("gym_mujoco_v2/{env_name}_{}-v2.hdf5", kind.replace('-', "_"));
            let eval_env = match env_name {
                "halfcheetah" => "HalfCheetah-v4",
                "hopper" => "Hopper-v4",
                _ => "Walker2d-v4",
            };
            let info = make(format!("{env_name}-{kind}-v2"), env_name, file, None);
            out.push(DatasetInfo { eval_env: Some(eval_env), ..info });
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
    for (name, env, len, eval_map) in MINARI_ANTMAZE {
        let info = minari(format!("D4RL/antmaze/{name}-v1"), "antmaze-gr", len, env);
        out.push(DatasetInfo { eval_maze_map: Some(eval_map), ..info });
    }
    for (name, len, tasks) in MINARI_KITCHEN {
        let info = minari(format!("D4RL/kitchen/{name}-v2"), "kitchen-gr", len, "FrankaKitchen-v1");
        out.push(DatasetInfo { kitchen_tasks: Some(tasks), ..info });
    }
    for (env_name, env) in MINARI_MUJOCO {
        for level in MINARI_MUJOCO_LEVELS {
            out.push(minari(format!("mujoco/{env_name}/{level}-v0"), env_name, 1000, env));
        }
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
/// (e.g. `hopper-medium-v2.hdf5` or `hopper_medium-v2.hdf5`), or whose id a Minari
/// dataset's `metadata.json` names (`dataset_id`, also for data made in Minari's image).
pub fn infer_from_file(path: &std::path::Path) -> Option<DatasetInfo> {
    let main = crate::minari::main_data_path(path);
    let metadata = main.with_file_name(crate::minari::METADATA_FILE);
    if let Ok(text) = std::fs::read_to_string(&metadata) {
        let id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("dataset_id")?.as_str().map(String::from));
        if let Some(info) = id.and_then(|id| lookup(&id).ok()) {
            return Some(info);
        }
    }
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
    if let Some(spec) = ENVS.iter().find(|e| canonical_env(e.name) == key) {
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
        assert_eq!(all.len(), 18 + 6 + 2 + 6 + 3 + 9);
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
