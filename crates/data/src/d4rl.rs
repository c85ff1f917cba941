//! The D4RL HDF5 layout: read files exactly as published, and write a `Dataset` the same way.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{Array1, Array2};

use crate::dataset::{Dataset, Dtype};
use crate::error::DataError;
use crate::hdf5_io;

/// Read a D4RL file: `observations`, `actions`, `rewards` ((N,) or (N,1)), `terminals` are
/// required; `timeouts`, `next_observations`, `infos/qpos`, `infos/qvel` and scalar
/// `metadata/*` are read when present. Float64 files are narrowed to f32.
pub fn read_d4rl(path: &Path) -> Result<Dataset> {
    let file = open_hdf5(path)?;
    let reader = Reader { file: &file, path };
    reader.same_rows(&[
        "observations",
        "actions",
        "rewards",
        "terminals",
        "timeouts",
        "next_observations",
        "infos/qpos",
        "infos/qvel",
    ])?;
    let (observations, dtype) = reader.matrix("observations")?;
    let (actions, _) = reader.matrix("actions")?;
    let rewards = reader.vector("rewards")?;
    let terminals = reader.flags("terminals")?;
    let (timeouts, has_timeouts) = match reader.optional("timeouts") {
        Some(_) => (reader.flags("timeouts")?, true),
        None => (Array1::from_elem(terminals.len(), false), false),
    };
    let optional_matrix = |key: &str| -> Result<Option<Array2<f32>>> {
        reader.optional(key).map(|_| reader.matrix(key).map(|m| m.0)).transpose()
    };
    let dataset = Dataset {
        next_observations: optional_matrix("next_observations")?,
        qpos: optional_matrix("infos/qpos")?,
        qvel: optional_matrix("infos/qvel")?,
        metadata: read_metadata(&file)?,
        has_timeouts,
        dtype,
        ..Dataset::new(observations, actions, rewards, terminals, timeouts)
    };
    dataset.validate(path)?;
    Ok(dataset)
}

/// A D4RL file's floats at the precision the file stored them (what `read_d4rl` narrows to
/// f32), with its recorded simulator states: what a replay in the simulator compares
/// against (`ofql dataset verify`). Flat row-major arrays.
pub struct FullPrecision {
    /// The float type the file stored observations and actions in.
    pub dtype: Dtype,
    pub rows: usize,
    pub qpos: Vec<f64>,
    pub qvel: Vec<f64>,
    /// The controls after each step (MuJoCo's `data.ctrl`), when the file records them
    /// (Minari's kitchen datasets: `infos/ctrl`); else empty.
    pub ctrl: Vec<f64>,
    pub observations: Vec<f64>,
    pub next_observations: Option<Vec<f64>>,
    pub actions: Actions,
    pub rewards: Vec<f64>,
    pub terminals: Vec<bool>,
    /// None when the file has no `timeouts`.
    pub timeouts: Option<Vec<bool>>,
}

/// Actions in their stored type (a replay computes the control cost in it, as Gymnasium
/// does with the file's arrays).
pub enum Actions {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Read a D4RL file that records simulator states (`infos/qpos`, `infos/qvel`) at full
/// precision. The layout and shapes are checked by [`read_d4rl`] first.
pub fn read_d4rl_full_precision(path: &Path) -> Result<FullPrecision> {
    let data = read_d4rl(path)?;
    if data.qpos.is_none() || data.qvel.is_none() {
        bail!(
            "{} has no infos/qpos and infos/qvel: a replay needs the recorded simulator states \
             (D4RL's gym_mujoco_v2 files have them; Minari and parquet conversions do not)",
            path.display()
        );
    }
    let file = open_hdf5(path)?;
    let reader = Reader { file: &file, path };
    let f64s = |key: &str| reader.raw::<f64>(key);
    Ok(FullPrecision {
        dtype: data.dtype,
        rows: data.len(),
        qpos: f64s("infos/qpos")?,
        qvel: f64s("infos/qvel")?,
        ctrl: Vec::new(),
        observations: f64s("observations")?,
        next_observations: data
            .next_observations
            .as_ref()
            .map(|_| f64s("next_observations"))
            .transpose()?,
        actions: match data.dtype {
            Dtype::F32 => Actions::F32(reader.raw::<f32>("actions")?),
            Dtype::F64 => Actions::F64(f64s("actions")?),
        },
        rewards: f64s("rewards")?,
        terminals: data.terminals.to_vec(),
        timeouts: data.has_timeouts.then(|| data.timeouts.to_vec()),
    })
}

/// Write `data` in D4RL's layout (gzip, chunked), floats as `dtype`, rewards as (N,),
/// booleans as h5py writes them. `timeouts` is written only if the data had them.
pub fn write_d4rl(path: &Path, data: &Dataset, dtype: Dtype) -> Result<()> {
    let file =
        hdf5::File::create(path).with_context(|| format!("create HDF5 file {}", path.display()))?;
    hdf5_io::write_floats(&file, "observations", data.observations.view(), dtype)?;
    hdf5_io::write_floats(&file, "actions", data.actions.view(), dtype)?;
    hdf5_io::write_floats(&file, "rewards", data.rewards.view(), dtype)?;
    hdf5_io::write_array(&file, "terminals", data.terminals.view())?;
    if data.has_timeouts {
        hdf5_io::write_array(&file, "timeouts", data.timeouts.view())?;
    }
    if let Some(next) = &data.next_observations {
        hdf5_io::write_floats(&file, "next_observations", next.view(), dtype)?;
    }
    if data.qpos.is_some() || data.qvel.is_some() {
        let infos = file.create_group("infos")?;
        for (key, arr) in [("qpos", &data.qpos), ("qvel", &data.qvel)] {
            if let Some(arr) = arr {
                hdf5_io::write_floats(&infos, key, arr.view(), dtype)?;
            }
        }
    }
    if !data.metadata.is_empty() {
        let meta = file.create_group("metadata")?;
        for (key, value) in &data.metadata {
            let (group, name) = match key.rsplit_once('/') {
                Some((parent, name)) => (ensure_group(&meta, parent)?, name),
                None => (meta.clone(), key.as_str()),
            };
            hdf5_io::write_scalar_json(&group, name, value)?;
        }
    }
    Ok(())
}

/// Open an HDF5 file, telling a missing file apart from a corrupt one.
pub(crate) fn open_hdf5(path: &Path) -> Result<hdf5::File> {
    if !path.exists() {
        return Err(DataError::MissingFile(path.to_path_buf()).into());
    }
    hdf5_io::open_read_only(path)
        .map_err(|source| DataError::BadHdf5 { path: path.to_path_buf(), source }.into())
}

fn ensure_group(parent: &hdf5::Group, path: &str) -> Result<hdf5::Group> {
    let mut group = parent.clone();
    for part in path.split('/') {
        group = match group.link_exists(part) {
            true => group.group(part)?,
            false => group.create_group(part)?,
        };
    }
    Ok(group)
}

/// Scalar entries under `metadata/`, keyed by their path below it.
fn read_metadata(file: &hdf5::File) -> Result<BTreeMap<String, serde_json::Value>> {
    let mut out = BTreeMap::new();
    if file.link_exists("metadata") {
        collect_scalars(&file.group("metadata")?, "", &mut out)?;
    }
    Ok(out)
}

fn collect_scalars(
    group: &hdf5::Group,
    prefix: &str,
    out: &mut BTreeMap<String, serde_json::Value>,
) -> Result<()> {
    for name in group.member_names()? {
        let key = format!("{prefix}{name}");
        if let Ok(sub) = group.group(&name) {
            collect_scalars(&sub, &format!("{key}/"), out)?;
        } else if let Ok(ds) = group.dataset(&name)
            && let Some(value) = hdf5_io::read_scalar_json(&ds)?
        {
            out.insert(key, value);
        }
    }
    Ok(())
}

/// Reads keys of one open file with errors that name the file and the key.
pub(crate) struct Reader<'a> {
    pub file: &'a hdf5::Group,
    pub path: &'a Path,
}

impl Reader<'_> {
    /// Every present key of `keys` has as many rows as the first, by the headers alone:
    /// checked before anything is read, so a header that lies costs no memory.
    pub fn same_rows(&self, keys: &[&str]) -> Result<()> {
        let mut first: Option<(&str, usize)> = None;
        for &key in keys {
            let Some(ds) = self.optional(key) else { continue };
            let rows = ds.shape().first().copied().unwrap_or(0);
            match first {
                None => first = Some((key, rows)),
                Some((k0, n0)) if n0 != rows => bail!(
                    "{}: `{key}` has {rows} rows but `{k0}` has {n0}: the file is corrupt or not \
                     a D4RL dataset",
                    self.path.display()
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub fn optional(&self, key: &str) -> Option<hdf5::Dataset> {
        // `link_exists` on "a/b" fails when "a" is missing, so walk the path.
        let mut group = self.file.clone();
        let mut parts = key.split('/').peekable();
        while let Some(part) = parts.next() {
            if !group.link_exists(part) {
                return None;
            }
            if parts.peek().is_some() {
                group = group.group(part).ok()?;
            }
        }
        group.dataset(key.rsplit('/').next().unwrap_or(key)).ok()
    }

    pub fn required(&self, key: &str) -> Result<hdf5::Dataset> {
        self.optional(key).ok_or_else(|| {
            DataError::MissingKey { path: self.path.to_path_buf(), key: key.to_string() }.into()
        })
    }

    fn bad_shape(&self, key: &str, shape: Vec<usize>, expected: &str) -> anyhow::Error {
        DataError::BadShape {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            shape,
            expected: expected.to_string(),
        }
        .into()
    }

    /// Every element of a key as `T` (f32 widens to f64 exactly), after the header's size is
    /// checked against what it would take.
    pub fn raw<T: hdf5::H5Type>(&self, key: &str) -> Result<Vec<T>> {
        let ds = self.required(key)?;
        hdf5_io::check_claimed_size(&ds, std::mem::size_of::<T>())?;
        ds.read_raw::<T>().with_context(|| format!("{}: read `{key}`", self.path.display()))
    }

    /// A (N, d) float array; (N,) is read as (N, 1).
    pub fn matrix(&self, key: &str) -> Result<(Array2<f32>, Dtype)> {
        let (values, shape, dtype) = hdf5_io::read_f32_raw(&self.required(key)?)
            .with_context(|| format!("{}: read `{key}`", self.path.display()))?;
        let (rows, cols) = match shape[..] {
            [n] => (n, 1),
            [n, d] => (n, d),
            _ => return Err(self.bad_shape(key, shape, "(N, dim)")),
        };
        Ok((Array2::from_shape_vec((rows, cols), values)?, dtype))
    }

    /// A (N,) or (N, 1) float array.
    pub fn vector(&self, key: &str) -> Result<Array1<f32>> {
        let (values, shape, _) = hdf5_io::read_f32_raw(&self.required(key)?)
            .with_context(|| format!("{}: read `{key}`", self.path.display()))?;
        match shape[..] {
            [_] | [_, 1] => Ok(Array1::from_vec(values)),
            _ => Err(self.bad_shape(key, shape, "(N,) or (N, 1)")),
        }
    }

    /// A (N,) or (N, 1) boolean array.
    pub fn flags(&self, key: &str) -> Result<Array1<bool>> {
        let ds = self.required(key)?;
        match ds.shape()[..] {
            [_] | [_, 1] => {}
            _ => return Err(self.bad_shape(key, ds.shape(), "(N,)")),
        }
        let flags = hdf5_io::read_flags(&ds)
            .with_context(|| format!("{}: read `{key}`", self.path.display()))?;
        Ok(Array1::from_vec(flags))
    }
}

/// Add exact simulator states to a D4RL file written without them: `infos/qpos` and
/// `infos/qvel` as float64. A generator that keeps its states at full precision records them
/// this way, so that `ofql dataset verify` replays the file with an error of exactly 0.
pub fn write_states_f64(path: &Path, qpos: &Array2<f64>, qvel: &Array2<f64>) -> Result<()> {
    let file = hdf5::File::open_rw(path)
        .with_context(|| format!("open HDF5 file {} for writing", path.display()))?;
    if file.link_exists("infos") {
        anyhow::bail!("{} already has infos/: write it without qpos/qvel first", path.display());
    }
    let infos = file.create_group("infos")?;
    hdf5_io::write_array(&infos, "qpos", qpos.view())?;
    hdf5_io::write_array(&infos, "qvel", qvel.view())?;
    Ok(())
}
