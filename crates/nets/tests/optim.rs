//! Adam against a hand-computed example, clipping, the cosine schedule, Polyak/EMA updates.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use ofql_nets::{
    Adam, AdamConfig, Kernels, Mlp, NamedVars, clip_grad_norm, cosine_lr, ema_update, grad_norm,
    soft_update,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

struct One(Var);
impl NamedVars for One {
    fn named_vars(&self) -> Vec<(String, &Var)> {
        vec![("theta".into(), &self.0)]
    }
}

/// Gradients of loss = sum(g * theta) are exactly g.
fn linear_step(adam: &mut Adam, theta: &Var, g: [f64; 2]) {
    let g = Tensor::new(&g, &Device::Cpu).unwrap();
    let grads = (theta.as_tensor() * g).unwrap().sum_all().unwrap().backward().unwrap();
    adam.step(&grads).unwrap();
}

#[test]
fn adam_two_steps_match_the_hand_computation() {
    for kernels in [Kernels::Fused, Kernels::Unfused] {
        adam_two_steps(kernels);
    }
}

fn adam_two_steps(kernels: Kernels) {
    let theta = Var::new(&[1.0f64, -2.0], &Device::Cpu).unwrap();
    let cfg = AdamConfig { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut adam =
        Adam::new(One(theta.clone()).prefixed_vars("p"), cfg).unwrap().with_kernels(kernels);
    // Step 1, g = (0.5, -1): m = 0.1 g, v = 0.001 g^2, bias-corrected m^ = g, v^ = g^2, so the
    // step is lr * g / (|g| + eps) = 0.1 * sign(g) less an eps-sized 2e-9 / 1e-9.
    linear_step(&mut adam, &theta, [0.5, -1.0]);
    let got: Vec<f64> = theta.to_vec1().unwrap();
    assert!(
        (got[0] - 0.900000002).abs() < 1e-12 && (got[1] + 1.900000001).abs() < 1e-12,
        "{got:?}"
    );
    // Step 2, g = (0.1, 0.3):
    //   m = 0.9 * (0.05, -0.1) + 0.1 * (0.1, 0.3) = (0.055, -0.06)
    //   v = 0.999 * (0.00025, 0.001) + 0.001 * (0.01, 0.09) = (0.00025975, 0.001089)
    //   m^ = m / (1 - 0.81) = (0.2894737, -0.3157895); v^ = v / (1 - 0.998001) = (0.1299400, 0.5447724)
    //   theta -= 0.1 * m^ / (sqrt(v^) + eps) = (0.0803041, -0.0427849)
    linear_step(&mut adam, &theta, [0.1, 0.3]);
    let got: Vec<f64> = theta.to_vec1().unwrap();
    assert!((got[0] - 0.8196959063846517).abs() < 1e-12, "{got:?}");
    assert!((got[1] + 1.8572151424292265).abs() < 1e-12, "{got:?}");
    assert_eq!(adam.steps(), 2);
}

#[test]
fn fused_and_unfused_adam_agree_over_many_steps() {
    let dev = Device::Cpu;
    let cfg = AdamConfig { lr: 1e-2, weight_decay: 0.01, ..Default::default() };
    let x = Tensor::new(&[[0.5f32, -1.0, 2.0], [1.5, 0.2, -0.7]], &dev).unwrap();
    let nets: Vec<Mlp> = (0..2)
        .map(|_| Mlp::new(&[3, 8, 1], DType::F32, &dev, &mut ChaCha8Rng::seed_from_u64(6)).unwrap())
        .collect();
    let mut opts: Vec<Adam> = nets
        .iter()
        .zip([Kernels::Fused, Kernels::Unfused])
        .map(|(n, k)| Adam::new(n.prefixed_vars("n"), cfg).unwrap().with_kernels(k))
        .collect();
    for _ in 0..20 {
        for (net, opt) in nets.iter().zip(&mut opts) {
            let loss = net.forward(&x).unwrap().sqr().unwrap().mean_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
    }
    for (a, b) in nets[0].vars().iter().zip(nets[1].vars()) {
        let err: f32 = (a.as_tensor() - b.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(err < 1e-6, "{err}");
    }
    // And they did move.
    let fresh = Mlp::new(&[3, 8, 1], DType::F32, &dev, &mut ChaCha8Rng::seed_from_u64(6)).unwrap();
    let moved: f32 = (nets[0].vars()[0].as_tensor() - fresh.vars()[0].as_tensor())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(moved > 0.05, "{moved}");
}

#[test]
fn decoupled_weight_decay_shrinks_before_the_step() {
    let theta = Var::new(&[2.0f64, 2.0], &Device::Cpu).unwrap();
    let cfg = AdamConfig { lr: 0.1, weight_decay: 0.5, ..Default::default() };
    let mut adam = Adam::new(One(theta.clone()).prefixed_vars("p"), cfg).unwrap();
    linear_step(&mut adam, &theta, [0.0, 1.0]);
    let got: Vec<f64> = theta.to_vec1().unwrap();
    // 2 * (1 - 0.1 * 0.5) = 1.9; the second also takes the Adam step of ~0.1.
    assert!((got[0] - 1.9).abs() < 1e-12 && (got[1] - 1.8).abs() < 1e-7, "{got:?}");
}

#[test]
fn clipping_returns_the_pre_clip_norm_and_scales_to_the_limit() {
    let a = Var::new(&[3.0f32], &Device::Cpu).unwrap();
    let b = Var::new(&[0.0f32, 0.0], &Device::Cpu).unwrap();
    let loss = ((a.as_tensor() * 3.0).unwrap().sum_all().unwrap()
        + (b.as_tensor() * Tensor::new(&[4.0f32, 0.0], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap())
    .unwrap();
    let mut grads = loss.backward().unwrap();
    let norm = clip_grad_norm(&mut grads, &[a.clone(), b.clone()], 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-6);
    let ga: Vec<f32> = grads.get(&a).unwrap().to_vec1().unwrap();
    let gb: Vec<f32> = grads.get(&b).unwrap().to_vec1().unwrap();
    assert!((ga[0] - 0.6).abs() < 1e-6 && (gb[0] - 0.8).abs() < 1e-6 && gb[1] == 0.0);
    // Under the limit nothing changes.
    let norm = clip_grad_norm(&mut grads, &[a.clone(), b], 10.0).unwrap();
    assert!((norm - 1.0).abs() < 1e-5);
    assert!((grads.get(&a).unwrap().to_vec1::<f32>().unwrap()[0] - 0.6).abs() < 1e-6);
}

#[test]
fn cosine_schedule_endpoints_and_midpoint() {
    assert_eq!(cosine_lr(3e-4, 0.0, 0, 100), 3e-4);
    assert!((cosine_lr(3e-4, 0.0, 50, 100) - 1.5e-4).abs() < 1e-12);
    assert!((cosine_lr(1.0, 0.2, 25, 100) - (0.2 + 0.4 * (1.0 + 0.5f64.sqrt()))).abs() < 1e-12);
    assert_eq!(cosine_lr(3e-4, 1e-5, 100, 100), 1e-5);
    assert_eq!(cosine_lr(3e-4, 1e-5, 1000, 100), 1e-5);
}

#[test]
fn polyak_and_ema_updates_mix_by_name() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let dev = Device::Cpu;
    let source = Mlp::new(&[3, 4, 1], DType::F64, &dev, &mut rng).unwrap();
    let target = Mlp::new(&[3, 4, 1], DType::F64, &dev, &mut rng).unwrap();
    let before: Vec<Tensor> = target.vars().iter().map(|v| v.as_tensor().copy().unwrap()).collect();
    soft_update(&target, &source, 0.25).unwrap();
    for ((t, s), b) in target.vars().iter().zip(source.vars()).zip(&before) {
        let want = ((s.as_tensor() * 0.25).unwrap() + (b * 0.75).unwrap()).unwrap();
        let err: f64 =
            (t.as_tensor() - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(err < 1e-15);
    }
    // EMA with decay d is Polyak with tau = 1 - d; decay 0 copies.
    ema_update(&target, &source, 0.0).unwrap();
    for (t, s) in target.vars().iter().zip(source.vars()) {
        assert_eq!(
            t.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            s.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap()
        );
    }
    // A deep clone is independent of its source.
    let copy = source.deep_clone().unwrap();
    soft_update(&source, &target.deep_clone().unwrap(), 1.0).unwrap();
    let other = Mlp::new(&[3, 4, 2], DType::F64, &dev, &mut rng).unwrap();
    assert!(soft_update(&copy, &other, 0.5).unwrap_err().to_string().contains("l1.weight"));
}

/// f32 values of mixed sign and scale, of length n.
fn values(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    use rand::Rng;
    (0..n).map(|_| rng.random_range(-1.0f32..1.0) * 10f32.powi(rng.random_range(-3..3))).collect()
}

#[test]
fn the_gradient_norm_is_candles_sum_bit_for_bit() {
    // The fused norm sums without a squared copy; it must give candle's own number (the
    // clip factor and the logged norm depend on it), for lengths around its 32-wide blocks.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let lengths = [1usize, 5, 31, 32, 33, 95, 1000, 4099];
    let vars: Vec<Var> = lengths
        .iter()
        .map(|&n| Var::from_slice(&values(n, &mut rng), n, &Device::Cpu).unwrap())
        .collect();
    let mut loss = Tensor::new(0f32, &Device::Cpu).unwrap();
    let mut want = 0.0f64;
    for v in &vars {
        let g =
            Tensor::from_slice(&values(v.elem_count(), &mut rng), v.dims(), &Device::Cpu).unwrap();
        want += g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        loss = (loss + (v.as_tensor() * &g).unwrap().sum_all().unwrap()).unwrap();
    }
    let grads = loss.backward().unwrap();
    let got = grad_norm(&grads, vars.iter()).unwrap();
    assert_eq!(got.to_bits(), want.sqrt().to_bits(), "{got} vs {}", want.sqrt());
}

#[test]
fn a_clipped_step_is_clipping_then_stepping() {
    // step_clipped applies the clip factor inside the fused loop; it must give the same bits
    // as scaling the gradients first and taking a plain step, and stay with the candle-op
    // reference.
    let dev = Device::Cpu;
    let x = Tensor::new(&[[0.5f32, -1.0, 2.0], [1.5, 0.2, -0.7]], &dev).unwrap();
    let net = |_| Mlp::new(&[3, 8, 1], DType::F32, &dev, &mut ChaCha8Rng::seed_from_u64(6));
    let nets: Vec<Mlp> = (0..3).map(|i| net(i).unwrap()).collect();
    let cfg = AdamConfig { lr: 1e-2, ..Default::default() };
    let kernels = [Kernels::Fused, Kernels::Fused, Kernels::Unfused];
    let mut opts: Vec<Adam> = nets
        .iter()
        .zip(kernels)
        .map(|(n, k)| Adam::new(n.prefixed_vars("n"), cfg).unwrap().with_kernels(k))
        .collect();
    for _ in 0..10 {
        let mut norms = Vec::new();
        for (i, (net, opt)) in nets.iter().zip(&mut opts).enumerate() {
            let loss = net.forward(&x).unwrap().sqr().unwrap().mean_all().unwrap();
            let mut grads = loss.backward().unwrap();
            if i == 0 {
                norms.push(clip_grad_norm(&mut grads, &net.vars(), 1e-3).unwrap());
                opt.step(&grads).unwrap();
            } else {
                norms.push(opt.step_clipped(&[&grads], 1e-3).unwrap());
            }
        }
        assert!(norms[0] > 1e-3, "the test must clip: norm {}", norms[0]);
        assert_eq!(norms[0].to_bits(), norms[1].to_bits());
    }
    let flat = |n: &Mlp| -> Vec<f32> {
        n.vars().iter().flat_map(|v| v.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    };
    let (a, b, reference) = (flat(&nets[0]), flat(&nets[1]), flat(&nets[2]));
    assert_eq!(a, b);
    for (x, y) in b.iter().zip(&reference) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
}

#[test]
fn the_in_place_polyak_update_gives_candles_numbers() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let dev = Device::Cpu;
    let source = Mlp::new(&[5, 33, 2], DType::F32, &dev, &mut rng).unwrap();
    let target = Mlp::new(&[5, 33, 2], DType::F32, &dev, &mut rng).unwrap();
    let tau = 0.005;
    let want: Vec<Vec<f32>> = target
        .vars()
        .iter()
        .zip(source.vars())
        .map(|(t, s)| {
            let mixed =
                ((s.as_tensor() * tau).unwrap() + (t.as_tensor() * (1.0 - tau)).unwrap()).unwrap();
            mixed.flatten_all().unwrap().to_vec1().unwrap()
        })
        .collect();
    soft_update(&target, &source, tau).unwrap();
    for (t, w) in target.vars().iter().zip(&want) {
        assert_eq!(&t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), w);
    }
}

#[test]
fn a_gradient_in_parts_steps_as_the_added_gradient() {
    // The update passes its row shards' and its second loss's gradients as parts, which the
    // fused loops add element by element; up to three parts are read in place, more are
    // added with candle first. Each must give the bits of adding the stores, then stepping.
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let inputs: Vec<Tensor> = (0..4)
        .map(|_| Tensor::new(values(3 * 5, &mut rng), &dev).unwrap().reshape((5, 3)).unwrap())
        .collect();
    for n_parts in 1..=4 {
        let nets: Vec<Mlp> = (0..2)
            .map(|_| {
                Mlp::new(&[3, 8, 1], DType::F32, &dev, &mut ChaCha8Rng::seed_from_u64(6)).unwrap()
            })
            .collect();
        let cfg = AdamConfig { lr: 1e-2, ..Default::default() };
        let mut opts: Vec<Adam> =
            nets.iter().map(|n| Adam::new(n.prefixed_vars("n"), cfg).unwrap()).collect();
        for _ in 0..5 {
            let stores = |net: &Mlp| -> Vec<GradStore> {
                inputs[..n_parts]
                    .iter()
                    .map(|x| {
                        net.forward(x)
                            .unwrap()
                            .sqr()
                            .unwrap()
                            .mean_all()
                            .unwrap()
                            .backward()
                            .unwrap()
                    })
                    .collect()
            };
            let parts = stores(&nets[0]);
            let refs: Vec<&GradStore> = parts.iter().collect();
            let norm_parts = opts[0].step_clipped(&refs, 0.05).unwrap();

            let mut added = stores(&nets[1]).into_iter();
            let mut sum = added.next().unwrap();
            for more in added {
                for v in nets[1].vars() {
                    let total = (sum.remove(&v).unwrap() + more.get(&v).unwrap()).unwrap();
                    sum.insert(&v, total);
                }
            }
            let norm_sum = opts[1].step_clipped(&[&sum], 0.05).unwrap();
            assert_eq!(norm_parts.to_bits(), norm_sum.to_bits(), "{n_parts} parts");
        }
        let flat = |n: &Mlp| -> Vec<f32> {
            n.vars()
                .iter()
                .flat_map(|v| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect()
        };
        assert_eq!(flat(&nets[0]), flat(&nets[1]), "{n_parts} parts");
    }
}

#[test]
fn polyak_on_other_float_types_takes_candles_ops() {
    // The in-place mix reads f32 and f64; a half-precision parameter is mixed with candle's
    // ops, as before the in-place loop existed.
    let dev = Device::Cpu;
    let t = Var::new(&[1.0f32, -2.0, 4.0], &dev).unwrap();
    let s = Var::new(&[3.0f32, 2.0, 0.0], &dev).unwrap();
    let (t, s) = (
        Var::from_tensor(&t.to_dtype(DType::F16).unwrap()).unwrap(),
        Var::from_tensor(&s.to_dtype(DType::F16).unwrap()).unwrap(),
    );
    soft_update(&One(t.clone()), &One(s), 0.25).unwrap();
    let got: Vec<f32> = t.to_dtype(DType::F32).unwrap().to_vec1().unwrap();
    assert_eq!(got, [1.5, -1.0, 3.0]);
}

#[test]
fn adam_on_other_float_types_takes_candles_ops() {
    // f32 and f64 moments live in vectors for the fused loop; a half-precision parameter
    // keeps tensor moments and candle's ops, and its state still saves and restores.
    let dev = Device::Cpu;
    let half = |x: &[f32]| {
        Var::from_tensor(&Tensor::new(x, &dev).unwrap().to_dtype(DType::F16).unwrap()).unwrap()
    };
    let step = |adam: &mut Adam, theta: &Var| {
        let g = Tensor::new(&[0.5f32, -1.0], &dev).unwrap().to_dtype(DType::F16).unwrap();
        let grads = (theta.as_tensor() * g).unwrap().sum_all().unwrap().backward().unwrap();
        adam.step_clipped(&[&grads], 10.0).unwrap();
    };
    let cfg = AdamConfig { lr: 0.1, ..Default::default() };
    let theta = half(&[1.0, -2.0]);
    let mut adam = Adam::new(One(theta.clone()).prefixed_vars("p"), cfg).unwrap();
    step(&mut adam, &theta);
    let got: Vec<f32> = theta.to_dtype(DType::F32).unwrap().to_vec1().unwrap();
    // The first step moves each entry by lr against its gradient's sign.
    assert!((got[0] - 0.9).abs() < 2e-3 && (got[1] + 1.9).abs() < 2e-3, "{got:?}");

    let copy = half(&got);
    let state: std::collections::HashMap<String, Tensor> =
        adam.state_tensors("opt").unwrap().into_iter().collect();
    let mut restored = Adam::new(One(copy.clone()).prefixed_vars("p"), cfg).unwrap();
    restored.load_state("opt", &state).unwrap();
    step(&mut adam, &theta);
    step(&mut restored, &copy);
    let (a, b): (Vec<f32>, Vec<f32>) = (
        theta.to_dtype(DType::F32).unwrap().to_vec1().unwrap(),
        copy.to_dtype(DType::F32).unwrap().to_vec1().unwrap(),
    );
    assert_eq!(a, b);
}
