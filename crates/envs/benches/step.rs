//! Environment steps per second, one thread, for the six locomotion environments and two of
//! the mazes and FrankaKitchen-v1 (goal: at least 10x Gymnasium's Python loop; its side is `benches/gym_step.py`,
//! with Gymnasium-Robotics for the mazes). A step is one `Env::step` with a random in-range
//! f32 action, resetting when an episode ends, as a Python loop would.
//!
//! Run: `cargo bench -p ofql-envs --bench step`
//! Smoke (each benchmark once, no timing): `cargo test -p ofql-envs --benches`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ofql_envs::{Env, EnvId, MazeMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("env_step");
    group.throughput(Throughput::Elements(1));
    let mazes = [MazeMap::UMaze, MazeMap::Large].map(EnvId::ant_maze);
    for id in EnvId::ALL.into_iter().chain(mazes).chain([EnvId::franka_kitchen()]) {
        let mut env = Env::new(id).expect("models provisioned by `cargo xtask setup`");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // A fixed pool of actions: drawing them is not part of a step.
        let actions: Vec<f32> =
            (0..1024 * env.act_dim()).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (nu, mut obs, mut t) = (env.act_dim(), vec![0.0; env.obs_dim()], 0usize);
        env.reset(&mut rng);
        group.bench_function(id.to_string(), |b| {
            b.iter(|| {
                let k = t % 1024;
                t += 1;
                let info = env.step_into(&actions[k * nu..(k + 1) * nu], &mut obs).unwrap();
                if info.terminated || info.truncated {
                    env.reset(&mut rng);
                }
                std::hint::black_box(info.reward)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
