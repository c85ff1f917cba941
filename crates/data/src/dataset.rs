//! The in-memory dataset: the D4RL keys as contiguous float32 arrays (structure of arrays).

use std::collections::BTreeMap;
use std::fmt;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Floating-point type the data was stored with (D4RL's medium-replay and full-replay are f64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    F32,
    F64,
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        })
    }
}

/// One row per environment step, in file order. Arrays are kept in f32 whatever the source
/// dtype (`dtype` records it), because training runs in f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub observations: Array2<f32>,
    pub actions: Array2<f32>,
    pub rewards: Array1<f32>,
    /// The true s' of each row when the file records it (D4RL `next_observations`, Minari).
    pub next_observations: Option<Array2<f32>>,
    /// The episode ended in a terminal state (no bootstrapping).
    pub terminals: Array1<bool>,
    /// The episode was cut by the time limit after this row.
    pub timeouts: Array1<bool>,
    /// False when the file had no `timeouts` key (all false then; see `TransitionOptions`).
    pub has_timeouts: bool,
    pub qpos: Option<Array2<f32>>,
    pub qvel: Option<Array2<f32>>,
    /// Scalar `metadata/*` entries (strings and numbers); weight arrays are not kept.
    pub metadata: BTreeMap<String, serde_json::Value>,
    pub dtype: Dtype,
}

/// A contiguous run of rows `[start, end)` that forms one episode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Episode {
    pub start: usize,
    pub end: usize,
    pub ret: f64,
    /// Ended by a terminal state (false: time limit, or the data ran out).
    pub terminal: bool,
}

impl Episode {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl Dataset {
    /// A dataset with the required keys only; optional keys are empty.
    pub fn new(
        observations: Array2<f32>,
        actions: Array2<f32>,
        rewards: Array1<f32>,
        terminals: Array1<bool>,
        timeouts: Array1<bool>,
    ) -> Self {
        Dataset {
            observations,
            actions,
            rewards,
            next_observations: None,
            terminals,
            timeouts,
            has_timeouts: true,
            qpos: None,
            qvel: None,
            metadata: BTreeMap::new(),
            dtype: Dtype::F32,
        }
    }

    /// Number of rows (environment steps).
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    pub fn obs_dim(&self) -> usize {
        self.observations.ncols()
    }

    pub fn act_dim(&self) -> usize {
        self.actions.ncols()
    }

    /// Episodes split after every terminal or timeout; trailing rows form a last episode.
    pub fn episodes(&self) -> Vec<Episode> {
        let mut episodes = Vec::new();
        let mut start = 0;
        let mut ret = 0.0f64;
        for i in 0..self.len() {
            ret += f64::from(self.rewards[i]);
            if self.terminals[i] || self.timeouts[i] {
                episodes.push(Episode { start, end: i + 1, ret, terminal: self.terminals[i] });
                start = i + 1;
                ret = 0.0;
            }
        }
        if start < self.len() {
            episodes.push(Episode { start, end: self.len(), ret, terminal: false });
        }
        episodes
    }

    /// Check that every array has one row per step and that the floats are finite.
    /// `source` names the file in the messages.
    pub fn validate(&self, source: &std::path::Path) -> Result<(), DataError> {
        let n = self.observations.nrows();
        let mismatch = |key: &str, got: usize| DataError::LengthMismatch {
            path: source.to_path_buf(),
            key: key.to_string(),
            got,
            reference: "observations".to_string(),
            expected: n,
        };
        let mut rows = vec![
            ("actions", self.actions.nrows()),
            ("rewards", self.rewards.len()),
            ("terminals", self.terminals.len()),
            ("timeouts", self.timeouts.len()),
        ];
        for (key, arr) in self.optional_2d() {
            rows.push((key, arr.nrows()));
        }
        for (key, got) in rows {
            if got != n {
                return Err(mismatch(key, got));
            }
        }
        check_finite_2d("observations", &self.observations)?;
        check_finite_2d("actions", &self.actions)?;
        check_finite_1d("rewards", &self.rewards)?;
        if let Some(next) = &self.next_observations {
            check_finite_2d("next_observations", next)?;
        }
        Ok(())
    }

    /// The rows of `parts` one after another (the shards of one dataset). Every part must have
    /// the same widths and the same optional keys; metadata and dtype come from the first.
    pub fn concat(parts: Vec<Dataset>) -> Result<Dataset, DataError> {
        let Some(first) = parts.first() else {
            return Err(DataError::ShardMismatch("there are no shards".into()));
        };
        let shape = |d: &Dataset| {
            let keys: Vec<_> = d.optional_2d().iter().map(|(k, a)| (*k, a.ncols())).collect();
            (d.obs_dim(), d.act_dim(), keys)
        };
        let expected = shape(first);
        for (i, part) in parts.iter().enumerate().skip(1) {
            let got = shape(part);
            if got != expected {
                return Err(DataError::ShardMismatch(format!(
                    "shard {i} has other columns or widths than shard 0 (obs {} vs {}, actions {} vs {}, optional keys {:?} vs {:?})",
                    got.0, expected.0, got.1, expected.1, got.2, expected.2
                )));
            }
        }
        // Each array is copied once, from all shards at a time.
        let optional = |get: fn(&Dataset) -> &Option<Array2<f32>>| {
            get(first)
                .as_ref()
                .map(|_| stack(parts.iter().filter_map(|p| get(p).as_ref()).map(|a| a.view())))
        };
        let all = Dataset {
            observations: stack(parts.iter().map(|p| p.observations.view())),
            actions: stack(parts.iter().map(|p| p.actions.view())),
            rewards: stack(parts.iter().map(|p| p.rewards.view())),
            next_observations: optional(|d| &d.next_observations),
            terminals: stack(parts.iter().map(|p| p.terminals.view())),
            timeouts: stack(parts.iter().map(|p| p.timeouts.view())),
            has_timeouts: parts.iter().any(|p| p.has_timeouts),
            qpos: optional(|d| &d.qpos),
            qvel: optional(|d| &d.qvel),
            metadata: first.metadata.clone(),
            dtype: first.dtype,
        };
        Ok(all)
    }

    /// The optional 2-D arrays that are present, under their D4RL key.
    pub fn optional_2d(&self) -> Vec<(&'static str, &Array2<f32>)> {
        [
            ("next_observations", &self.next_observations),
            ("infos/qpos", &self.qpos),
            ("infos/qvel", &self.qvel),
        ]
        .into_iter()
        .filter_map(|(k, a)| a.as_ref().map(|a| (k, a)))
        .collect()
    }
}

/// The rows of all `views`, in order (their other axes agree: `concat` checked them).
fn stack<'a, A: Clone + 'a, D: ndarray::RemoveAxis>(
    views: impl Iterator<Item = ndarray::ArrayView<'a, A, D>>,
) -> ndarray::Array<A, D> {
    let views: Vec<_> = views.collect();
    ndarray::concatenate(ndarray::Axis(0), &views).expect("shards of one shape")
}

/// The first non-finite value, scanning rows in order.
pub fn check_finite_2d(key: &str, a: &Array2<f32>) -> Result<(), DataError> {
    for (row, r) in a.outer_iter().enumerate() {
        if let Some((col, &value)) = r.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(DataError::NonFinite { key: key.to_string(), row, col, value });
        }
    }
    Ok(())
}

pub fn check_finite_1d(key: &str, a: &Array1<f32>) -> Result<(), DataError> {
    match a.iter().position(|v| !v.is_finite()) {
        Some(row) => Err(DataError::NonFinite { key: key.to_string(), row, col: 0, value: a[row] }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    fn tiny() -> Dataset {
        Dataset::new(
            Array2::zeros((5, 2)),
            Array2::zeros((5, 1)),
            array![1.0, 2.0, 3.0, 4.0, 5.0],
            array![false, true, false, false, false],
            array![false, false, false, true, false],
        )
    }

    #[test]
    fn episodes_split_after_terminals_and_timeouts() {
        let eps = tiny().episodes();
        let spans: Vec<_> = eps.iter().map(|e| (e.start, e.end, e.ret, e.terminal)).collect();
        assert_eq!(spans, vec![(0, 2, 3.0, true), (2, 4, 7.0, false), (4, 5, 5.0, false)]);
    }

    #[test]
    fn shards_join_in_order_and_mismatched_ones_are_refused() {
        let mut second = tiny();
        second.rewards = array![6.0, 7.0, 8.0, 9.0, 10.0];
        second.has_timeouts = false;
        let both = Dataset::concat(vec![tiny(), second.clone()]).unwrap();
        assert_eq!(both.len(), 10);
        assert_eq!(both.rewards.to_vec(), (1..=10).map(|r| r as f32).collect::<Vec<_>>());
        assert_eq!(both.terminals.iter().filter(|&&t| t).count(), 2);
        assert!(both.has_timeouts);
        // Three shards, each with qpos: every array is joined in order.
        let with_qpos = |first_row: f32| {
            let mut d = tiny();
            d.qpos = Some(Array2::from_shape_fn((5, 3), |(r, c)| {
                first_row + r as f32 + c as f32 / 10.0
            }));
            d
        };
        let three = Dataset::concat(vec![with_qpos(0.0), with_qpos(5.0), with_qpos(10.0)]).unwrap();
        let qpos = three.qpos.as_ref().unwrap();
        assert_eq!(qpos.dim(), (15, 3));
        assert_eq!(qpos.column(0).to_vec(), (0..15).map(|r| r as f32).collect::<Vec<_>>());
        assert_eq!(qpos[[7, 2]], 7.2);
        assert_eq!(three.observations.nrows(), 15);
        second.qpos = Some(Array2::zeros((5, 3)));
        let err = Dataset::concat(vec![tiny(), second]).unwrap_err().to_string();
        assert!(err.contains("shard 1") && err.contains("infos/qpos"), "{err}");
        assert!(Dataset::concat(vec![]).is_err());
    }

    #[test]
    fn validate_reports_the_first_non_finite_row() {
        let mut d = tiny();
        d.observations[[3, 1]] = f32::NAN;
        d.observations[[4, 0]] = f32::INFINITY;
        let msg = d.validate(std::path::Path::new("x.hdf5")).unwrap_err().to_string();
        assert!(msg.contains("`observations`") && msg.contains("row 3, column 1"), "{msg}");
        let mut d = tiny();
        d.rewards[2] = f32::NEG_INFINITY;
        let msg = d.validate(std::path::Path::new("x.hdf5")).unwrap_err().to_string();
        assert!(msg.contains("`rewards`") && msg.contains("row 2"), "{msg}");
    }

    #[test]
    fn validate_reports_unequal_lengths() {
        let mut d = tiny();
        d.actions = Array2::zeros((4, 1));
        let msg = d.validate(std::path::Path::new("x.hdf5")).unwrap_err().to_string();
        assert!(msg.contains("`actions` has 4 rows") && msg.contains("has 5"), "{msg}");
    }
}
