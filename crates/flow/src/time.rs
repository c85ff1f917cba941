//! Sampling the time pairs (t, r) of the MeanFlow loss (spec section 3, step 1).

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// How (t, r) pairs are drawn before t = max and r = min.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TimeDist {
    /// sigmoid(N(mu, sigma)), the MeanFlow paper's choice: mu = -0.4, sigma = 1.0.
    LogitNormal {
        mu: f64,
        sigma: f64,
    },
    Uniform,
}

impl Default for TimeDist {
    fn default() -> Self {
        TimeDist::LogitNormal { mu: -0.4, sigma: 1.0 }
    }
}

impl TimeDist {
    fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        match *self {
            TimeDist::LogitNormal { mu, sigma } => {
                let z = Normal::new(mu, sigma).expect("sigma validated positive").sample(rng);
                1.0 / (1.0 + (-z).exp())
            }
            TimeDist::Uniform => rng.random::<f64>(),
        }
    }
}

/// Draw `batch` pairs with r <= t, then set r = t on exactly round(flow_ratio * batch) rows
/// chosen at random (a partial Fisher-Yates shuffle), so the ratio holds in every batch.
pub fn sample_t_r<R: Rng>(
    dist: &TimeDist,
    flow_ratio: f64,
    batch: usize,
    rng: &mut R,
) -> (Vec<f32>, Vec<f32>) {
    assert!((0.0..=1.0).contains(&flow_ratio), "flow_ratio {flow_ratio} outside [0, 1]");
    let mut t = Vec::with_capacity(batch);
    let mut r = Vec::with_capacity(batch);
    for _ in 0..batch {
        let (a, b) = (dist.sample(rng), dist.sample(rng));
        t.push(a.max(b) as f32);
        r.push(a.min(b) as f32);
    }
    let equal = (flow_ratio * batch as f64).round() as usize;
    let mut rows: Vec<usize> = (0..batch).collect();
    for i in 0..equal {
        let j = rng.random_range(i..batch);
        rows.swap(i, j);
        r[rows[i]] = t[rows[i]];
    }
    (t, r)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn ordered_in_range_and_exact_ratio() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (ratio, want) in [(0.5, 128), (0.25, 64), (0.0, 0), (1.0, 256), (0.75, 192)] {
            let (t, r) = sample_t_r(&TimeDist::default(), ratio, 256, &mut rng);
            assert!(t.iter().zip(&r).all(|(t, r)| 0.0 < *r && r <= t && *t < 1.0));
            assert_eq!(t.iter().zip(&r).filter(|(t, r)| t == r).count(), want, "ratio {ratio}");
        }
    }

    #[test]
    fn logit_normal_median_is_sigmoid_mu() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let dist = TimeDist::default();
        let mut xs: Vec<f64> = (0..20_001).map(|_| dist.sample(&mut rng)).collect();
        xs.sort_by(f64::total_cmp);
        let median = xs[10_000];
        let want = 1.0 / (1.0 + 0.4f64.exp());
        assert!((median - want).abs() < 0.01, "median {median} vs {want}");
    }
}
