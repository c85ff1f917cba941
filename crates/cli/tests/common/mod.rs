//! Helpers shared by the `ofql` end-to-end tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Command, Output};

use ndarray::{Array1, Array2};
use ofql_data::{Dataset, Dtype, write_d4rl};
use ofql_envs::Env;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Run the `ofql` binary built for these tests.
pub fn ofql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ofql")).args(args).output().unwrap()
}

/// The single JSON object a `--json` command printed on stdout.
pub fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "exactly one JSON line expected: {stdout}\nstderr: {}",
        stderr(out)
    );
    serde_json::from_str(&stdout).unwrap()
}

/// Like `json`, for a command that must have succeeded.
pub fn json_ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    json(out)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Two 150-step HalfCheetah-v4 episodes of a state-dependent behaviour policy, D4RL layout.
pub fn write_dataset(dir: &Path) -> String {
    let mut env = Env::new("halfcheetah-v4".parse().unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (d, a, steps) = (env.obs_dim(), env.act_dim(), 150);
    let (mut obs, mut act, mut rew, mut timeouts) = (vec![], vec![], vec![], vec![]);
    for _ in 0..2 {
        let mut o = env.reset(&mut rng);
        for i in 0..steps {
            let u: Vec<f32> = (0..a)
                .map(|j| ((2.0 * o[j]).sin() as f32 + rng.random_range(-0.1..0.1)).clamp(-1.0, 1.0))
                .collect();
            let s = env.step(&u).unwrap();
            obs.extend(o.iter().map(|&x| x as f32));
            act.extend(&u);
            rew.push(s.reward as f32);
            timeouts.push(i + 1 == steps);
            o = s.obs;
        }
    }
    let n = rew.len();
    let data = Dataset::new(
        Array2::from_shape_vec((n, d), obs).unwrap(),
        Array2::from_shape_vec((n, a), act).unwrap(),
        Array1::from(rew),
        Array1::from(vec![false; n]),
        Array1::from(timeouts),
    );
    let path = dir.join("cheetah-tiny.hdf5");
    write_d4rl(&path, &data, Dtype::F32).unwrap();
    path.to_str().unwrap().to_string()
}

/// Small networks and a short budget, evaluation on 2 episodes; one file per `extra`.
pub fn write_config(dir: &Path, extra: &str) -> String {
    let n = std::fs::read_dir(dir).unwrap().count();
    let path = dir.join(format!("tiny{n}.toml"));
    let text = format!(
        "[data]\nenv = \"halfcheetah-v4\"\n\
         [train]\nsteps = 40\nbatch_size = 64\nseed = 3\neval_every = 20\ncheckpoint_every = 10\nlog_every = 1\n\
         [actor]\nhidden = 64\nema_start = 10\n\
         [critic]\nhidden = 64\n\
         [eval]\nepisodes = 2\nparallel_envs = 2\ncandidates = 4\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Record `episodes` episodes of `steps` steps in `env` (seeded resets 0, 1, ...), actions from
/// `act(t)`, as a dataset with next observations and a time-limit cut at each episode's end:
/// the rows a Minari dataset of that environment holds.
pub fn record_episodes(
    env: &mut ofql_envs::Env,
    episodes: u64,
    steps: usize,
    mut act: impl FnMut(usize) -> Vec<f32>,
) -> Dataset {
    let (d, a) = (env.obs_dim(), env.act_dim());
    let (mut obs, mut next, mut acts, mut rew, mut timeouts) =
        (vec![], vec![], vec![], vec![], vec![]);
    for episode in 0..episodes {
        let mut o = env.reset_with_seed(Some(episode)).unwrap();
        for t in 0..steps {
            let u = act(t);
            let s = env.step(&u).unwrap();
            obs.extend(o.iter().map(|&x| x as f32));
            next.extend(s.obs.iter().map(|&x| x as f32));
            acts.extend(&u);
            rew.push(s.reward as f32);
            timeouts.push(t + 1 == steps);
            o = s.obs;
        }
    }
    let n = rew.len();
    let mut data = Dataset::new(
        Array2::from_shape_vec((n, d), obs).unwrap(),
        Array2::from_shape_vec((n, a), acts).unwrap(),
        Array1::from(rew),
        Array1::from(vec![false; n]),
        Array1::from(timeouts),
    );
    data.next_observations = Some(Array2::from_shape_vec((n, d), next).unwrap());
    data
}
