//! The OFQL update and training loop on small data made here with the real simulator:
//! finite losses, a falling MeanFlow loss, bit-identical reruns, checkpoint round trips,
//! exact resume after a stop, and the divergence guard.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, Tensor};
use ofql_algo::policy::{Protocol, select_actions};
use ofql_algo::prepare::RewardTransform;
use std::path::Path;

use ofql_algo::train::{Job, Observer, Silent, Summary, read_metrics, train};
use ofql_algo::{Agent, Config, Losses, Metrics, Ofql, agent};
use ofql_data::{ReplayBuffer, Transitions};
use ofql_envs::{Env, EnvId};
use ofql_nets::Checkpoint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 1000 transitions (one episode) in HalfCheetah-v4 of a behaviour policy that is a fixed
/// function of the state plus a little noise, so that there is something to imitate.
fn random_transitions() -> Transitions {
    let id: EnvId = "halfcheetah-v4".parse().unwrap();
    let mut env = Env::new(id).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (d, a) = (env.obs_dim(), env.act_dim());
    let mut t = Transitions::empty(d, a);
    let mut obs = env.reset(&mut rng);
    for _ in 0..1000 {
        let act: Vec<f32> = (0..a)
            .map(|j| {
                ((3.0 * obs[j] + j as f64).sin() as f32 + rng.random_range(-0.1..0.1))
                    .clamp(-1.0, 1.0)
            })
            .collect();
        let step = env.step(&act).unwrap();
        let (s, s2): (Vec<f32>, Vec<f32>) =
            (obs.iter().map(|&x| x as f32).collect(), step.obs.iter().map(|&x| x as f32).collect());
        t.push(&s, &act, step.reward as f32, &s2, step.terminated);
        obs = step.obs;
    }
    t
}

/// Small networks so that hundreds of steps take seconds in the dev profile.
fn small_config(steps: u64) -> Config {
    let mut c = Config::default();
    c.train.steps = steps;
    c.train.batch_size = 64;
    c.train.seed = 5;
    c.train.eval_every = 0;
    c.train.checkpoint_every = 10;
    c.train.log_every = 1;
    c.actor.hidden = 64;
    c.critic.hidden = 64;
    c.actor.ema_start = 20;
    c.validate().unwrap();
    c
}

/// A fresh agent of `cfg` trained on `buffer` (raw data) into `out`.
fn train_run(
    cfg: &Config,
    buffer: &ReplayBuffer,
    out: &Path,
    resume: bool,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> anyhow::Result<Summary> {
    let t = buffer.transitions();
    let mut agent = agent::build(cfg, t.obs_dim, t.act_dim, None, &Device::Cpu)?;
    let job = Job { buffer, rewards: RewardTransform::raw() };
    train(agent.as_mut(), job, out, resume, None, stop, observer)
}

fn run_updates(cfg: &Config, buffer: &ReplayBuffer, steps: usize) -> Vec<Losses> {
    let mut agent =
        Ofql::new(cfg, buffer.transitions().obs_dim, buffer.transitions().act_dim, &Device::Cpu)
            .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    (0..steps)
        .map(|_| agent.iterate(&buffer.sample(cfg.train.batch_size, &mut rng).unwrap()).unwrap())
        .collect()
}

#[test]
fn few_hundred_steps_finite_and_flow_loss_falls() {
    let buffer = ReplayBuffer::new(random_transitions());
    let losses = run_updates(&small_config(300), &buffer, 300);
    assert!(losses.iter().all(|l| l.metrics().all_finite()));
    let mean = |s: &[Losses]| s.iter().map(|l| l.flow).sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&losses[..30]), mean(&losses[270..]));
    assert!(last < 0.8 * first, "MeanFlow loss did not fall: {first} -> {last}");
    // The learning rate follows the cosine schedule down from 3e-4.
    assert!(losses[0].actor_lr > losses[299].actor_lr);
    assert!(losses.iter().all(|l| l.critic_grad_norm.is_finite() && l.actor_grad_norm > 0.0));
}

#[test]
fn same_seed_gives_bit_identical_losses() {
    let buffer = ReplayBuffer::new(random_transitions());
    let cfg = small_config(30);
    assert_eq!(run_updates(&cfg, &buffer, 30), run_updates(&cfg, &buffer, 30));
    let mut other = cfg.clone();
    other.train.seed = 6;
    assert_ne!(run_updates(&other, &buffer, 5), run_updates(&cfg, &buffer, 5));
}

#[test]
fn checkpoint_round_trip_gives_identical_actions_and_next_step() {
    let buffer = ReplayBuffer::new(random_transitions());
    let cfg = small_config(100);
    let t = buffer.transitions();
    let mut agent = Ofql::new(&cfg, t.obs_dim, t.act_dim, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for _ in 0..25 {
        agent.update(&buffer.sample(64, &mut rng).unwrap()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.safetensors");
    agent.checkpoint().unwrap().save(&path).unwrap();
    let ck = Checkpoint::load(&path, &Device::Cpu).unwrap();
    assert_eq!(agent::checkpoint_method(&ck), "ofql");
    let mut loaded = agent::from_checkpoint(&ck, &Device::Cpu).unwrap();
    assert_eq!(loaded.step(), 25);

    let obs =
        Tensor::from_slice(&t.observations[..5 * t.obs_dim], (5, t.obs_dim), &Device::Cpu).unwrap();
    let protocol = Protocol::CleanDiffuser { candidates: 8, temperature: 0.5, q_weight: 50.0 };
    let act = |agent: &dyn Agent| {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        select_actions(agent, &obs, protocol, &mut rng).unwrap().to_vec2::<f32>().unwrap()
    };
    assert_eq!(act(&agent), act(loaded.as_ref()));
    let batch = buffer.sample(64, &mut rng).unwrap();
    assert_eq!(agent.update(&batch).unwrap(), loaded.update(&batch).unwrap());
}

/// Sets the stop flag once the given step has been taken, as Ctrl-C would.
struct StopAt<'a>(u64, &'a AtomicBool);
impl Observer for StopAt<'_> {
    fn on_step(&mut self, step: u64, _total: u64, _metrics: &Metrics) {
        if step == self.0 {
            self.1.store(true, Ordering::Relaxed);
        }
    }
}

#[test]
fn resume_after_stop_matches_the_uninterrupted_run() {
    let buffer = ReplayBuffer::new(random_transitions());
    let cfg = small_config(50);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let never = AtomicBool::new(false);
    let full = train_run(&cfg, &buffer, &a, false, &never, &mut Silent).unwrap();
    assert_eq!(full.steps, 50);
    assert!(!full.interrupted);

    let stop = AtomicBool::new(false);
    let part = train_run(&cfg, &buffer, &b, false, &stop, &mut StopAt(23, &stop)).unwrap();
    assert!(part.interrupted);
    assert_eq!(part.steps, 23);
    // A second start without --resume must refuse to overwrite the run.
    let err = train_run(&cfg, &buffer, &b, false, &never, &mut Silent).unwrap_err();
    assert!(format!("{err:#}").contains("--resume"), "{err:#}");
    let rest = train_run(&cfg, &buffer, &b, true, &never, &mut Silent).unwrap();
    assert_eq!(rest.steps, 50);

    let (ra, rb) = (
        read_metrics(&a.join("metrics.jsonl")).unwrap(),
        read_metrics(&b.join("metrics.jsonl")).unwrap(),
    );
    assert_eq!(ra.len(), 50);
    assert_eq!(rb.len(), 50);
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!((x.step, &x.metrics), (y.step, &y.metrics), "step {}", x.step);
    }

    // Resuming with a different config (other than train.steps) is refused.
    let mut changed = cfg.clone();
    changed.actor.eta = 0.5;
    let err = train_run(&changed, &buffer, &b, true, &never, &mut Silent).unwrap_err();
    assert!(format!("{err:#}").contains("differs"), "{err:#}");
}

#[test]
fn divergence_stops_with_the_step_and_keeps_the_last_checkpoint() {
    let mut t = random_transitions();
    // Rows 0..999 are sampled uniformly; poisoning every reward makes step 1 non-finite.
    t.rewards.iter_mut().for_each(|r| *r = f32::NAN);
    let buffer = ReplayBuffer::new(t);
    let dir = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);
    let err =
        train_run(&small_config(20), &buffer, dir.path(), false, &never, &mut Silent).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("diverged at step 1"), "{msg}");
    // Step 1 comes before the first checkpoint: the message must not name one.
    assert!(msg.contains("No checkpoint was written"), "{msg}");
    assert!(!dir.path().join("checkpoint/last.safetensors").exists());
}

/// Every file under `dir` with its bytes, to compare a folder before and after.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Refusals that must leave a user's folder exactly as it was: a new run into a folder that
/// holds other things, a resume against an edited config, a resume without a last
/// checkpoint; and a second process on a folder in use.
#[test]
fn run_folders_are_never_overwritten_or_shared() {
    let buffer = ReplayBuffer::new(random_transitions());
    let cfg = small_config(30);
    let dir = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);

    // A folder that is not a run: refused, its file untouched.
    let foreign = dir.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let err = train_run(&cfg, &buffer, &foreign, false, &never, &mut Silent).unwrap_err();
    assert!(format!("{err:#}").contains("not a run folder"), "{err:#}");
    assert_eq!(snapshot(&foreign).len(), 1);
    assert_eq!(std::fs::read_to_string(foreign.join("notes.txt")).unwrap(), "keep me");

    // A run, stopped at step 15 (checkpoints every 10 steps).
    let run = dir.path().join("run");
    let stop = AtomicBool::new(false);
    train_run(&cfg, &buffer, &run, false, &stop, &mut StopAt(15, &stop)).unwrap();
    let before = snapshot(&run);

    // Resume with an edited config: refused by comparison with the checkpoint's own config
    // (the run's config.toml is what the CLI reads, so it cannot be the reference).
    let mut edited = cfg.clone();
    edited.critic.gamma = 0.9;
    let err = train_run(&edited, &buffer, &run, true, &never, &mut Silent).unwrap_err();
    assert!(format!("{err:#}").contains("critic.gamma: 0.99 -> 0.9"), "{err:#}");
    assert_eq!(snapshot(&run), before, "a refused resume changed the run folder");

    // Resume without a last checkpoint: refused, history kept.
    let last = run.join("checkpoint/last.safetensors");
    let kept = dir.path().join("last.kept");
    std::fs::rename(&last, &kept).unwrap();
    let without = snapshot(&run);
    let err = train_run(&cfg, &buffer, &run, true, &never, &mut Silent).unwrap_err();
    assert!(format!("{err:#}").contains("no checkpoint/last.safetensors"), "{err:#}");
    assert_eq!(snapshot(&run), without, "a refused resume changed the run folder");
    std::fs::rename(&kept, &last).unwrap();

    // A second process on a folder in use is refused while the first holds its lock; the
    // lock is gone when the holder ends.
    let lock = std::fs::OpenOptions::new().write(true).open(run.join(".lock")).unwrap();
    lock.lock().unwrap();
    let err = train_run(&cfg, &buffer, &run, true, &never, &mut Silent).unwrap_err();
    assert!(format!("{err:#}").contains("in use by another ofql process"), "{err:#}");
    drop(lock);
    let done = train_run(&cfg, &buffer, &run, true, &never, &mut Silent).unwrap();
    assert_eq!(done.steps, 30);
}

/// The method's constants are config keys that reach the networks and the schedule: critic
/// depth, the time embedding's sizes and sharing, the learning-rate schedule and floor.
#[test]
fn method_constants_are_config_keys() {
    use ofql_nets::NamedVars;
    let buffer = ReplayBuffer::new(random_transitions());
    let t = buffer.transitions();
    let build = |set: &[&str]| {
        let items: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        let cfg = Config::from_toml_with(&small_config(10).to_toml(), &items).unwrap();
        Ofql::new(&cfg, t.obs_dim, t.act_dim, &Device::Cpu).unwrap()
    };
    let count = |net: &dyn NamedVars| net.named_vars().len();
    let base = build(&[]);
    assert_eq!(count(&build(&["critic.layers=2"]).critic) + 4, count(&base.critic));
    let elements = |net: &dyn NamedVars| {
        net.named_vars().iter().map(|(_, v)| v.as_tensor().elem_count()).sum::<usize>()
    };
    for key in ["actor.time_dim=32", "actor.time_hidden=64", "actor.share_time_mlp=false"] {
        assert_ne!(elements(&build(&[key]).actor), elements(&base.actor), "{key}");
    }
    let lrs = |set: &[&str]| {
        let mut agent = build(set);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        (0..10)
            .map(|_| agent.iterate(&buffer.sample(64, &mut rng).unwrap()).unwrap().actor_lr)
            .collect::<Vec<_>>()
    };
    let cosine = lrs(&[]);
    assert!(cosine[9] < cosine[1], "{cosine:?}");
    assert!(lrs(&["train.lr_schedule=\"constant\""]).iter().all(|&lr| lr == 3e-4));
    let floored = lrs(&["train.lr_floor=1e-4"]);
    assert!(floored[9] > cosine[9] && floored[9] > 1e-4, "{floored:?}");
    // A different logit-normal changes the MeanFlow loss's (t, r) and so the first loss.
    let flow = |set: &[&str]| {
        let mut agent = build(set);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        agent.iterate(&buffer.sample(64, &mut rng).unwrap()).unwrap().flow
    };
    assert_ne!(flow(&["actor.time_mu=1.0"]), flow(&[]));
    assert!(Config::from_toml_with("", &["actor.time_dim=33".into()]).is_err());
}

/// Checkpoints name their method; one from before methods were named (no "method") loads as
/// OFQL's, and one of another method is refused with a message that says which it is.
#[test]
fn checkpoints_name_their_method_and_old_ones_still_load() {
    let cfg = small_config(10);
    let agent = Ofql::new(&cfg, 5, 2, &Device::Cpu).unwrap();
    let mut ck = agent.checkpoint().unwrap();
    assert_eq!(ck.remove_meta("method").as_deref(), Some("\"ofql\""));
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.safetensors");
    ck.save(&old).unwrap();
    let loaded =
        agent::from_checkpoint(&Checkpoint::load(&old, &Device::Cpu).unwrap(), &Device::Cpu)
            .unwrap();
    assert_eq!((loaded.method(), loaded.obs_dim(), loaded.act_dim()), ("ofql", 5, 2));

    ck.set_json("method", &"dql").unwrap();
    let mut fresh = Ofql::new(&cfg, 5, 2, &Device::Cpu).unwrap();
    let err = format!("{:#}", fresh.restore(&ck).unwrap_err());
    assert!(err.contains("written by method `dql`"), "{err}");
    let err = format!("{:#}", agent::from_checkpoint(&ck, &Device::Cpu).err().unwrap());
    assert!(err.contains("dql"), "{err}");
}

/// Diffusion-QL on the same loop: finite metrics and a falling noise-prediction loss, a
/// resumed run equal to the uninterrupted one, and its checkpoints refused by OFQL by name.
#[test]
fn dql_trains_resumes_exactly_and_is_told_apart() {
    let buffer = ReplayBuffer::new(random_transitions());
    let t = buffer.transitions();
    let mut cfg = small_config(200);
    cfg.algo.name = "dql".into();
    // Behaviour cloning alone for the loss to fall (DQL's eta = 1 is used below).
    cfg.dql.eta = 0.0;
    cfg.validate().unwrap();
    let mut agent = agent::build(&cfg, t.obs_dim, t.act_dim, None, &Device::Cpu).unwrap();
    assert_eq!(agent.noise_width(), 5 * t.act_dim);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let metrics: Vec<Metrics> =
        (0..200).map(|_| agent.update(&buffer.sample(64, &mut rng).unwrap()).unwrap()).collect();
    assert!(metrics.iter().all(Metrics::all_finite));
    let bc = |m: &[Metrics]| m.iter().map(|m| m.get("bc").unwrap()).sum::<f64>() / m.len() as f64;
    let (first, last) = (bc(&metrics[..20]), bc(&metrics[180..]));
    assert!(last < 0.8 * first, "noise-prediction loss did not fall: {first} -> {last}");

    let mut short = cfg.clone();
    short.train.steps = 30;
    short.dql.eta = 1.0;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let never = AtomicBool::new(false);
    train_run(&short, &buffer, &a, false, &never, &mut Silent).unwrap();
    let stop = AtomicBool::new(false);
    let part = train_run(&short, &buffer, &b, false, &stop, &mut StopAt(13, &stop)).unwrap();
    assert!(part.interrupted);
    train_run(&short, &buffer, &b, true, &never, &mut Silent).unwrap();
    let (ra, rb) = (
        read_metrics(&a.join("metrics.jsonl")).unwrap(),
        read_metrics(&b.join("metrics.jsonl")).unwrap(),
    );
    assert_eq!(ra.len(), 30);
    assert!(ra.iter().all(|r| r.metrics.all_finite() && r.metrics.get("q").is_some()));
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!((x.step, &x.metrics), (y.step, &y.metrics), "step {}", x.step);
    }

    let ck = Checkpoint::load(&a.join("checkpoint/last.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(agent::checkpoint_method(&ck), "dql");
    let mut ofql = Ofql::new(&small_config(10), t.obs_dim, t.act_dim, &Device::Cpu).unwrap();
    let err = format!("{:#}", ofql.restore(&ck).unwrap_err());
    assert!(err.contains("written by method `dql`") && err.contains("algo] name"), "{err}");
    let loaded = agent::from_checkpoint(&ck, &Device::Cpu).unwrap();
    assert_eq!((loaded.method(), loaded.step()), ("dql", 30));
}

/// Flow Q-Learning on the same loop: finite metrics, a falling flow-matching BC loss, its
/// distillation target equal to an explicit Euler loop, exact resume, told apart from OFQL.
#[test]
fn fql_trains_distills_from_euler_steps_and_resumes_exactly() {
    let buffer = ReplayBuffer::new(random_transitions());
    let t = buffer.transitions();
    let mut cfg = small_config(200);
    cfg.algo.name = "fql".into();
    cfg.fql.hidden = 64;
    cfg.fql.layers = 2;
    cfg.validate().unwrap();
    let mut fql = ofql_algo::Fql::new(&cfg, t.obs_dim, t.act_dim, &Device::Cpu).unwrap();

    // The distillation target: 10 Euler steps of the BC field from z at t = i / 10, clipped.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let n = 5;
    let s =
        Tensor::from_slice(&t.observations[..n * t.obs_dim], (n, t.obs_dim), &Device::Cpu).unwrap();
    let z: Vec<f32> = (0..n * t.act_dim).map(|_| rng.random_range(-2.0..2.0)).collect();
    let z = Tensor::from_vec(z, (n, t.act_dim), &Device::Cpu).unwrap();
    let mut a = z.clone();
    for i in 0..10 {
        let time = Tensor::full(i as f32 / 10.0, (n, 1), &Device::Cpu).unwrap();
        let v = fql.bc_flow.forward(&Tensor::cat(&[&s, &a, &time], 1).unwrap()).unwrap();
        a = (a + (v / 10.0).unwrap()).unwrap();
    }
    let want: Vec<f32> = a.clamp(-1.0, 1.0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let got: Vec<f32> = fql.flow_actions(&s, &z).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(got, want);

    let metrics: Vec<Metrics> =
        (0..200).map(|_| fql.update(&buffer.sample(64, &mut rng).unwrap()).unwrap()).collect();
    assert!(metrics.iter().all(Metrics::all_finite));
    let bc = |m: &[Metrics]| m.iter().map(|m| m.get("bc").unwrap()).sum::<f64>() / m.len() as f64;
    let (first, last) = (bc(&metrics[..20]), bc(&metrics[180..]));
    assert!(last < 0.8 * first, "flow-matching loss did not fall: {first} -> {last}");

    let mut short = cfg.clone();
    short.train.steps = 30;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let never = AtomicBool::new(false);
    train_run(&short, &buffer, &a, false, &never, &mut Silent).unwrap();
    let stop = AtomicBool::new(false);
    train_run(&short, &buffer, &b, false, &stop, &mut StopAt(17, &stop)).unwrap();
    train_run(&short, &buffer, &b, true, &never, &mut Silent).unwrap();
    let (ra, rb) = (
        read_metrics(&a.join("metrics.jsonl")).unwrap(),
        read_metrics(&b.join("metrics.jsonl")).unwrap(),
    );
    assert_eq!((ra.len(), rb.len()), (30, 30));
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!((x.step, &x.metrics), (y.step, &y.metrics), "step {}", x.step);
    }
    let ck = Checkpoint::load(&a.join("checkpoint/last.safetensors"), &Device::Cpu).unwrap();
    let mut ofql = Ofql::new(&small_config(10), t.obs_dim, t.act_dim, &Device::Cpu).unwrap();
    let err = format!("{:#}", ofql.restore(&ck).unwrap_err());
    assert!(err.contains("written by method `fql`"), "{err}");
    assert_eq!(agent::from_checkpoint(&ck, &Device::Cpu).unwrap().step(), 30);
}
