//! A generated dataset must be the same file on every host: a long run resumed on another
//! machine regenerates its data and is refused if one bit differs (the checkpoint records the
//! data's reward range and observation statistics). The shipped hopper policies, seed 0,
//! 2,000 medium rows (two episodes and more, long enough for any last-bit difference in an
//! action to grow through the simulator into the observations): a digest of every recorded
//! number against the value recorded here.
//!
//! When this fails after a change to the nets' kernels or to generation, the data every suite
//! makes has changed: say so in the change and record the new digest. When it fails on a new
//! host with no change, generation depends on the CPU again (candle's gemm blocks its sums by
//! cache size; `FrozenSacActor` exists to avoid it): fix that, do not record a new digest.

use std::path::Path;

use ofql_behaviour::generate::{Kind, generate};

const DIGEST: u64 = 0x60e5_d714_0bed_f183;

/// FNV-1a over the bits of every number, in order.
fn digest(values: impl Iterator<Item = u64>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in values {
        for b in v.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[test]
fn generated_medium_data_is_the_same_on_every_host() {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/behaviour/hopper-v4");
    let env = "hopper-v4".parse().unwrap();
    let g = generate(env, Kind::Medium, 2000, Some(&policies), 0, "test").unwrap();
    let d = &g.data;
    let bits = d
        .observations
        .iter()
        .chain(d.actions.iter())
        .chain(d.rewards.iter())
        .map(|x| x.to_bits() as u64)
        .chain(g.states.qpos.iter().chain(g.states.qvel.iter()).map(|x| x.to_bits()));
    let got = digest(bits);
    assert_eq!(
        got, DIGEST,
        "hopper-medium's first 2,000 generated rows changed (digest {got:#x}); see this \
         file's header"
    );
}
