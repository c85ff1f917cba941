//! The deployment path (`Decider`: compiled EMA actor and target critics, observation
//! normalisation, noise, clamp, Q-softmax) decides what the tensor path (`select_actions`)
//! decides for the same observation and the same random stream, under both protocols.

use candle_core::{Device, Tensor};
use ofql_algo::policy::{Decider, Protocol, select_actions};
use ofql_algo::prepare::ObsNorm;
use ofql_algo::{Config, agent};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn plain_decider_matches_select_actions() {
    decider_matches_select_actions(Protocol::Plain, 1);
}

#[test]
fn q_softmax_decider_matches_select_actions() {
    // A small q_weight so the draw is not always the argmax: the random stream matters too.
    for q_weight in [50.0, 0.5] {
        let protocol = Protocol::CleanDiffuser { candidates: 50, temperature: 0.5, q_weight };
        // Split between 1, 2 and 3 threads (shares of 50, 25 and 17 candidates).
        for threads in [1, 2, 3] {
            decider_matches_select_actions(protocol, threads);
        }
    }
}

/// The same for Diffusion-QL's compiled T-step chain.
#[test]
fn dql_decider_matches_select_actions() {
    decider_matches_select_actions_for("dql", Protocol::Plain, 1);
    let protocol = Protocol::CleanDiffuser { candidates: 50, temperature: 0.5, q_weight: 0.5 };
    for threads in [1, 2] {
        decider_matches_select_actions_for("dql", protocol, threads);
    }
}

/// And for Flow Q-Learning's one-step policy and ensemble (on the tensor path).
#[test]
fn fql_decider_matches_select_actions() {
    decider_matches_select_actions_for("fql", Protocol::Plain, 1);
    let protocol = Protocol::CleanDiffuser { candidates: 50, temperature: 0.5, q_weight: 0.5 };
    for threads in [1, 2] {
        decider_matches_select_actions_for("fql", protocol, threads);
    }
}

fn decider_matches_select_actions(protocol: Protocol, threads: usize) {
    decider_matches_select_actions_for("ofql", protocol, threads)
}

fn decider_matches_select_actions_for(method: &str, protocol: Protocol, threads: usize) {
    let (d, a) = (17, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let norm = ObsNorm {
        mean: (0..d).map(|_| rng.random_range(-1.0..1.0)).collect(),
        std: (0..d).map(|_| rng.random_range(0.5..2.0)).collect(),
    };
    let mut cfg = Config::default();
    cfg.algo.name = method.into();
    let agent = agent::build(&cfg, d, a, Some(norm.clone()), &Device::Cpu).unwrap();
    let agent = agent.as_ref();
    let mut decider = Decider::with_threads(agent, protocol, threads).unwrap();
    let mut clamped = 0;
    for seed in 0..20 {
        let raw: Vec<f32> = (0..d).map(|_| rng.random_range(-4.0..4.0)).collect();
        let mut fast = vec![0f32; a];
        let mut decider_stream = ChaCha8Rng::seed_from_u64(seed);
        decider.act(&raw, &mut decider_stream, &mut fast);

        let mut normed = raw.clone();
        norm.apply(&mut normed);
        let obs = Tensor::from_slice(&normed, (1, d), &Device::Cpu).unwrap();
        let mut same_stream = ChaCha8Rng::seed_from_u64(seed);
        let slow = select_actions(agent, &obs, protocol, &mut same_stream).unwrap();
        let slow: Vec<f32> = slow.flatten_all().unwrap().to_vec1().unwrap();
        for (f, s) in fast.iter().zip(&slow) {
            assert!(
                (f - s).abs() < 1e-5,
                "{method} {protocol:?} {threads} threads, seed {seed}: {fast:?} vs {slow:?}"
            );
            clamped += (s.abs() == 1.0) as usize;
        }
        // Both consumed the same draws.
        assert_eq!(decider_stream.random::<u64>(), same_stream.random::<u64>(), "seed {seed}");
    }
    assert!(clamped < 20 * a, "some actions must be inside the bounds to compare anything");
}
