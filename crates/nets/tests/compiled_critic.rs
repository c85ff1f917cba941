//! The compiled critics (`CompiledDoubleQ`, the Q-softmax protocol's one-observation path)
//! compute the critics' min.

use candle_core::{DType, Device, Tensor};
use ofql_nets::{CompiledDoubleQ, DoubleQ};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The compiled critics score K actions of one observation as the network does.
#[test]
fn compiled_critics_match_the_network() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (s, a, k) = (17, 6, 50);
    let q = DoubleQ::new(s, a, 256, 3, DType::F32, &dev, &mut rng).unwrap();
    let mut compiled = CompiledDoubleQ::new(&q, a).unwrap();
    let obs: Vec<f32> = (0..s).map(|_| rng.random_range(-3.0..3.0)).collect();
    let acts: Vec<f32> = (0..k * a).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut fast = vec![0f32; k];
    compiled.min_q(&obs, &acts, &mut fast);

    let obs_k: Vec<f32> = obs.iter().copied().cycle().take(k * s).collect();
    let obs_k = Tensor::from_vec(obs_k, (k, s), &dev).unwrap();
    let acts = Tensor::from_vec(acts, (k, a), &dev).unwrap();
    let slow: Vec<f32> = q.min(&obs_k, &acts).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let spread = slow.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(spread > 1e-3, "the values must differ from zero to compare anything");
    for (f, s) in fast.iter().zip(&slow) {
        assert!((f - s).abs() <= 1e-5 * s.abs().max(1.0), "{fast:?} vs {slow:?}");
    }
}
