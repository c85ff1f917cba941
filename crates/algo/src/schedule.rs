//! How one update spreads over threads, kept apart from what the update computes.
//!
//! Two kinds of parallel work, both on rayon's pool:
//! - row shards: a batch cut into one block of rows per thread (at least 64 rows each: a
//!   matrix product on fewer rows wastes most of a core). Each shard's loss is its rows'
//!   share of the batch loss, so the shards' gradients add up to the batch gradient; only
//!   the order of that sum depends on the thread count (1e-7 relative).
//! - side by side: two computations that share nothing, each on the whole batch.

use std::ops::Range;

use anyhow::{Context, Result};
use candle_core::Tensor;
use ofql_data::replay::Batch;
use rayon::prelude::*;

/// The row shards of a batch.
pub struct Shards(Vec<Range<usize>>);

impl Shards {
    /// `n` rows over `threads` threads.
    pub fn new(n: usize, threads: usize) -> Shards {
        let parts = threads.min(n / 64).max(1);
        let len = n.div_ceil(parts);
        Shards(
            (0..parts).map(|i| i * len..((i + 1) * len).min(n)).filter(|r| !r.is_empty()).collect(),
        )
    }

    /// More than one shard: there are threads to share work with.
    pub fn parallel(&self) -> bool {
        self.0.len() > 1
    }

    /// `f(i, rows)` for every shard, side by side when there are several; results in shard
    /// order.
    pub fn map<T: Send>(
        &self,
        f: impl Fn(usize, Range<usize>) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        if let [only] = &self.0[..] {
            return Ok(vec![f(0, only.clone())?]);
        }
        self.0.par_iter().enumerate().map(|(i, rows)| f(i, rows.clone())).collect()
    }
}

/// `f()`, on one of rayon's workers when `parallel` (the caller waits). The update's joins
/// then hand work to the other workers by work stealing, instead of waking the pool from
/// outside for each of a step's ten or so parallel sections (0.2-0.3 ms of a 6.2 ms step on
/// 2 threads).
pub fn on_a_worker<T: Send>(parallel: bool, f: impl FnOnce() -> T + Send) -> T {
    if parallel && rayon::current_thread_index().is_none() {
        return rayon::scope(|_| f());
    }
    f()
}

/// (f(), g()), side by side when `parallel`.
pub fn side_by_side<A: Send, B: Send>(
    parallel: bool,
    f: impl FnOnce() -> A + Send,
    g: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel { rayon::join(f, g) } else { (f(), g()) }
}

/// The rows `rows` of every tensor of a batch.
pub fn rows_of(batch: &Batch, rows: &Range<usize>) -> Result<Batch> {
    let part = |t: &Tensor| t.narrow(0, rows.start, rows.len());
    Ok(Batch {
        observations: part(&batch.observations)?,
        actions: part(&batch.actions)?,
        rewards: part(&batch.rewards)?,
        next_observations: part(&batch.next_observations)?,
        dones: part(&batch.dones)?,
    })
}

/// The sum of the shards' values, in shard order.
pub fn add_all<'a>(mut parts: impl Iterator<Item = &'a Tensor>) -> Result<Tensor> {
    let first = parts.next().context("a batch has at least one shard")?.clone();
    Ok(parts.try_fold(first, |acc, q| acc + q)?)
}
