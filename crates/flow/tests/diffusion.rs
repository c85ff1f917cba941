//! Diffusion-QL's sampler: a 2-step chain against a hand computation, the compiled chain
//! against the tensor one, the gradient through the whole chain against finite differences,
//! and the noise-prediction loss against its definition.

use candle_core::{DType, Device, Tensor};
use ofql_flow::{
    CompiledDiffusion, DiffusionDraw, VpSchedule, diffusion_sample, noise_prediction_loss,
};
use ofql_nets::{NamedVars, NoiseNet, NoiseNetConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn net(dtype: DType, seed: u64) -> NoiseNet {
    let cfg = NoiseNetConfig {
        obs_dim: 3,
        act_dim: 2,
        hidden: 16,
        layers: 2,
        time_dim: 16,
        time_hidden: 32,
    };
    NoiseNet::new(&cfg, dtype, &Device::Cpu, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

/// The last layer set to output the constant `c` whatever the input: eps = c.
fn constant_output(net: &NoiseNet, c: f64) {
    let vars = net.named_vars();
    let (w, b) = (&vars[vars.len() - 2].1, &vars[vars.len() - 1].1);
    w.set(&w.zeros_like().unwrap()).unwrap();
    b.set(&(b.ones_like().unwrap() * c).unwrap()).unwrap();
}

#[test]
fn two_step_chain_matches_a_hand_computation() {
    // DQL's VP schedule for T = 2, computed here from its formula.
    let (b_min, b_max, t_max) = (0.1f64, 10.0f64, 2.0f64);
    let beta = |t: f64| {
        1.0 - (-b_min / t_max - 0.5 * (b_max - b_min) * (2.0 * t - 1.0) / (t_max * t_max)).exp()
    };
    let (b0, b1) = (beta(1.0), beta(2.0));
    let (ab0, ab1) = (1.0 - b0, (1.0 - b0) * (1.0 - b1));
    let s = VpSchedule::new(2);
    assert!((s.betas[0] - b0).abs() < 1e-15 && (s.alphas_cumprod[1] - ab1).abs() < 1e-15);

    let c = 0.3;
    let net = net(DType::F64, 1);
    constant_output(&net, c);
    let (x2, z1) = ([0.4f64, -0.7], [1.1f64, 0.2]);
    // Step i = 1: x0 = clip(x / sqrt(ab1) - sqrt(1/ab1 - 1) c), mean = c1 x0 + c2 x, + std z.
    let var1 = b1 * (1.0 - ab0) / (1.0 - ab1);
    let (c1, c2) = (b1 * ab0.sqrt() / (1.0 - ab1), (1.0 - ab0) * (1.0 - b1).sqrt() / (1.0 - ab1));
    let x1: Vec<f64> = (0..2)
        .map(|j| {
            let x0 = (x2[j] / ab1.sqrt() - (1.0 / ab1 - 1.0).sqrt() * c).clamp(-1.0, 1.0);
            c1 * x0 + c2 * x2[j] + var1.sqrt() * z1[j]
        })
        .collect();
    // Step i = 0: abar_prev = 1, so the mean is x0 itself (coef1 = 1, coef2 = 0), no noise.
    let want: Vec<f64> = (0..2)
        .map(|j| (x1[j] / ab0.sqrt() - (1.0 / ab0 - 1.0).sqrt() * c).clamp(-1.0, 1.0))
        .collect();

    let obs = Tensor::new(&[[0.5f64, -0.2, 0.1]], &Device::Cpu).unwrap();
    let noise = Tensor::new(&[[x2[0], x2[1], z1[0], z1[1]]], &Device::Cpu).unwrap();
    let got: Vec<f64> =
        diffusion_sample(&net, &s, &obs, &noise).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn compiled_chain_matches_the_tensor_chain() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for steps in [1, 5, 20] {
        let schedule = VpSchedule::new(steps);
        let net = net(DType::F32, 2);
        let mut compiled = CompiledDiffusion::new(&net, &schedule).unwrap();
        let obs: Vec<f32> = (0..3).map(|_| rng.random_range(-1.0..1.0)).collect();
        for k in [1, 7] {
            let noise: Vec<f32> = (0..k * steps * 2).map(|_| rng.random_range(-1.5..1.5)).collect();
            let mut fast = vec![0f32; k * 2];
            compiled.sample_many(&obs, &noise, &mut fast);
            let obs_k: Vec<f32> = obs.iter().copied().cycle().take(k * 3).collect();
            let obs_k = Tensor::from_vec(obs_k, (k, 3), &Device::Cpu).unwrap();
            let noise = Tensor::from_vec(noise, (k, steps * 2), &Device::Cpu).unwrap();
            let slow: Vec<f32> = diffusion_sample(&net, &schedule, &obs_k, &noise)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (f, s) in fast.iter().zip(&slow) {
                assert!((f - s).abs() < 1e-4, "T {steps}, k {k}: {fast:?} vs {slow:?}");
            }
        }
    }
}

/// d/d(theta) of sum(w * sample) through all T = 3 steps, against central differences, for
/// entries of the first, a middle and the last layer and of the time MLP (f64; inputs small
/// enough that no clip is active).
#[test]
fn gradient_through_the_chain_matches_finite_differences() {
    let schedule = VpSchedule::new(3);
    let net = net(DType::F64, 4);
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let obs = Tensor::from_vec(
        (0..12).map(|_| rng.random_range(-1.0..1.0)).collect::<Vec<f64>>(),
        (4, 3),
        &dev,
    )
    .unwrap();
    let noise = Tensor::from_vec(
        (0..24).map(|_| rng.random_range(-0.3..0.3)).collect::<Vec<f64>>(),
        (4, 6),
        &dev,
    )
    .unwrap();
    let w = Tensor::from_vec(
        (0..8).map(|_| rng.random_range(-1.0..1.0)).collect::<Vec<f64>>(),
        (4, 2),
        &dev,
    )
    .unwrap();
    let objective = || -> f64 {
        (diffusion_sample(&net, &schedule, &obs, &noise).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    let loss =
        (diffusion_sample(&net, &schedule, &obs, &noise).unwrap() * &w).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let vars = net.named_vars();
    let mut checked = 0;
    for (name, var) in vars.iter().filter(|(n, _)| n.ends_with("weight")) {
        let g: Vec<f64> =
            grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let theta: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for idx in [0, theta.len() / 2, theta.len() - 1] {
            let h = 1e-6;
            let at = |delta: f64| {
                let mut v = theta.clone();
                v[idx] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap()).unwrap();
                objective()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            var.set(&Tensor::from_vec(theta.clone(), var.shape(), &dev).unwrap()).unwrap();
            assert!(
                (fd - g[idx]).abs() <= 1e-6 * fd.abs().max(1e-3),
                "{name}[{idx}]: backprop {} vs finite differences {fd}",
                g[idx]
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked}");
}

#[test]
fn noise_prediction_loss_is_its_definition() {
    let schedule = VpSchedule::new(5);
    let net = net(DType::F64, 6);
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let s = Tensor::from_vec(
        (0..15).map(|_| rng.random_range(-1.0..1.0)).collect::<Vec<f64>>(),
        (5, 3),
        &dev,
    )
    .unwrap();
    let a = Tensor::from_vec(
        (0..10).map(|_| rng.random_range(-1.0..1.0)).collect::<Vec<f64>>(),
        (5, 2),
        &dev,
    )
    .unwrap();
    let draw = DiffusionDraw::new(5, 2, &schedule, DType::F64, &dev, &mut rng).unwrap();
    let got: f64 =
        noise_prediction_loss(&net, &schedule, &s, &a, &draw).unwrap().to_scalar().unwrap();
    let (av, ev): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
        (a.to_vec2().unwrap(), draw.noise.to_vec2().unwrap());
    let mut sum = 0.0;
    for (row, &i) in draw.steps.iter().enumerate() {
        let x: Vec<f64> = (0..2)
            .map(|j| {
                schedule.alphas_cumprod[i].sqrt() * av[row][j]
                    + (1.0 - schedule.alphas_cumprod[i]).sqrt() * ev[row][j]
            })
            .collect();
        let x = Tensor::from_vec(x, (1, 2), &dev).unwrap();
        let t = Tensor::new(&[[i as f64]], &dev).unwrap();
        let eps: Vec<f64> = net
            .forward(&x, &t, &s.narrow(0, row, 1).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        sum += (0..2).map(|j| (eps[j] - ev[row][j]).powi(2)).sum::<f64>();
    }
    assert!((got - sum / 10.0).abs() < 1e-12, "{got} vs {}", sum / 10.0);
}
