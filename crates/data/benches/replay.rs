//! Replay sampling throughput: a batch of 256 from a 1M x 17 buffer (goal: under 20 us).
//! Run: `cargo bench -p ofql-data --bench replay`.

use criterion::{Criterion, criterion_group, criterion_main};
use ofql_data::{NextObs, ReplayBuffer, Transitions};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: usize = 1_000_000;
const OBS_DIM: usize = 17;
const ACT_DIM: usize = 6;

fn buffer() -> ReplayBuffer {
    let fill = |len: usize| (0..len).map(|i| (i % 1013) as f32 * 1e-3).collect::<Vec<f32>>();
    ReplayBuffer::new(Transitions {
        obs_dim: OBS_DIM,
        act_dim: ACT_DIM,
        observations: fill(ROWS * OBS_DIM),
        actions: fill(ROWS * ACT_DIM),
        rewards: fill(ROWS),
        next_observations: fill(ROWS * OBS_DIM),
        dones: vec![0.0; ROWS],
        next_obs: NextObs::Shifted,
    })
}

fn sample(c: &mut Criterion) {
    let buf = buffer();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    c.bench_function("replay_sample_256_of_1M_x17", |b| {
        b.iter(|| std::hint::black_box(buf.sample(256, &mut rng).expect("sample")))
    });
}

criterion_group!(benches, sample);
criterion_main!(benches);
