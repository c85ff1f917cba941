//! The Minari layout: `data/main_data.hdf5` with one `episode_{id}` group per episode
//! (observations have T+1 rows, the rest T) and `data/metadata.json` beside it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ndarray::{Array1, Array2, Axis, concatenate, s};

use crate::d4rl::{Actions, FullPrecision, Reader, open_hdf5};
use crate::dataset::{Dataset, Dtype};
use crate::error::DataError;
use crate::hdf5_io;

pub const MAIN_FILE: &str = "main_data.hdf5";
pub const METADATA_FILE: &str = "metadata.json";

/// Where `main_data.hdf5` is, given the dataset root, its `data/` folder or the file itself.
pub fn main_data_path(path: &Path) -> PathBuf {
    if path.is_file() {
        return path.to_path_buf();
    }
    let in_data = path.join("data").join(MAIN_FILE);
    if in_data.exists() { in_data } else { path.join(MAIN_FILE) }
}

/// The returns Minari's `get_normalized_score` maps to 0 and 100, when the dataset's
/// `metadata.json` stores them (`ref_min_score`, `ref_max_score`: Minari's `mujoco/*` datasets
/// do, from a random and an expert policy on the recording environment). `None` when the
/// dataset is not in Minari's layout or its metadata has neither key.
pub fn reference_scores(path: &Path) -> Result<Option<(f64, f64)>> {
    let metadata = main_data_path(path).with_file_name(METADATA_FILE);
    let Ok(text) = std::fs::read_to_string(&metadata) else {
        return Ok(None);
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", metadata.display()))?;
    let number = |key: &str| match json.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_f64().filter(|x| x.is_finite()).map(Some).with_context(|| {
            format!("{}: `{key}` is {v}, not a finite number", metadata.display())
        }),
    };
    match (number("ref_min_score")?, number("ref_max_score")?) {
        (None, None) => Ok(None),
        (Some(min), Some(max)) if max > min => Ok(Some((min, max))),
        (Some(min), Some(max)) => bail!(
            "{}: ref_max_score {max} is not above ref_min_score {min}, so no score can be \
             normalised by them; fix or remove the two keys",
            metadata.display()
        ),
        _ => bail!(
            "{}: only one of ref_min_score / ref_max_score is set; scores need both",
            metadata.display()
        ),
    }
}

/// True when the HDF5 file holds Minari `episode_*` groups.
pub fn is_minari_file(file: &hdf5::File) -> bool {
    file.member_names().is_ok_and(|names| names.iter().any(|n| n.starts_with("episode_")))
}

/// Read a Minari dataset into rows: s = observations[t], s' = observations[t + 1],
/// terminals = terminations, timeouts = truncations, episodes in id order.
pub fn read_minari(path: &Path) -> Result<Dataset> {
    let main = main_data_path(path);
    let file = open_hdf5(&main)?;
    let ids = episode_groups(&file, &main)?;
    let mut parts: Vec<Episode> = Vec::with_capacity(ids.len());
    let mut dtype = Dtype::F32;
    let mut obs_layout: Option<Vec<String>> = None;
    for (_, name) in &ids {
        let group = file.group(name)?;
        let episode_path = main.join(name);
        let (obs, obs_dtype) = match group.group("observations") {
            Ok(dict) => {
                let layout = dict_layout(&dict, &episode_path)?;
                let dict_path = episode_path.join("observations");
                let reader = Reader { file: &dict, path: &dict_path };
                let mut parts = Vec::new();
                let mut dtype = Dtype::F32;
                for key in &layout {
                    let (part, part_dtype) = reader.matrix(key)?;
                    dtype = part_dtype;
                    parts.push(part);
                }
                let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
                let obs = concatenate(Axis(1), &views).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: the parts of the observation dictionary have different lengths: {e}",
                        dict_path.display()
                    )
                })?;
                match &obs_layout {
                    Some(known) if *known != layout => bail!(
                        "{}: the observation dictionary has keys {layout:?}, earlier episodes \
                         {known:?}",
                        dict_path.display()
                    ),
                    _ => obs_layout = Some(layout),
                }
                (obs, dtype)
            }
            Err(_) => Reader { file: &group, path: &episode_path }.matrix("observations")?,
        };
        let reader = Reader { file: &group, path: &episode_path };
        dtype = obs_dtype;
        let episode = Episode {
            obs,
            actions: reader.matrix("actions")?.0,
            rewards: reader.vector("rewards")?,
            terminations: reader.flags("terminations")?,
            truncations: reader.flags("truncations")?,
        };
        episode.check(&episode_path)?;
        parts.push(episode);
    }
    let cat2 = |f: &dyn Fn(&Episode) -> Array2<f32>| -> Result<Array2<f32>> {
        let views: Vec<Array2<f32>> = parts.iter().map(f).collect();
        let views: Vec<_> = views.iter().map(|v| v.view()).collect();
        Ok(concatenate(Axis(0), &views)?)
    };
    let cat1 = |f: &dyn Fn(&Episode) -> Vec<bool>| parts.iter().flat_map(f).collect::<Vec<_>>();
    let steps = |e: &Episode| e.rewards.len();
    let observations = cat2(&|e| e.obs.slice(s![..steps(e), ..]).to_owned())?;
    let next = cat2(&|e| e.obs.slice(s![1..steps(e) + 1, ..]).to_owned())?;
    let actions = cat2(&|e| e.actions.clone())?;
    let rewards: Array1<f32> = parts.iter().flat_map(|e| e.rewards.iter().copied()).collect();
    let terminals = Array1::from_vec(cat1(&|e| e.terminations.to_vec()));
    let timeouts = Array1::from_vec(cat1(&|e| e.truncations.to_vec()));
    let mut data = Dataset {
        next_observations: Some(next),
        dtype,
        ..Dataset::new(observations, actions, rewards, terminals, timeouts)
    };
    if let Some(layout) = obs_layout {
        data.metadata.insert("observation_layout".into(), layout.join("+").into());
    }
    let meta_path = main.with_file_name(METADATA_FILE);
    if meta_path.exists() {
        let text = std::fs::read_to_string(&meta_path)?;
        let meta: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON object", meta_path.display()))?;
        data.metadata.extend(meta.into_iter().filter(|(_, v)| !v.is_object() && !v.is_array()));
    }
    data.validate(&main)?;
    Ok(data)
}

/// The `episode_{id}` groups, in id order.
fn episode_groups(file: &hdf5::File, main: &Path) -> Result<Vec<(u64, String)>> {
    let mut ids: Vec<(u64, String)> = file
        .member_names()?
        .into_iter()
        .filter_map(|n| n.strip_prefix("episode_").and_then(|id| id.parse().ok()).map(|id| (id, n)))
        .collect();
    if ids.is_empty() {
        return Err(
            DataError::MissingKey { path: main.to_path_buf(), key: "episode_0".into() }.into()
        );
    }
    ids.sort();
    Ok(ids)
}

/// A Minari dataset's floats at their stored precision, for a replay in the simulator
/// (`ofql dataset verify`): rows as `read_minari` makes them (dictionary observations in
/// `DICT_OBSERVATION_ORDER`), and the simulator states from `infos/qpos`, `infos/qvel` when
/// the episodes record them (else `qpos` and `qvel` are empty: the caller may know how to
/// take them from the observation), and the controls after each step from `infos/ctrl` (as
/// Minari's kitchen datasets record them) when every episode has them.
pub fn read_minari_full_precision(path: &Path) -> Result<FullPrecision> {
    // The checks (shapes, T + 1 observations, equal dictionaries) and the flags.
    let data = read_minari(path)?;
    let main = main_data_path(path);
    let file = open_hdf5(&main)?;
    let (mut observations, mut next) = (Vec::new(), Vec::new());
    let (mut qpos, mut qvel, mut rewards) = (Vec::new(), Vec::new(), Vec::new());
    let (mut actions32, mut actions64) = (Vec::new(), Vec::new());
    let mut ctrl = Vec::new();
    let (mut all_states, mut all_ctrl) = (true, true);
    for (_, name) in episode_groups(&file, &main)? {
        let group = file.group(&name)?;
        let episode = main.join(&name);
        let reader = Reader { file: &group, path: &episode };
        let steps = reader.raw::<f64>("rewards")?.len();
        let obs = match group.group("observations") {
            Ok(dict) => {
                let dict_path = episode.join("observations");
                let dict_reader = Reader { file: &dict, path: &dict_path };
                let parts = dict_layout(&dict, &episode)?
                    .iter()
                    .map(|key| dict_reader.raw::<f64>(key))
                    .collect::<Result<Vec<_>>>()?;
                // Interleave the parts' columns row by row.
                let widths: Vec<usize> = parts.iter().map(|p| p.len() / (steps + 1)).collect();
                let mut rows = Vec::with_capacity(parts.iter().map(Vec::len).sum());
                for t in 0..=steps {
                    for (part, w) in parts.iter().zip(&widths) {
                        rows.extend_from_slice(&part[t * w..(t + 1) * w]);
                    }
                }
                rows
            }
            Err(_) => reader.raw::<f64>("observations")?,
        };
        let d = obs.len() / (steps + 1);
        observations.extend_from_slice(&obs[..steps * d]);
        next.extend_from_slice(&obs[d..]);
        rewards.extend(reader.raw::<f64>("rewards")?);
        let stored_f32 = group.dataset("actions")?.dtype()?.size() == 4;
        if stored_f32 {
            actions32.extend(reader.raw::<f32>("actions")?);
        } else {
            actions64.extend(reader.raw::<f64>("actions")?);
        }
        match (group.link_exists("infos/qpos"), group.link_exists("infos/qvel")) {
            (true, true) if all_states => {
                let (p, v) = (reader.raw::<f64>("infos/qpos")?, reader.raw::<f64>("infos/qvel")?);
                // T + 1 states (the reset's too), as the observations.
                qpos.extend_from_slice(&p[..p.len() / (steps + 1) * steps]);
                qvel.extend_from_slice(&v[..v.len() / (steps + 1) * steps]);
            }
            _ => all_states = false,
        }
        if all_ctrl && group.link_exists("infos/ctrl") {
            // T + 1 rows, the reset's first: row t + 1 holds the controls of step t.
            let c = reader.raw::<f64>("infos/ctrl")?;
            if c.len() % (steps + 1) != 0 {
                bail!(
                    "{}: infos/ctrl has {} values, not a multiple of the episode's {} infos rows",
                    episode.display(),
                    c.len(),
                    steps + 1
                );
            }
            ctrl.extend_from_slice(&c[c.len() / (steps + 1)..]);
        } else {
            all_ctrl = false;
        }
    }
    if !actions32.is_empty() && !actions64.is_empty() {
        bail!("{}: some episodes store actions as float32, others as float64", main.display());
    }
    if !all_states {
        (qpos, qvel) = (Vec::new(), Vec::new());
    }
    Ok(FullPrecision {
        dtype: data.dtype,
        rows: data.len(),
        qpos,
        qvel,
        ctrl: if all_ctrl { ctrl } else { Vec::new() },
        observations,
        next_observations: Some(next),
        actions: if actions64.is_empty() {
            Actions::F32(actions32)
        } else {
            Actions::F64(actions64)
        },
        rewards,
        terminals: data.terminals.to_vec(),
        timeouts: Some(data.timeouts.to_vec()),
    })
}

/// Dictionary observations (Gymnasium-Robotics' goal environments) become one row per step:
/// the Box entries in this order, then any other Box entries by name. Nested dictionaries
/// (Kitchen's per-task goals) are left out. The mazes' rows are then `achieved_goal` (x, y),
/// `observation` (27), `desired_goal` (x, y): the layout of `ofql_envs`' AntMaze with the goal
/// in the observation.
pub const DICT_OBSERVATION_ORDER: [&str; 3] = ["achieved_goal", "observation", "desired_goal"];

/// The Box entries of a dictionary observation group, in `DICT_OBSERVATION_ORDER`.
fn dict_layout(dict: &hdf5::Group, episode: &Path) -> Result<Vec<String>> {
    let mut boxes: Vec<String> =
        dict.member_names()?.into_iter().filter(|n| dict.dataset(n).is_ok()).collect();
    let rank =
        |n: &String| DICT_OBSERVATION_ORDER.iter().position(|k| k == n).unwrap_or(usize::MAX);
    boxes.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    if boxes.is_empty() {
        bail!(
            "{}: the observation dictionary holds no arrays (only nested dictionaries), so it \
             has no observation to learn from",
            episode.join("observations").display()
        );
    }
    Ok(boxes)
}

/// Write `data` as a Minari dataset under `root` (`root/data/main_data.hdf5` and
/// `root/data/metadata.json`). Needs `next_observations`, because each Minari episode stores
/// its final observation, which D4RL's `observations` alone does not hold.
pub fn write_minari(root: &Path, data: &Dataset, dataset_id: &str) -> Result<()> {
    write_minari_with_layout(root, data, dataset_id, None)
}

/// `write_minari`, with the observation columns split into a dictionary of named parts
/// (`[("achieved_goal", 2), ("observation", 27), ("desired_goal", 2)]` for a maze), as
/// Gymnasium-Robotics' goal environments record them.
pub fn write_minari_with_layout(
    root: &Path,
    data: &Dataset,
    dataset_id: &str,
    layout: Option<&[(&str, usize)]>,
) -> Result<()> {
    if let Some(layout) = layout {
        let width: usize = layout.iter().map(|(_, w)| w).sum();
        if width != data.obs_dim() {
            bail!(
                "the observation layout {layout:?} has {width} columns, the data {}",
                data.obs_dim()
            );
        }
    }
    let next = data.next_observations.as_ref().with_context(|| {
        "the data has no `next_observations`, so the last observation of each episode is \
         unknown and Minari's layout cannot be written; convert to D4RL HDF5 or parquet instead"
    })?;
    let dir = root.join("data");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let main = dir.join(MAIN_FILE);
    let file = hdf5::File::create(&main)
        .with_context(|| format!("create HDF5 file {}", main.display()))?;
    let episodes = data.episodes();
    for (id, ep) in episodes.iter().enumerate() {
        let group = file.create_group(&format!("episode_{id}"))?;
        group.new_attr::<i64>().create("id")?.write_scalar(&(id as i64))?;
        group.new_attr::<i64>().create("total_steps")?.write_scalar(&(ep.len() as i64))?;
        let rows = ep.start..ep.end;
        let obs = concatenate(
            Axis(0),
            &[
                data.observations.slice(s![rows.clone(), ..]),
                next.slice(s![ep.end - 1..ep.end, ..]),
            ],
        )?;
        // Minari 0.5 writes observations and rewards as float64 and actions as float32.
        match layout {
            None => hdf5_io::write_floats(&group, "observations", obs.view(), Dtype::F64)?,
            Some(layout) => {
                let dict = group.create_group("observations")?;
                let mut col = 0;
                for (key, width) in layout {
                    let part = obs.slice(s![.., col..col + width]);
                    hdf5_io::write_floats(&dict, key, part, Dtype::F64)?;
                    col += width;
                }
            }
        }
        hdf5_io::write_floats(
            &group,
            "actions",
            data.actions.slice(s![rows.clone(), ..]),
            Dtype::F32,
        )?;
        hdf5_io::write_floats(&group, "rewards", data.rewards.slice(s![rows.clone()]), Dtype::F64)?;
        hdf5_io::write_array(&group, "terminations", data.terminals.slice(s![rows.clone()]))?;
        hdf5_io::write_array(&group, "truncations", data.timeouts.slice(s![rows]))?;
    }
    let mut meta = serde_json::Map::new();
    for (k, v) in &data.metadata {
        meta.insert(k.clone(), v.clone());
    }
    meta.insert("dataset_id".into(), dataset_id.into());
    meta.insert("total_episodes".into(), episodes.len().into());
    meta.insert("total_steps".into(), data.len().into());
    meta.insert("data_format".into(), "hdf5".into());
    let json = serde_json::to_string_pretty(&serde_json::Value::Object(meta))?;
    std::fs::write(dir.join(METADATA_FILE), json)?;
    Ok(())
}

/// Add `infos/<key>` to every episode of the Minari dataset at `root`, as `write_minari` wrote
/// it: one array per episode, in order, of T + 1 rows (the reset's info first, then one per
/// step), as Minari's `DataCollector` records an info, at float64.
pub fn write_minari_infos(root: &Path, key: &str, episodes: &[Array2<f64>]) -> Result<()> {
    let main = main_data_path(root);
    let file = hdf5::File::open_rw(&main)
        .with_context(|| format!("open HDF5 file {} to write", main.display()))?;
    let groups = episode_groups(&file, &main)?;
    if groups.len() != episodes.len() {
        bail!(
            "{}: {} episodes, but infos/{key} was given for {}",
            main.display(),
            groups.len(),
            episodes.len()
        );
    }
    for ((_, name), values) in groups.iter().zip(episodes) {
        let group = file.group(name)?;
        let steps = group.dataset("rewards")?.shape()[0];
        if values.nrows() != steps + 1 {
            bail!(
                "{name}: infos/{key} has {} rows, expected {} (the reset's, then one per step)",
                values.nrows(),
                steps + 1
            );
        }
        let infos = match group.group("infos") {
            Ok(infos) => infos,
            Err(_) => group.create_group("infos")?,
        };
        hdf5_io::write_array(&infos, key, values.view())?;
    }
    Ok(())
}

struct Episode {
    obs: Array2<f32>,
    actions: Array2<f32>,
    rewards: Array1<f32>,
    terminations: Array1<bool>,
    truncations: Array1<bool>,
}

impl Episode {
    /// Minari's invariant: T + 1 observations for T of everything else.
    fn check(&self, path: &Path) -> Result<(), DataError> {
        let t = self.rewards.len();
        let mismatch = |key: &str, got: usize, expected: usize| DataError::LengthMismatch {
            path: path.to_path_buf(),
            key: key.to_string(),
            got,
            reference: "rewards".to_string(),
            expected,
        };
        for (key, got, expected) in [
            ("observations", self.obs.nrows(), t + 1),
            ("actions", self.actions.nrows(), t),
            ("terminations", self.terminations.len(), t),
            ("truncations", self.truncations.len(), t),
        ] {
            if got != expected {
                return Err(mismatch(key, got, expected));
            }
        }
        Ok(())
    }
}
