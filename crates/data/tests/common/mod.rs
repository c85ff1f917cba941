//! Small datasets the tests make themselves.

#![allow(dead_code)]

use ndarray::{Array1, Array2};
use ofql_data::Dataset;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Three episodes of lengths 4 (terminal), 5 (timeout) and 3 (data ends), obs_dim 3,
/// act_dim 2, with next_observations, qpos/qvel and scalar metadata. Values are random
/// but seeded, and dyadic so that f32 -> f64 -> f32 is exact.
pub fn sample_dataset() -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 12;
    let mut draw = |r: usize, c: usize| {
        Array2::from_shape_fn((r, c), |_| (rng.random_range(-512..512) as f32) / 64.0)
    };
    let observations = draw(n, 3);
    let mut next = draw(n, 3);
    // As in real data, s' is the next row's s except where an episode ends.
    for i in (0..n - 1).filter(|i| ![3, 8].contains(i)) {
        let row = observations.row(i + 1).to_owned();
        next.row_mut(i).assign(&row);
    }
    let actions = draw(n, 2);
    let qpos = draw(n, 4);
    let qvel = draw(n, 3);
    let rewards = Array1::from_iter((0..n).map(|i| i as f32 * 0.25 - 1.0));
    let mut terminals = Array1::from_elem(n, false);
    let mut timeouts = Array1::from_elem(n, false);
    terminals[3] = true;
    timeouts[8] = true;
    let mut d = Dataset::new(observations, actions, rewards, terminals, timeouts);
    d.next_observations = Some(next);
    d.qpos = Some(qpos);
    d.qvel = Some(qvel);
    d.metadata.insert("algorithm".into(), "SAC".into());
    d.metadata.insert("iteration".into(), 42.into());
    d.metadata.insert("policy/std".into(), 0.5.into());
    d
}
