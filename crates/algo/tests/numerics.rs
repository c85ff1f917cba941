//! Optimisations must not change the numbers: the losses of the first OFQL updates from a
//! fixed seed and batch, and a fingerprint of the trained parameters, are compared with the
//! values recorded before the kernels were optimised (`tests/data/numerics.json`) to 1e-6
//! relative, on one thread and on two. Both the plain TD target and the max-Q backup are
//! covered.
//!
//! To record new reference values (only when the method itself changes, never to make a
//! speed-up pass): `OFQL_BLESS=1 cargo test -p ofql-algo --test numerics`.
//!
//! The recorded bytes are those of the host that recorded them: on another CPU (other cache
//! sizes, so gemm blocks its sums differently) the last bits differ, well inside 1e-6. To check
//! that a refactor keeps the numbers byte-identical, bless with the commit before it and with
//! the refactor on the same host and compare the two files.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use ofql_algo::{Agent, Config, Ofql};
use ofql_data::replay::Batch;
use ofql_nets::NamedVars;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const OBS: usize = 17;
const ACT: usize = 6;
const STEPS: usize = 8;
const REL_TOL: f64 = 1e-6;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Record {
    /// Per update: critic, flow, q, actor, q_mean, critic grad norm, actor grad norm.
    losses: Vec<[f64; 7]>,
    /// Per network (actor, EMA actor, critics, target critics): sum and sum of squares.
    params: Vec<[f64; 2]>,
}

/// Odd widths (72) so vector loops also run their remainders; 128 rows so that two threads
/// split the batch into two shards.
fn config(max_q_backup: bool) -> Config {
    let mut c = Config::default();
    c.train.steps = 100;
    c.train.batch_size = 128;
    c.train.seed = 3;
    c.actor.hidden = 72;
    c.critic.hidden = 72;
    c.actor.ema_start = 3;
    c.actor.grad_norm = 1.0; // small enough that clipping acts
    c.critic.max_q_backup = max_q_backup;
    c.critic.max_q_samples = 3;
    c.validate().unwrap();
    c
}

fn batch(rng: &mut ChaCha8Rng, n: usize) -> Batch {
    let mut t = |cols: usize, f: &mut dyn FnMut(&mut ChaCha8Rng) -> f32| {
        let v: Vec<f32> = (0..n * cols).map(|_| f(rng)).collect();
        Tensor::from_vec(v, (n, cols), &Device::Cpu).unwrap()
    };
    Batch {
        observations: t(OBS, &mut |r| r.random_range(-2.0..2.0)),
        actions: t(ACT, &mut |r| r.random_range(-1.0..1.0)),
        rewards: t(1, &mut |r| r.random_range(-1.0..3.0)),
        next_observations: t(OBS, &mut |r| r.random_range(-2.0..2.0)),
        dones: t(1, &mut |r| if r.random_range(0.0..1.0) < 0.1 { 1.0 } else { 0.0 }),
    }
}

fn fingerprint(net: &dyn NamedVars) -> [f64; 2] {
    let (mut s, mut s2) = (0.0, 0.0);
    for (_, v) in net.named_vars() {
        let x = v.as_tensor().to_dtype(DType::F64).unwrap().flatten_all().unwrap();
        s += x.sum_all().unwrap().to_scalar::<f64>().unwrap();
        s2 += x.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    }
    [s, s2]
}

fn run(max_q_backup: bool, threads: usize) -> Record {
    let cfg = config(max_q_backup);
    let mut agent = Ofql::new(&cfg, OBS, ACT, &Device::Cpu).unwrap();
    agent.set_threads(threads);
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let losses = (0..STEPS)
        .map(|_| {
            let l = agent.iterate(&batch(&mut rng, cfg.train.batch_size)).unwrap();
            [l.critic, l.flow, l.q, l.actor, l.q_mean, l.critic_grad_norm, l.actor_grad_norm]
        })
        .collect();
    let params = vec![
        fingerprint(&agent.actor),
        fingerprint(&agent.actor_ema),
        fingerprint(&agent.critic),
        fingerprint(&agent.critic_target),
    ];
    Record { losses, params }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= REL_TOL * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn losses_and_parameters_match_the_recorded_values() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/numerics.json");
    let now = [("plain", run(false, 1)), ("max_q_backup", run(true, 1))];
    if std::env::var_os("OFQL_BLESS").is_some() {
        let map: serde_json::Map<String, serde_json::Value> =
            now.iter().map(|(k, r)| (k.to_string(), serde_json::to_value(r).unwrap())).collect();
        std::fs::write(&path, serde_json::to_string_pretty(&map).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).expect("tests/data/numerics.json (see the header)");
    let recorded: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    // One thread, and two (the batch in two shards whose gradients are added).
    let two = [("plain, 2 threads", run(false, 2)), ("max_q_backup, 2 threads", run(true, 2))];
    for (name, got) in now.iter().chain(&two) {
        let key = name.split(',').next().unwrap();
        let want: Record = serde_json::from_value(recorded[key].clone()).unwrap();
        for (step, (g, w)) in got.losses.iter().zip(&want.losses).enumerate() {
            for (k, (&g, &w)) in g.iter().zip(w).enumerate() {
                assert!(close(g, w), "{name}: update {step}, loss field {k}: {g} vs recorded {w}");
            }
        }
        for (i, (g, w)) in got.params.iter().zip(&want.params).enumerate() {
            for (&g, &w) in g.iter().zip(w) {
                assert!(close(g, w), "{name}: network {i} fingerprint {g} vs recorded {w}");
            }
        }
        assert_eq!(got.losses.len(), want.losses.len());
    }
}
