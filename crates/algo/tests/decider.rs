//! The deployment path (`PlainDecider`: compiled EMA actor, observation normalisation,
//! noise, clamp) decides what the tensor path (`select_actions`, plain protocol) decides for
//! the same observation and the same random stream.

use candle_core::{Device, Tensor};
use ofql_algo::policy::{PlainDecider, Protocol, select_actions};
use ofql_algo::prepare::ObsNorm;
use ofql_algo::{Config, Ofql};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn plain_decider_matches_select_actions() {
    let (d, a) = (17, 6);
    let mut agent = Ofql::new(&Config::default(), d, a, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let norm = ObsNorm {
        mean: (0..d).map(|_| rng.random_range(-1.0..1.0)).collect(),
        std: (0..d).map(|_| rng.random_range(0.5..2.0)).collect(),
    };
    agent.obs_norm = Some(norm.clone());
    let mut decider = PlainDecider::new(&agent).unwrap();
    let mut clamped = 0;
    for seed in 0..20 {
        let raw: Vec<f32> = (0..d).map(|_| rng.random_range(-4.0..4.0)).collect();
        let mut fast = vec![0f32; a];
        decider.act(&raw, &mut ChaCha8Rng::seed_from_u64(seed), &mut fast);

        let mut normed = raw.clone();
        norm.apply(&mut normed);
        let obs = Tensor::from_slice(&normed, (1, d), &Device::Cpu).unwrap();
        let mut same_stream = ChaCha8Rng::seed_from_u64(seed);
        let slow = select_actions(&agent, &obs, Protocol::Plain, &mut same_stream).unwrap();
        let slow: Vec<f32> = slow.flatten_all().unwrap().to_vec1().unwrap();
        for (f, s) in fast.iter().zip(&slow) {
            assert!((f - s).abs() < 1e-5, "seed {seed}: {fast:?} vs {slow:?}");
            clamped += (s.abs() == 1.0) as usize;
        }
    }
    assert!(clamped < 20 * a, "some actions must be inside the bounds to compare anything");
}
