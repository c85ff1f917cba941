//! Summary statistics of a dataset, for reports and optional observation normalisation.

use serde::Serialize;

use crate::dataset::Dataset;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub rows: usize,
    pub episodes: usize,
    /// Per-dimension mean and (population) standard deviation of the observations.
    pub obs_mean: Vec<f32>,
    pub obs_std: Vec<f32>,
    pub reward_min: f32,
    pub reward_max: f32,
    pub reward_mean: f64,
    /// Undiscounted return of every episode, in file order.
    pub episode_returns: Vec<f64>,
    pub return_mean: f64,
    pub return_std: f64,
    pub return_min: f64,
    pub return_max: f64,
}

impl Stats {
    pub fn of(data: &Dataset) -> Self {
        let d = data.obs_dim();
        let n = data.len().max(1) as f64;
        // Accumulate in f64: 2M rows of f32 sums lose digits otherwise.
        let mut sum = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for row in data.observations.outer_iter() {
            for (j, &x) in row.iter().enumerate() {
                sum[j] += f64::from(x);
                sq[j] += f64::from(x) * f64::from(x);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std: Vec<f64> =
            sq.iter().zip(&mean).map(|(q, m)| (q / n - m * m).max(0.0).sqrt()).collect();
        let returns: Vec<f64> = data.episodes().iter().map(|e| e.ret).collect();
        let (return_mean, return_std) = mean_std(&returns);
        let fold = |init: f64, f: fn(f64, f64) -> f64| returns.iter().copied().fold(init, f);
        Stats {
            rows: data.len(),
            episodes: returns.len(),
            obs_mean: mean.iter().map(|&m| m as f32).collect(),
            obs_std: std.iter().map(|&s| s as f32).collect(),
            reward_min: data.rewards.iter().copied().fold(f32::INFINITY, f32::min),
            reward_max: data.rewards.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            reward_mean: data.rewards.iter().map(|&r| f64::from(r)).sum::<f64>() / n,
            return_mean,
            return_std,
            return_min: fold(f64::INFINITY, f64::min),
            return_max: fold(f64::NEG_INFINITY, f64::max),
            episode_returns: returns,
        }
    }

    /// (mean, std + eps) for `Transitions::normalize_observations`; eps keeps constant
    /// dimensions finite (TD3+BC uses 1e-3).
    pub fn normalizer(&self, eps: f32) -> (Vec<f32>, Vec<f32>) {
        (self.obs_mean.clone(), self.obs_std.iter().map(|s| s + eps).collect())
    }
}

/// Mean and population standard deviation (0, 0 for no values).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, array};

    use super::*;

    #[test]
    fn statistics_match_hand_computed_values() {
        let data = Dataset::new(
            array![[1.0, 5.0], [3.0, 5.0], [5.0, 5.0], [7.0, 5.0]],
            Array2::zeros((4, 1)),
            array![1.0, -2.0, 4.0, 0.5],
            array![false, true, false, false],
            array![false, false, false, true],
        );
        let s = Stats::of(&data);
        assert_eq!(s.obs_mean, vec![4.0, 5.0]);
        assert!((s.obs_std[0] - 5f32.sqrt()).abs() < 1e-6 && s.obs_std[1] == 0.0);
        assert_eq!((s.reward_min, s.reward_max), (-2.0, 4.0));
        assert_eq!(s.episode_returns, vec![-1.0, 4.5]);
        assert_eq!((s.return_mean, s.return_std), (1.75, 2.75));
        assert_eq!((s.return_min, s.return_max, s.episodes), (-1.0, 4.5, 2));
        assert_eq!(s.normalizer(1e-3).1[1], 1e-3);
    }
}
