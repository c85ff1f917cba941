use candle_core::Device;
use ofql_algo::policy::{Decider, Protocol};
use ofql_algo::{Config, Ofql};
use rand::SeedableRng;
use std::time::Instant;
fn main() {
    let agent = Ofql::new(&Config::default(), 17, 6, &Device::Cpu).unwrap();
    let p = Protocol::CleanDiffuser { candidates: 50, temperature: 0.5, q_weight: 50.0 };
    let mut d = Decider::new(&agent, p).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let obs = [0.3f32; 17];
    let mut a = [0f32; 6];
    let reps = 20000;
    let t0 = Instant::now();
    for _ in 0..reps {
        d.act(&obs, &mut rng, &mut a);
    }
    println!("{:.1} us", t0.elapsed().as_secs_f64() / reps as f64 * 1e6);
}
