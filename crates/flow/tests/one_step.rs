//! The compiled one-step policy computes the same function as `one_step_sample` on the
//! velocity network it was compiled from: a = noise - u(noise, r = 0, t = 1 | s), for separate
//! and shared time-MLPs, one noise vector or K of them.

use candle_core::{DType, Device, Tensor};
use ofql_flow::{OneStepPolicy, one_step_sample};
use ofql_nets::{VelocityConfig, VelocityNet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn compiled_policy_matches_the_network() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for share in [true, false] {
        let cfg = VelocityConfig {
            obs_dim: 17,
            act_dim: 6,
            share_time_mlp: share,
            ..VelocityConfig::default()
        };
        let net = VelocityNet::new(&cfg, DType::F32, &dev, &mut rng).unwrap();
        let mut policy = OneStepPolicy::new(&net).unwrap();
        let mut worst = 0f32;
        for _ in 0..20 {
            let obs: Vec<f32> = (0..17).map(|_| rng.random_range(-3.0..3.0)).collect();
            let noise: Vec<f32> = (0..6).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut fast = vec![0f32; 6];
            policy.sample(&obs, &noise, &mut fast);

            let s = Tensor::from_slice(&obs, (1, 17), &dev).unwrap();
            let z = Tensor::from_slice(&noise, (1, 6), &dev).unwrap();
            let slow = one_step_sample(&net, &s, &z).unwrap();
            let slow: Vec<f32> = slow.flatten_all().unwrap().to_vec1().unwrap();
            for (f, s) in fast.iter().zip(&slow) {
                worst = worst.max((f - s).abs() / s.abs().max(1.0));
            }
        }
        // Only the order of float32 sums differs from the GEMM's.
        assert!(worst < 1e-5, "share_time_mlp {share}: worst relative difference {worst}");
    }
}

/// K candidates for one observation (the Q-softmax protocol's batch) give, row for row, the
/// single-sample result.
#[test]
fn many_samples_match_one_at_a_time() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let cfg = VelocityConfig { obs_dim: 17, act_dim: 6, ..VelocityConfig::default() };
    let net = VelocityNet::new(&cfg, DType::F32, &dev, &mut rng).unwrap();
    let mut policy = OneStepPolicy::new(&net).unwrap();
    let obs: Vec<f32> = (0..17).map(|_| rng.random_range(-3.0..3.0)).collect();
    for k in [1, 7, 50] {
        let noise: Vec<f32> = (0..k * 6).map(|_| rng.random_range(-2.0..2.0)).collect();
        let mut many = vec![0f32; k * 6];
        policy.sample_many(&obs, &noise, &mut many);
        for (row, z) in noise.chunks(6).enumerate() {
            let mut one = [0f32; 6];
            policy.sample(&obs, z, &mut one);
            for (m, o) in many[row * 6..row * 6 + 6].iter().zip(&one) {
                assert!((m - o).abs() <= 1e-5 * o.abs().max(1.0), "k {k} row {row}: {m} vs {o}");
            }
        }
    }
}
