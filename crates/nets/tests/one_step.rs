//! The compiled one-step policy computes the same function as the velocity network it was
//! compiled from: a = noise - u(noise, r = 0, t = 1 | s), for separate and shared time-MLPs.

use candle_core::{DType, Device, Tensor};
use ofql_nets::{OneStepPolicy, VelocityConfig, VelocityNet};
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
            let r = Tensor::zeros((1, 1), DType::F32, &dev).unwrap();
            let t = Tensor::ones((1, 1), DType::F32, &dev).unwrap();
            let u = net.forward(&z, &r, &t, &s).unwrap();
            let slow: Vec<f32> = (z - u).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            for (f, s) in fast.iter().zip(&slow) {
                worst = worst.max((f - s).abs() / s.abs().max(1.0));
            }
        }
        // Only the order of float32 sums differs from the GEMM's.
        assert!(worst < 1e-5, "share_time_mlp {share}: worst relative difference {worst}");
    }
}
