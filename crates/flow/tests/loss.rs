//! The MeanFlow loss against an independent computation of its target, the flow-matching
//! baseline, the samplers, and a short run that must learn a state-conditional policy.

use candle_core::{DType, Device, Tensor};
use ofql_flow::{
    MeanFlowConfig, TimeDist, euler_sample, flow_matching_loss, mean_flow_sample, meanflow_loss,
    one_step_sample, sample_t_r,
};
use ofql_nets::{Adam, AdamConfig, NamedVars, VelocityConfig, VelocityNet, gaussian};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const B: usize = 16;

fn net(seed: u64, dtype: DType) -> VelocityNet {
    let cfg = VelocityConfig {
        obs_dim: 3,
        act_dim: 2,
        hidden: 32,
        time_dim: 16,
        time_hidden: 24,
        ..Default::default()
    };
    VelocityNet::new(&cfg, dtype, &Device::Cpu, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

fn data(seed: u64) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = gaussian(&mut rng, B, 3, 1.0, DType::F64, &Device::Cpu).unwrap();
    let a = gaussian(&mut rng, B, 2, 0.5, DType::F64, &Device::Cpu).unwrap();
    (s, a)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().unwrap().max_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar().unwrap()
}

#[test]
fn loss_equals_an_independent_computation_with_finite_difference_du_dt() {
    let net = net(1, DType::F64);
    let (s, a) = data(2);
    let cfg = MeanFlowConfig::default();
    let (loss, stats) =
        meanflow_loss(&net, &s, &a, &cfg, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();

    // Replay the same draws: (t, r), then the noise.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (t, r) = sample_t_r(&cfg.time_dist, cfg.flow_ratio, B, &mut rng);
    let col = |x: Vec<f32>| {
        Tensor::from_vec(x, (B, 1), &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap()
    };
    let (t, r) = (col(t), col(r));
    let e = gaussian(&mut rng, B, 2, 1.0, DType::F64, &Device::Cpu).unwrap();
    let v = (&e - &a).unwrap();
    let a_t = (a.broadcast_mul(&t.affine(-1.0, 1.0).unwrap()).unwrap()
        + e.broadcast_mul(&t).unwrap())
    .unwrap();
    // du/dt along (v, 0, 1) by Richardson-extrapolated central differences.
    let u_at = |h: f64| {
        let a_h = (&a_t + (&v * h).unwrap()).unwrap();
        net.forward(&a_h, &r, &(&t + h).unwrap(), &s).unwrap()
    };
    let d = |h: f64| ((u_at(h) - u_at(-h)).unwrap() / (2.0 * h)).unwrap();
    let du_dt = ((d(5e-4) * 4.0).unwrap() - d(1e-3)).unwrap().affine(1.0 / 3.0, 0.0).unwrap();
    let target = (&v - du_dt.broadcast_mul(&(&t - &r).unwrap()).unwrap()).unwrap();
    let want = (u_at(0.0) - target).unwrap().sqr().unwrap().mean_all().unwrap();
    let (got, want): (f64, f64) = (loss.to_scalar().unwrap(), want.to_scalar().unwrap());
    assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
    assert_eq!(stats.loss, got);
    assert!(stats.mean_gap > 0.0 && stats.dudt_rms > 0.0);
}

#[test]
fn gradient_reaches_every_parameter_but_not_through_the_target() {
    let net = net(1, DType::F64);
    let (s, a) = data(2);
    let cfg = MeanFlowConfig::default();
    let (loss, _) = meanflow_loss(&net, &s, &a, &cfg, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    let grads = loss.backward().unwrap();
    // Compare with d/dtheta mean (u - c)^2 for the constant target c = u - (u - target):
    // 2 (u - c) / N du/dtheta. Checked on the output bias, whose du/db is the identity.
    let out_bias =
        net.named_vars().into_iter().find(|(n, _)| n == "mlp.l3.bias").unwrap().1.clone();
    let g: Vec<f64> = grads.get(out_bias.as_tensor()).unwrap().to_vec1().unwrap();
    assert!(net.vars().iter().all(|v| grads.get(v.as_tensor()).is_some()));
    // With a target that moved with u, this gradient would be (1 - d target / du)-scaled;
    // through the stop-gradient it is the plain residual mean.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (t, r) = sample_t_r(&cfg.time_dist, cfg.flow_ratio, B, &mut rng);
    let col = |x: Vec<f32>| {
        Tensor::from_vec(x, (B, 1), &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap()
    };
    let (t, r) = (col(t), col(r));
    let e = gaussian(&mut rng, B, 2, 1.0, DType::F64, &Device::Cpu).unwrap();
    let v = (&e - &a).unwrap();
    let a_t = (&a + v.broadcast_mul(&t).unwrap()).unwrap();
    let (u, du) = net
        .forward_with_tangent(
            &a_t,
            &r,
            &t,
            &s,
            &v,
            &t.zeros_like().unwrap(),
            &t.ones_like().unwrap(),
        )
        .unwrap();
    let resid = (u - (v - du.broadcast_mul(&(&t - &r).unwrap()).unwrap()).unwrap()).unwrap();
    let want: Vec<f64> =
        (resid.sum(0).unwrap() * (2.0 / (B * 2) as f64)).unwrap().to_vec1().unwrap();
    for (g, w) in g.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
}

#[test]
fn flow_ratio_one_is_flow_matching() {
    let net = net(1, DType::F64);
    let (s, a) = data(2);
    let cfg = MeanFlowConfig { flow_ratio: 1.0, time_dist: TimeDist::Uniform };
    let (mf, _) = meanflow_loss(&net, &s, &a, &cfg, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    let (fm, _) =
        flow_matching_loss(&net, &s, &a, &TimeDist::Uniform, &mut ChaCha8Rng::seed_from_u64(5))
            .unwrap();
    assert!(max_abs(&(mf - fm).unwrap()) < 1e-14);
}

#[test]
fn samplers_are_the_formulas_of_the_spec() {
    let net = net(1, DType::F64);
    let (s, _) = data(2);
    let dev = Device::Cpu;
    let e = gaussian(&mut ChaCha8Rng::seed_from_u64(7), B, 2, 1.0, DType::F64, &dev).unwrap();
    let (zeros, ones) = (
        Tensor::zeros((B, 1), DType::F64, &dev).unwrap(),
        Tensor::ones((B, 1), DType::F64, &dev).unwrap(),
    );
    let one = one_step_sample(&net, &s, &e).unwrap();
    let want = (&e - net.forward(&e, &zeros, &ones, &s).unwrap()).unwrap();
    assert!(max_abs(&(&one - want).unwrap()) < 1e-15);
    assert!(max_abs(&(&one - mean_flow_sample(&net, &s, &e, 1).unwrap()).unwrap()) < 1e-15);
    // Euler, 2 steps: a_1/2 = e - v(e, 1) / 2, a_0 = a_1/2 - v(a_1/2, 1/2) / 2.
    let half = (&ones * 0.5).unwrap();
    let mid = (&e - (net.forward(&e, &ones, &ones, &s).unwrap() * 0.5).unwrap()).unwrap();
    let end = (&mid - (net.forward(&mid, &half, &half, &s).unwrap() * 0.5).unwrap()).unwrap();
    assert!(max_abs(&(euler_sample(&net, &s, &e, 2).unwrap() - end).unwrap()) < 1e-15);
    // The one-step sample is differentiable in the network's parameters.
    let grads = one.sum_all().unwrap().backward().unwrap();
    assert!(net.vars().iter().all(|v| grads.get(v.as_tensor()).is_some()));
    let clamped = ofql_flow::clamp_actions(&(&one * 100.0).unwrap(), -1.0, 1.0).unwrap();
    assert!(max_abs(&clamped) <= 1.0);
}

#[test]
fn short_training_learns_a_state_conditional_action() {
    // s = +1 -> a = (0.5, -0.3); s = -1 -> a = (-0.5, 0.3). The one-step sampler must land
    // near the right action for each state after a few hundred steps (spec section 2's claim).
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let cfg = VelocityConfig { obs_dim: 1, act_dim: 2, hidden: 64, ..Default::default() };
    let net = VelocityNet::new(&cfg, DType::F32, &dev, &mut rng).unwrap();
    let mut adam =
        Adam::new(net.prefixed_vars("actor"), AdamConfig { lr: 1e-3, ..Default::default() })
            .unwrap();
    let n = 128;
    let signs: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let s = Tensor::from_vec(signs.clone(), (n, 1), &dev).unwrap();
    let a: Vec<f32> = signs.iter().flat_map(|g| [0.5 * g, -0.3 * g]).collect();
    let a = Tensor::from_vec(a, (n, 2), &dev).unwrap();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..600 {
        let (loss, stats) =
            meanflow_loss(&net, &s, &a, &MeanFlowConfig::default(), &mut rng).unwrap();
        adam.step(&loss.backward().unwrap()).unwrap();
        first.get_or_insert(stats.loss);
        last = stats.loss;
    }
    assert!(last < 0.2 * first.unwrap(), "loss {first:?} -> {last}");
    let e = gaussian(&mut rng, n, 2, 1.0, DType::F32, &dev).unwrap();
    let miss = (one_step_sample(&net, &s, &e).unwrap() - &a).unwrap().abs().unwrap();
    let mean: f32 = miss.mean_all().unwrap().to_scalar().unwrap();
    let worst = max_abs(&miss);
    eprintln!("mean {mean} worst {worst}");
    assert!(
        mean < 0.1 && worst < 0.5,
        "one-step samples miss the action by {mean} (worst {worst})"
    );
    // Without training the same sampler is far off.
    let fresh = VelocityNet::new(&cfg, DType::F32, &dev, &mut rng).unwrap();
    let miss: f32 = (one_step_sample(&fresh, &s, &e).unwrap() - &a)
        .unwrap()
        .abs()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(miss > 0.3, "{miss}");
}
