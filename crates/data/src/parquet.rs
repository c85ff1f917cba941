//! Parquet import and export with polars: one row per step, columns named after the D4RL keys
//! (vectors as fixed-size arrays on export; arrays or lists on import), and the per-episode
//! layout of the Hugging Face mirror `edbeeching/decision_transformer_gym_replay`.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{Array1, Array2};
use polars::prelude::{
    ChunkExplode, Column, DataFrame, DataType, KeyValueMetadata, NamedFrom, ParquetReader,
    ParquetWriter, ReshapeDimension, SerReader, Series,
};
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Dtype};
use crate::error::DataError;

/// Parquet key-value metadata entry holding what the columns cannot (dtype, metadata).
const META_KEY: &str = "ofql";

#[derive(Serialize, Deserialize, Default)]
struct FileMeta {
    dtype: Dtype,
    has_timeouts: bool,
    metadata: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Write one row per step; vectors as `Array(Float32, dim)` columns.
pub fn write_parquet(path: &Path, data: &Dataset) -> Result<()> {
    let mut columns = vec![
        matrix_column("observations", &data.observations)?,
        matrix_column("actions", &data.actions)?,
        Column::new("rewards".into(), data.rewards.to_vec()),
        Column::new("terminals".into(), data.terminals.to_vec()),
        Column::new("timeouts".into(), data.timeouts.to_vec()),
    ];
    for (key, arr) in data.optional_2d() {
        columns.push(matrix_column(key, arr)?);
    }
    let mut df = DataFrame::new(data.len(), columns)?;
    let meta = FileMeta {
        dtype: data.dtype,
        has_timeouts: data.has_timeouts,
        metadata: data.metadata.clone(),
    };
    let kv = KeyValueMetadata::from_static(vec![(META_KEY.into(), serde_json::to_string(&meta)?)]);
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    ParquetWriter::new(file)
        .with_key_value_metadata(Some(kv))
        .finish(&mut df)
        .with_context(|| format!("write parquet {}", path.display()))?;
    Ok(())
}

/// Read a parquet file in either layout (per-step rows, or the HF mirror's per-episode rows).
pub fn read_parquet(path: &Path) -> Result<Dataset> {
    if !path.exists() {
        return Err(DataError::MissingFile(path.to_path_buf()).into());
    }
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut reader = ParquetReader::new(file);
    let meta: Option<FileMeta> = reader
        .get_metadata()
        .ok()
        .and_then(|m| m.key_value_metadata().clone())
        .and_then(|kv| kv.into_iter().find(|e| e.key == META_KEY))
        .and_then(|e| e.value)
        .and_then(|v| serde_json::from_str(&v).ok());
    let df = reader
        .finish()
        .with_context(|| format!("{} is not a readable parquet file", path.display()))?;
    let cols = Columns { df: &df, path };
    let obs = cols.get("observations")?;
    let data = if matches!(obs.dtype(), DataType::List(inner) if matches!(**inner, DataType::List(_)))
    {
        cols.hf_episodes()?
    } else {
        cols.per_step(meta)?
    };
    data.validate(path)?;
    Ok(data)
}

fn matrix_column(name: &str, a: &Array2<f32>) -> Result<Column> {
    let flat: Vec<f32> = a.iter().copied().collect();
    let s = Series::new(name.into(), flat);
    let dims = [ReshapeDimension::new(a.nrows() as i64), ReshapeDimension::new(a.ncols() as i64)];
    Ok(s.reshape_array(&dims)?.into())
}

struct Columns<'a> {
    df: &'a DataFrame,
    path: &'a Path,
}

impl Columns<'_> {
    fn get(&self, key: &str) -> Result<Series> {
        let col = self.df.column(key).map_err(|_| DataError::MissingKey {
            path: self.path.to_path_buf(),
            key: key.to_string(),
        })?;
        let s = col.as_materialized_series().rechunk();
        if s.null_count() > 0 {
            bail!("{}: column `{key}` has null values", self.path.display());
        }
        Ok(s)
    }

    fn optional_matrix(&self, key: &str) -> Result<Option<Array2<f32>>> {
        match self.df.column(key) {
            Ok(_) => Ok(Some(self.matrix(key, &self.get(key)?)?)),
            Err(_) => Ok(None),
        }
    }

    fn matrix(&self, key: &str, s: &Series) -> Result<Array2<f32>> {
        let ctx = || format!("{}: column `{key}`", self.path.display());
        let (values, width) = match s.dtype() {
            DataType::Array(_, width) => {
                (floats(&s.array()?.get_leaf_array()).with_context(ctx)?, *width)
            }
            DataType::List(_) => {
                let (offsets, inner) = list_parts(s)?;
                let width = offsets.get(1).map_or(0, |o| o - offsets[0]);
                if let Some(row) = offsets.windows(2).position(|w| w[1] - w[0] != width) {
                    let got = offsets[row + 1] - offsets[row];
                    bail!("{}: row {row} has {got} values, row 0 has {width}", ctx());
                }
                let used = (offsets[offsets.len() - 1] - offsets[0]) as usize;
                (floats(&inner.slice(offsets[0], used)).with_context(ctx)?, width as usize)
            }
            _ => (floats(s).with_context(ctx)?, 1),
        };
        Ok(Array2::from_shape_vec((s.len(), width), values)?)
    }

    fn vector(&self, key: &str) -> Result<Array1<f32>> {
        let m = self.matrix(key, &self.get(key)?)?;
        if m.ncols() != 1 {
            bail!(
                "{}: column `{key}` has {} values per row, expected 1",
                self.path.display(),
                m.ncols()
            );
        }
        Ok(m.into_shape_with_order(self.df.height())?)
    }

    fn flags(&self, key: &str) -> Result<Array1<bool>> {
        Ok(Array1::from_vec(bools(&self.get(key)?)?))
    }

    fn per_step(&self, meta: Option<FileMeta>) -> Result<Dataset> {
        let meta_or_default = meta.unwrap_or(FileMeta { has_timeouts: true, ..Default::default() });
        let observations = self.matrix("observations", &self.get("observations")?)?;
        let terminals = self.flags("terminals")?;
        let (timeouts, has_timeouts) = match self.df.column("timeouts") {
            Ok(_) => (self.flags("timeouts")?, meta_or_default.has_timeouts),
            Err(_) => (Array1::from_elem(terminals.len(), false), false),
        };
        Ok(Dataset {
            next_observations: self.optional_matrix("next_observations")?,
            qpos: self.optional_matrix("infos/qpos")?,
            qvel: self.optional_matrix("infos/qvel")?,
            has_timeouts,
            metadata: meta_or_default.metadata,
            dtype: meta_or_default.dtype,
            ..Dataset::new(
                observations,
                self.matrix("actions", &self.get("actions")?)?,
                self.vector("rewards")?,
                terminals,
                timeouts,
            )
        })
    }

    /// The HF mirror: one row per episode with list columns `observations` (T x obs_dim),
    /// `actions` (T x act_dim), `rewards` (T) and `dones` (T). An episode whose last `done`
    /// is false was cut by the time limit, so its last step becomes a timeout.
    fn hf_episodes(&self) -> Result<Dataset> {
        let steps = |key: &str| -> Result<(Vec<i64>, Series)> { list_parts(&self.get(key)?) };
        let (ep_offsets, obs_rows) = steps("observations")?;
        let episode_rows = |key: &str| -> Result<Series> {
            let (offsets, inner) = steps(key)?;
            if offsets != ep_offsets {
                bail!(
                    "{}: column `{key}` has episodes of other lengths than `observations`",
                    self.path.display()
                );
            }
            Ok(inner.slice(offsets[0], (offsets[offsets.len() - 1] - offsets[0]) as usize))
        };
        let slice_all = |s: Series| {
            s.slice(ep_offsets[0], (ep_offsets[ep_offsets.len() - 1] - ep_offsets[0]) as usize)
        };
        let observations = self.matrix("observations", &slice_all(obs_rows))?;
        let actions = self.matrix("actions", &episode_rows("actions")?)?;
        let rewards = Array1::from_vec(floats(&episode_rows("rewards")?)?);
        let terminals = Array1::from_vec(bools(&episode_rows("dones")?)?);
        let mut timeouts = Array1::from_elem(terminals.len(), false);
        for w in ep_offsets.windows(2) {
            let last = (w[1] - ep_offsets[0]) as usize;
            if w[1] > w[0] && !terminals[last - 1] {
                timeouts[last - 1] = true;
            }
        }
        let mut data = Dataset::new(observations, actions, rewards, terminals, timeouts);
        data.metadata.insert("source".into(), "decision_transformer_gym_replay".into());
        Ok(data)
    }
}

/// Offsets (one more than rows) and the inner values of a list column.
fn list_parts(s: &Series) -> Result<(Vec<i64>, Series)> {
    let ca = s.list().context("expected a list column")?.rechunk();
    let offsets = ca.offsets()?.as_slice().to_vec();
    Ok((offsets, ca.get_inner()))
}

fn floats(s: &Series) -> Result<Vec<f32>> {
    if !s.dtype().is_primitive_numeric() {
        bail!("expected numbers, found {}", s.dtype());
    }
    if s.null_count() > 0 {
        bail!("null values are not allowed");
    }
    let f = s.cast(&DataType::Float32)?;
    Ok(f.f32()?.into_no_null_iter().collect())
}

fn bools(s: &Series) -> Result<Vec<bool>> {
    if s.null_count() > 0 {
        bail!("column `{}` has null values", s.name());
    }
    if s.dtype().is_primitive_numeric() {
        return Ok(floats(s)?.into_iter().map(|v| v != 0.0).collect());
    }
    Ok(s.bool()
        .with_context(|| format!("column `{}` is not boolean", s.name()))?
        .no_null_iter()
        .collect())
}
