//! The hand-written Jacobian-vector products against finite differences (f64).

use candle_core::{DType, Device, Tensor};
use ofql_nets::{Kernels, Mlp, NamedVars, VelocityConfig, VelocityNet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const B: usize = 5;

fn randn(rng: &mut ChaCha8Rng, shape: (usize, usize), scale: f64) -> Tensor {
    let v: Vec<f64> = (0..shape.0 * shape.1)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            scale * z
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> Tensor {
    use rand::Rng;
    let v: Vec<f64> = (0..B).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, (B, 1), &Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

/// Richardson-extrapolated central difference: (4 D(h/2) - D(h)) / 3, error O(h^4).
fn richardson(f: impl Fn(f64) -> Tensor, h: f64) -> Tensor {
    let d = |h: f64| ((f(h) - f(-h)).unwrap() / (2.0 * h)).unwrap();
    ((d(h / 2.0) * 4.0).unwrap() - d(h)).unwrap().affine(1.0 / 3.0, 0.0).unwrap()
}

#[test]
fn mlp_tangent_fused_and_unfused_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut mlp = Mlp::new(&[4, 16, 16, 3], DType::F64, &Device::Cpu, &mut rng).unwrap();
    let x = randn(&mut rng, (B, 4), 2.0);
    let x_dot = randn(&mut rng, (B, 4), 1.0);
    let fd = richardson(|h| mlp.forward(&(&x + (&x_dot * h).unwrap()).unwrap()).unwrap(), 1e-3);
    for kernels in [Kernels::Fused, Kernels::Unfused] {
        mlp.set_kernels(kernels);
        let (y, y_dot) = mlp.forward_with_tangent(&x, &x_dot).unwrap();
        assert!(max_abs(&(y - mlp.forward(&x).unwrap()).unwrap()) < 1e-14);
        let err = max_abs(&(&y_dot - &fd).unwrap());
        assert!(err < 1e-9 * max_abs(&fd), "{kernels:?}: error {err}");
        // The one-pass version: the same tangent, and y with its graph.
        let (y, y_dot) = mlp.forward_and_tangent(&x, &x_dot).unwrap();
        assert!(max_abs(&(&y - mlp.forward(&x).unwrap()).unwrap()) < 1e-14);
        let err = max_abs(&(&y_dot - &fd).unwrap());
        assert!(err < 1e-9 * max_abs(&fd), "{kernels:?}, one pass: error {err}");
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(mlp.named_vars().iter().all(|(_, v)| grads.get(v.as_tensor()).is_some()));
    }
}

/// u and the JVP of the full velocity network along (a_dot, r_dot, t_dot), state fixed.
fn check_velocity(time_scale: f64, share: bool, h: f64, tol: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let cfg = VelocityConfig {
        obs_dim: 3,
        act_dim: 2,
        hidden: 32,
        layers: 3,
        time_dim: 16,
        time_hidden: 24,
        time_scale,
        share_time_mlp: share,
    };
    let net = VelocityNet::new(&cfg, DType::F64, &Device::Cpu, &mut rng).unwrap();
    let (a, s) = (randn(&mut rng, (B, 2), 1.0), randn(&mut rng, (B, 3), 1.0));
    let r = uniform(&mut rng, 0.05, 0.45);
    let t = uniform(&mut rng, 0.5, 0.95);
    // The MeanFlow tangent (v, 0, 1) and a general one that moves r too.
    let v = randn(&mut rng, (B, 2), 1.0);
    let ones = Tensor::ones((B, 1), DType::F64, &Device::Cpu).unwrap();
    let zeros = ones.zeros_like().unwrap();
    let general_r = uniform(&mut rng, -1.0, 1.0);
    for (r_dot, t_dot) in [(&zeros, &ones), (&general_r, &ones)] {
        let (u, u_dot) = net.forward_with_tangent(&a, &r, &t, &s, &v, r_dot, t_dot).unwrap();
        assert!(max_abs(&(u - net.forward(&a, &r, &t, &s).unwrap()).unwrap()) < 1e-13);
        let moved = |h: f64| {
            let a = (&a + (&v * h).unwrap()).unwrap();
            let r = (&r + (r_dot * h).unwrap()).unwrap();
            let t = (&t + (t_dot * h).unwrap()).unwrap();
            net.forward(&a, &r, &t, &s).unwrap()
        };
        let fd = richardson(moved, h);
        let err = max_abs(&(&u_dot - &fd).unwrap());
        let scale = max_abs(&fd);
        assert!(err < tol * scale, "k={time_scale} share={share}: error {err} vs |du| {scale}");
        // The one-pass version (u with its graph) gives the same u and tangent.
        let (u, u_dot) = net.forward_and_tangent(&a, &r, &t, &s, &v, r_dot, t_dot).unwrap();
        assert!(max_abs(&(u - net.forward(&a, &r, &t, &s).unwrap()).unwrap()) < 1e-13);
        let err = max_abs(&(&u_dot - &fd).unwrap());
        assert!(err < tol * scale, "one pass, k={time_scale}: error {err} vs |du| {scale}");
    }
}

#[test]
fn velocity_tangent_matches_finite_differences_at_time_scale_1() {
    check_velocity(1.0, true, 1e-3, 1e-9);
    check_velocity(1.0, false, 1e-3, 1e-9);
}

#[test]
fn velocity_tangent_matches_finite_differences_at_time_scale_1000() {
    // The phase moves 1000x faster: plain central differences at h = 1e-5 would carry an
    // error ~(h k)^2 = 1e-4; Richardson brings it to ~(h k)^4 plus rounding ~1e-16 / h.
    check_velocity(1000.0, true, 1e-5, 1e-7);
    check_velocity(1000.0, false, 1e-5, 1e-7);
}

#[test]
fn tangent_pass_records_no_graph() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cfg = VelocityConfig { obs_dim: 1, act_dim: 2, hidden: 8, ..Default::default() };
    let net = VelocityNet::new(&cfg, DType::F32, &Device::Cpu, &mut rng).unwrap();
    let a = Tensor::ones((4, 2), DType::F32, &Device::Cpu).unwrap();
    let s = Tensor::ones((4, 1), DType::F32, &Device::Cpu).unwrap();
    let t = (Tensor::ones((4, 1), DType::F32, &Device::Cpu).unwrap() * 0.5).unwrap();
    let (u, u_dot) = net.forward_with_tangent(&a, &t, &t, &s, &a, &t, &t).unwrap();
    let grads = (u + u_dot).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(net.vars().iter().all(|v| grads.get(v.as_tensor()).is_none()));
    // The one-pass version: u reaches every parameter, its tangent none.
    let (u, u_dot) = net.forward_and_tangent(&a, &t, &t, &s, &a, &t, &t).unwrap();
    let g = u_dot.sum_all().unwrap().backward().unwrap();
    assert!(net.vars().iter().all(|v| g.get(v.as_tensor()).is_none()));
    let grads = u.sum_all().unwrap().backward().unwrap();
    assert!(net.vars().iter().all(|v| grads.get(v.as_tensor()).is_some()));
    // ... whereas the plain forward does reach every parameter.
    let grads = net.forward(&a, &t, &t, &s).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(net.vars().iter().all(|v| grads.get(v.as_tensor()).is_some()));
}

#[test]
fn fused_and_unfused_networks_agree_on_outputs_and_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let cfg = VelocityConfig { obs_dim: 3, act_dim: 2, hidden: 16, ..Default::default() };
    let mut net = VelocityNet::new(&cfg, DType::F64, &Device::Cpu, &mut rng).unwrap();
    let (a, s) = (randn(&mut rng, (B, 2), 1.0), randn(&mut rng, (B, 3), 1.0));
    let (r, t) = (uniform(&mut rng, 0.0, 0.5), uniform(&mut rng, 0.5, 1.0));
    let run = |net: &VelocityNet| {
        let u = net.forward(&a, &r, &t, &s).unwrap();
        let grads = u.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<Tensor> =
            net.vars().iter().map(|v| grads.get(v.as_tensor()).unwrap().clone()).collect();
        (u, g)
    };
    let (u1, g1) = run(&net);
    net.set_kernels(Kernels::Unfused);
    let (u2, g2) = run(&net);
    assert!(max_abs(&(u1 - u2).unwrap()) < 1e-13);
    for (a, b) in g1.iter().zip(&g2) {
        assert!(max_abs(&(a - b).unwrap()) < 1e-12);
    }
}
