//! save -> load gives identical outputs and an identical next optimiser step; bad files are
//! refused with messages that name the tensor.

use candle_core::{DType, Device, Tensor};
use ofql_nets::{Adam, AdamConfig, Checkpoint, DoubleQ, NamedVars, VelocityConfig, VelocityNet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CFG: VelocityConfig = VelocityConfig {
    obs_dim: 3,
    act_dim: 2,
    hidden: 16,
    layers: 3,
    time_dim: 8,
    time_hidden: 12,
    time_scale: 1.0,
    share_time_mlp: true,
};

struct Model {
    actor: VelocityNet,
    critic: DoubleQ,
    actor_opt: Adam,
    critic_opt: Adam,
}

fn model(seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dev = Device::Cpu;
    let actor = VelocityNet::new(&CFG, DType::F32, &dev, &mut rng).unwrap();
    let critic = DoubleQ::new(3, 2, 16, 3, DType::F32, &dev, &mut rng).unwrap();
    let actor_opt = Adam::new(actor.prefixed_vars("actor"), AdamConfig::default()).unwrap();
    let critic_opt = Adam::new(critic.prefixed_vars("critic"), AdamConfig::default()).unwrap();
    Model { actor, critic, actor_opt, critic_opt }
}

fn batch(rng: &mut ChaCha8Rng) -> [Tensor; 4] {
    let mut t = |rows: usize, cols: usize| {
        let v: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(0.0..1.0)).collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    };
    [t(8, 2), t(8, 1), t(8, 1), t(8, 3)]
}

/// One step of a stand-in objective on both networks; the rng supplies the batch.
fn train_step(m: &mut Model, rng: &mut ChaCha8Rng) {
    let [a, r, t, s] = batch(rng);
    let u = m.actor.forward(&a, &r, &t, &s).unwrap();
    let grads = u.sqr().unwrap().mean_all().unwrap().backward().unwrap();
    m.actor_opt.step(&grads).unwrap();
    let (q1, q2) = m.critic.forward(&s, &a).unwrap();
    let grads = (q1 + q2).unwrap().sqr().unwrap().mean_all().unwrap().backward().unwrap();
    m.critic_opt.step(&grads).unwrap();
}

fn outputs(m: &Model, probe: &[Tensor; 4]) -> Vec<f32> {
    let [a, r, t, s] = probe;
    let u = m.actor.forward(a, r, t, s).unwrap().flatten_all().unwrap();
    let q = m.critic.min(s, a).unwrap().flatten_all().unwrap();
    [u.to_vec1::<f32>().unwrap(), q.to_vec1().unwrap()].concat()
}

fn save(m: &Model, rng: &ChaCha8Rng, step: u64, path: &std::path::Path) {
    let mut ckpt = Checkpoint::new();
    ckpt.add_vars("actor", &m.actor).unwrap();
    ckpt.add_vars("critic", &m.critic).unwrap();
    ckpt.add_adam("actor_opt", &m.actor_opt).unwrap();
    ckpt.add_adam("critic_opt", &m.critic_opt).unwrap();
    ckpt.set_json("rng", rng).unwrap();
    ckpt.set_step(step);
    ckpt.save(path).unwrap();
}

#[test]
fn save_load_gives_identical_outputs_and_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let mut original = model(1);
    for _ in 0..3 {
        train_step(&mut original, &mut rng);
    }
    save(&original, &rng, 3, &path);

    let mut restored = model(2);
    let probe = batch(&mut ChaCha8Rng::seed_from_u64(99));
    assert_ne!(outputs(&original, &probe), outputs(&restored, &probe));
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    ckpt.restore_vars("actor", &restored.actor).unwrap();
    ckpt.restore_vars("critic", &restored.critic).unwrap();
    ckpt.restore_adam("actor_opt", &mut restored.actor_opt).unwrap();
    ckpt.restore_adam("critic_opt", &mut restored.critic_opt).unwrap();
    let mut restored_rng: ChaCha8Rng = ckpt.json("rng").unwrap();
    assert_eq!(ckpt.step().unwrap(), 3);
    assert_eq!(restored.actor_opt.steps(), 3);
    assert_eq!(outputs(&original, &probe), outputs(&restored, &probe));

    // The next step uses the restored moments, step count and RNG: bit-identical results.
    train_step(&mut original, &mut rng);
    train_step(&mut restored, &mut restored_rng);
    assert_eq!(outputs(&original, &probe), outputs(&restored, &probe));
    assert_eq!(rng.random::<u64>(), restored_rng.random::<u64>());
    // No temporary files are left next to the checkpoint.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn missing_and_mismatched_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let m = model(1);
    save(&m, &ChaCha8Rng::seed_from_u64(0), 0, &path);
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();

    let err = ckpt.restore_vars("ema_actor", &m.actor).unwrap_err().to_string();
    assert!(err.contains("ema_actor.time.l0.weight"), "{err}");

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let wider =
        VelocityNet::new(&VelocityConfig { hidden: 32, ..CFG }, DType::F32, &Device::Cpu, &mut rng)
            .unwrap();
    let before = outputs(&m, &batch(&mut ChaCha8Rng::seed_from_u64(1)));
    let err = ckpt.restore_vars("actor", &wider).unwrap_err().to_string();
    assert!(
        err.contains("actor.mlp.l0.weight") && err.contains("[16, 21]") && err.contains("[32, 21]"),
        "{err}"
    );

    let mut other_opt = Adam::new(wider.prefixed_vars("actor"), AdamConfig::default()).unwrap();
    let err = ckpt.restore_adam("actor_opt", &mut other_opt).unwrap_err().to_string();
    assert!(err.contains("actor_opt.m.actor.mlp.l0.weight"), "{err}");
    assert_eq!(before, outputs(&m, &batch(&mut ChaCha8Rng::seed_from_u64(1))));

    let err = Checkpoint::load(&dir.path().join("nope.safetensors"), &Device::Cpu).err().unwrap();
    assert!(format!("{err:#}").contains("nope.safetensors"), "{err:#}");
    std::fs::write(dir.path().join("junk"), b"not a checkpoint").unwrap();
    let err = Checkpoint::load(&dir.path().join("junk"), &Device::Cpu).err().unwrap();
    assert!(format!("{err:#}").contains("not a safetensors checkpoint"), "{err:#}");
}
