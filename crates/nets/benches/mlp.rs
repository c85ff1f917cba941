//! 3x256 Mish MLP at batch 256 on one thread: training step (forward, backward, Adam),
//! forward alone, and the tangent pass, each with the fused kernels and with candle's
//! composed ops; plus one MeanFlow-style actor step (tangent + forward + backward + Adam) of
//! the full velocity network.
//!
//! Run on a quiet machine: `cargo bench -p ofql-nets --bench mlp`
//! Smoke (compiles and runs each once): `cargo bench -p ofql-nets --bench mlp -- --test`

use candle_core::{DType, Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use ofql_nets::{Adam, AdamConfig, Kernels, Mlp, NamedVars, VelocityConfig, VelocityNet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 256;
const OBS: usize = 17;
const ACT: usize = 6;

fn one_thread() {
    // candle's CPU matmul asks for this many threads on every call.
    // SAFETY: set before any benchmark runs; no other thread reads the environment.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
}

fn input(rows: usize, cols: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> =
        (0..rows * cols).map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0)).collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
}

fn mlp(kernels: Kernels) -> Mlp {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    Mlp::new(&[OBS + ACT, 256, 256, 256, ACT], DType::F32, &Device::Cpu, &mut rng)
        .unwrap()
        .with_kernels(kernels)
}

fn bench_mlp(c: &mut Criterion) {
    one_thread();
    let x = input(BATCH, OBS + ACT, 1);
    let x_dot = input(BATCH, OBS + ACT, 2);
    let target = input(BATCH, ACT, 3);
    for (name, kernels) in [("fused", Kernels::Fused), ("unfused", Kernels::Unfused)] {
        let net = mlp(kernels);
        let mut adam = Adam::new(net.prefixed_vars("mlp"), AdamConfig::default())
            .unwrap()
            .with_kernels(kernels);
        c.bench_function(&format!("mlp3x256_b256/train_step/{name}"), |b| {
            b.iter(|| {
                let loss = (net.forward(&x).unwrap() - &target)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .mean_all()
                    .unwrap();
                adam.step(&loss.backward().unwrap()).unwrap();
            })
        });
        c.bench_function(&format!("mlp3x256_b256/forward/{name}"), |b| {
            b.iter(|| net.forward(&x).unwrap())
        });
        c.bench_function(&format!("mlp3x256_b256/tangent/{name}"), |b| {
            b.iter(|| net.forward_with_tangent(&x, &x_dot).unwrap())
        });
    }
}

fn bench_actor_step(c: &mut Criterion) {
    one_thread();
    let cfg = VelocityConfig { obs_dim: OBS, act_dim: ACT, ..Default::default() };
    let (a, s, v) = (input(BATCH, ACT, 4), input(BATCH, OBS, 5), input(BATCH, ACT, 6));
    let t = (input(BATCH, 1, 7).abs().unwrap() * 0.9).unwrap();
    let r = (&t * 0.5).unwrap();
    let (ones, zeros) = (t.ones_like().unwrap(), t.zeros_like().unwrap());
    for (name, kernels) in [("fused", Kernels::Fused), ("unfused", Kernels::Unfused)] {
        let mut net =
            VelocityNet::new(&cfg, DType::F32, &Device::Cpu, &mut ChaCha8Rng::seed_from_u64(0))
                .unwrap();
        net.set_kernels(kernels);
        let mut adam = Adam::new(net.prefixed_vars("actor"), AdamConfig::default())
            .unwrap()
            .with_kernels(kernels);
        c.bench_function(&format!("velocity_b256/meanflow_step/{name}"), |b| {
            b.iter(|| {
                let (_, du) = net.forward_with_tangent(&a, &r, &t, &s, &v, &zeros, &ones).unwrap();
                let tgt = (&v - du.broadcast_mul(&(&t - &r).unwrap()).unwrap()).unwrap();
                let u = net.forward(&a, &r, &t, &s).unwrap();
                let loss = (u - tgt).unwrap().sqr().unwrap().mean_all().unwrap();
                adam.step(&loss.backward().unwrap()).unwrap();
            })
        });
    }
}

criterion_group!(benches, bench_mlp, bench_actor_step);
criterion_main!(benches);
