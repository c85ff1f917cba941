//! The compiled critics (`CompiledDoubleQ`, the Q-softmax protocol's one-observation path)
//! compute the critics' min.

use candle_core::{DType, Device, Tensor};
use ofql_nets::{CompiledDoubleQ, DoubleQ, GeluMlp, NamedVars};
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

/// FQL's networks (GELU, LayerNorm) compiled by `GeluMlp::compile` compute what the network
/// computes: one row at a time, many rows with a shared observation, and as two critic heads.
#[test]
fn compiled_gelu_networks_match_the_network() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let (s, a, k) = (11, 4, 50);
    for layer_norm in [false, true] {
        let heads: Vec<GeluMlp> = (0..2)
            .map(|_| GeluMlp::new(&[s + a, 64, 64, 64, 1], layer_norm, DType::F32, &dev, &mut rng))
            .collect::<candle_core::Result<_>>()
            .unwrap();
        // LayerNorm starts at scale 1, bias 0: move them so the compiled copy must read them.
        for (name, var) in heads.iter().flat_map(|h| h.named_vars()) {
            if name.starts_with("ln") {
                let v: Vec<f32> =
                    (0..var.elem_count()).map(|_| rng.random_range(0.5..1.5)).collect();
                var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap()).unwrap();
            }
        }
        let obs: Vec<f32> = (0..s).map(|_| rng.random_range(-2.0..2.0)).collect();
        let acts: Vec<f32> = (0..k * a).map(|_| rng.random_range(-1.0..1.0)).collect();
        let rows: Vec<f32> =
            acts.chunks(a).flat_map(|r| obs.iter().chain(r).copied().collect::<Vec<_>>()).collect();
        let x = Tensor::from_vec(rows.clone(), (k, s + a), &dev).unwrap();
        let slow: Vec<Vec<f32>> = heads
            .iter()
            .map(|h| h.forward_frozen(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        let spread = slow[0].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(spread > 1e-3, "the values must differ from zero to compare anything");
        let close = |f: f32, s: f32| (f - s).abs() <= 1e-5 * s.abs().max(1.0);

        let mut compiled = heads[0].compile().unwrap();
        let many = compiled.forward_rows(&acts, s..s + a, &obs, 0..s, k).to_vec();
        for (i, row) in rows.chunks(s + a).enumerate() {
            let one = compiled.forward_one(row)[0];
            assert!(
                close(one, slow[0][i]) && close(many[i], slow[0][i]),
                "row {i}: {one} {} vs {}",
                many[i],
                slow[0][i]
            );
        }

        let (q1, q2) = (heads[0].compile().unwrap(), heads[1].compile().unwrap());
        let mut min_q = vec![0f32; k];
        CompiledDoubleQ::from_heads(q1, q2, a).min_q(&obs, &acts, &mut min_q);
        for (i, q) in min_q.iter().enumerate() {
            assert!(close(*q, slow[0][i].min(slow[1][i])), "min over heads, row {i}");
        }
    }
}
