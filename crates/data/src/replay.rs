//! Uniform replay over transitions held as contiguous f32 arrays.

use candle_core::{Device, Tensor};
use rand::Rng;

use crate::transitions::Transitions;

/// One sampled batch: s (B, obs_dim), a (B, act_dim), r (B, 1), s' (B, obs_dim), d (B, 1).
#[derive(Debug, Clone)]
pub struct Batch {
    pub observations: Tensor,
    pub actions: Tensor,
    pub rewards: Tensor,
    pub next_observations: Tensor,
    pub dones: Tensor,
}

/// All transitions in memory; sampling gathers rows straight into each tensor's buffer,
/// so a batch costs five allocations whatever its size, none per row.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    data: Transitions,
    device: Device,
}

impl ReplayBuffer {
    pub fn new(data: Transitions) -> Self {
        Self::on_device(data, Device::Cpu)
    }

    pub fn on_device(data: Transitions, device: Device) -> Self {
        ReplayBuffer { data, device }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn transitions(&self) -> &Transitions {
        &self.data
    }

    /// Grow the buffer by one transition (online learning).
    pub fn push(&mut self, obs: &[f32], action: &[f32], reward: f32, next_obs: &[f32], done: bool) {
        self.data.push(obs, action, reward, next_obs, done);
    }

    /// `batch` rows drawn uniformly with replacement; the same rng state gives the same batch.
    pub fn sample<R: Rng + ?Sized>(&self, batch: usize, rng: &mut R) -> candle_core::Result<Batch> {
        if self.is_empty() {
            candle_core::bail!("cannot sample from an empty replay buffer");
        }
        let n = self.len();
        let mut rows = Vec::with_capacity(batch);
        rows.extend((0..batch).map(|_| rng.random_range(0..n)));
        self.gather(&rows)
    }

    /// The batch made of the given rows, in order.
    pub fn gather(&self, rows: &[usize]) -> candle_core::Result<Batch> {
        let t = &self.data;
        let (d, a) = (t.obs_dim, t.act_dim);
        let b = rows.len();
        let tensor = |src: &[f32], width: usize| {
            let mut buf = Vec::with_capacity(b * width);
            for &i in rows {
                buf.extend_from_slice(&src[i * width..(i + 1) * width]);
            }
            Tensor::from_vec(buf, (b, width), &self.device)
        };
        Ok(Batch {
            observations: tensor(&t.observations, d)?,
            actions: tensor(&t.actions, a)?,
            rewards: tensor(&t.rewards, 1)?,
            next_observations: tensor(&t.next_observations, d)?,
            dones: tensor(&t.dones, 1)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::transitions::NextObs;

    /// Row i holds the value i in every column (plus a column offset), so rows are traceable.
    fn buffer(n: usize) -> ReplayBuffer {
        let (d, a) = (3, 2);
        let rows = |w: usize, off: f32| -> Vec<f32> {
            (0..n).flat_map(|i| (0..w).map(move |j| i as f32 + off + j as f32 * 0.1)).collect()
        };
        ReplayBuffer::new(Transitions {
            obs_dim: d,
            act_dim: a,
            observations: rows(d, 0.0),
            actions: rows(a, 0.01),
            rewards: rows(1, 0.02),
            next_observations: rows(d, 0.03),
            dones: (0..n).map(|i| (i % 2) as f32).collect(),
            next_obs: NextObs::Shifted,
        })
    }

    #[test]
    fn batches_are_aligned_rows_of_the_right_shape() {
        let buf = buffer(50);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let batch = buf.sample(256, &mut rng).unwrap();
        assert_eq!(batch.observations.dims(), &[256, 3]);
        assert_eq!(batch.actions.dims(), &[256, 2]);
        assert_eq!(batch.rewards.dims(), &[256, 1]);
        assert_eq!(batch.next_observations.dims(), &[256, 3]);
        assert_eq!(batch.dones.dims(), &[256, 1]);
        let s = batch.observations.to_vec2::<f32>().unwrap();
        let a = batch.actions.to_vec2::<f32>().unwrap();
        let r = batch.rewards.to_vec2::<f32>().unwrap();
        let s2 = batch.next_observations.to_vec2::<f32>().unwrap();
        let done = batch.dones.to_vec2::<f32>().unwrap();
        for k in 0..256 {
            let i = s[k][0].round();
            assert!((s[k][2] - (i + 0.2)).abs() < 1e-5);
            assert!((a[k][1] - (i + 0.11)).abs() < 1e-5);
            assert!((r[k][0] - (i + 0.02)).abs() < 1e-5);
            assert!((s2[k][0] - (i + 0.03)).abs() < 1e-5);
            assert_eq!(done[k][0], (i as usize % 2) as f32);
        }
    }

    #[test]
    fn sampling_is_seeded_and_covers_the_buffer_uniformly() {
        let buf = buffer(10);
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            buf.sample(4000, &mut rng)
                .unwrap()
                .rewards
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let mut counts = [0usize; 10];
        for r in draw(3) {
            counts[r.round() as usize] += 1;
        }
        // 400 expected per row; a 6-sigma band (sigma ~19) cannot fail by chance.
        assert!(counts.iter().all(|&c| (285..=515).contains(&c)), "{counts:?}");
    }

    #[test]
    fn empty_buffer_is_an_error_not_a_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(buffer(0).sample(8, &mut rng).is_err());
    }
}
