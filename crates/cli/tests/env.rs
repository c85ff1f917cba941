//! `ofql env rollout` and `ofql dataset verify` end to end, on files the tests make.

mod common;

use common::{json, ofql, stderr};

use std::path::Path;
use std::process::Command;

use ndarray::{Array1, Array2};
use ofql_data::{Dataset, Dtype, write_d4rl};
use ofql_envs::Env;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn rollout_prints_one_json_object_and_is_reproducible() {
    let args = ["env", "rollout", "--env", "Hopper-v4", "--episodes", "4", "--seed", "5", "--json"];
    let first = ofql(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    let report = json(&first);
    let episodes = report["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 4);
    let returns: Vec<f64> = episodes.iter().map(|e| e["return"].as_f64().unwrap()).collect();
    let mean = returns.iter().sum::<f64>() / 4.0;
    assert!((report["returns"]["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    let normalized = report["normalized"]["mean"].as_f64().unwrap();
    assert!((normalized - 100.0 * (mean + 20.272305) / (3234.3 + 20.272305)).abs() < 1e-9);
    assert_eq!(report["normalized_with"], "d4rl");
    // Same seed, other thread count: the same episodes. (A stochastic policy's draws follow
    // the batch layout, so `--num-envs` stays the same.)
    let again = ofql(&[&args[..], &["--threads", "1"]].concat());
    assert_eq!(json(&again)["episodes"], report["episodes"]);
}

#[test]
fn rollout_text_and_v5_without_d4rl_score() {
    let out =
        ofql(&["env", "rollout", "--env", "halfcheetah-v5", "--policy", "zero", "--episodes", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HalfCheetah-v5: return") && text.contains("1000  time limit"), "{text}");
    assert!(text.contains("only for the v4 environments"), "{text}");
}

#[test]
fn unknown_environment_lists_the_known_ones() {
    let out = ofql(&["env", "rollout", "--env", "Ant-v4", "--json"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Hopper-v4, Hopper-v5, Walker2d-v4"), "{}", stderr(&out));
    assert!(json(&out)["error"].as_str().unwrap().contains("unknown environment `Ant-v4`"));
}

#[test]
fn missing_model_files_say_how_to_provision_them() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ofql"))
        .args(["env", "rollout", "--env", "Hopper-v4"])
        .env("OFQL_MODELS_DIR", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("hopper.xml") && err.contains("cargo xtask setup"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Random-action episodes of `env` recorded D4RL-style (f32, row i = state before step i).
fn record(env_name: &str, episodes: usize, with_states: bool) -> Dataset {
    let mut env = Env::new(env_name.parse().unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut obs, mut next, mut acts, mut rew, mut term, mut tout, mut qpos, mut qvel) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..episodes {
        let mut o = env.reset(&mut rng);
        for t in 0..60 {
            let a: Vec<f32> = (0..env.act_dim()).map(|_| rng.random_range(-1.0..1.0)).collect();
            qpos.extend(env.qpos().iter().map(|&x| x as f32));
            qvel.extend(env.qvel().iter().map(|&x| x as f32));
            obs.extend(o.iter().map(|&x| x as f32));
            let step = env.step(&a).unwrap();
            acts.extend_from_slice(&a);
            next.extend(step.obs.iter().map(|&x| x as f32));
            rew.push(step.reward as f32);
            term.push(step.terminated);
            tout.push(t == 59 && !step.terminated);
            o = step.obs;
            if step.terminated {
                break;
            }
        }
    }
    let n = rew.len();
    let matrix = |v: Vec<f32>| Array2::from_shape_vec((n, v.len() / n), v).unwrap();
    let mut d = Dataset::new(
        matrix(obs),
        matrix(acts),
        Array1::from(rew),
        Array1::from(term),
        Array1::from(tout),
    );
    d.next_observations = Some(matrix(next));
    if with_states {
        d.qpos = Some(matrix(qpos));
        d.qvel = Some(matrix(qvel));
    }
    d
}

fn write(dir: &Path, name: &str, data: &Dataset) -> String {
    let path = dir.join(name);
    write_d4rl(&path, data, Dtype::F32).unwrap();
    path.display().to_string()
}

#[test]
fn verify_replays_a_recorded_file_and_names_the_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = record("Hopper-v4", 3, true);
    let clean = write(dir.path(), "hopper-medium-v2.hdf5", &data);
    let out = ofql(&["dataset", "verify", &clean, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["env"], "Hopper-v4", "inferred from the file name");
    assert_eq!(report["rows_checked"].as_u64().unwrap() as usize, data.len());
    // float32 storage rounds the states: small errors, no wrong terminations.
    let (obs_err, reward_err) = (
        report["max_abs_obs_err"].as_f64().unwrap(),
        report["max_abs_reward_err"].as_f64().unwrap(),
    );
    assert!(obs_err > 0.0 && obs_err < 1e-2, "obs error {obs_err}");
    assert!(reward_err < 1e-2, "reward error {reward_err}");
    assert_eq!(report["termination_mismatches"], 0);

    data.rewards[7] += 1.0;
    let bad = write(dir.path(), "corrupt.hdf5", &data);
    let out = ofql(&["dataset", "verify", &bad, "--env", "hopper", "--json"]);
    let report = json(&out);
    assert!((report["max_abs_reward_err"].as_f64().unwrap() - 1.0).abs() < 1e-2);
    assert_eq!(report["worst_reward_rows"][0]["row"], 7);
    let text = ofql(&["dataset", "verify", &bad, "--env", "Hopper-v4"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("termination mismatches: 0"));
}

#[test]
fn verify_refuses_data_of_another_environment_and_files_without_states() {
    let dir = tempfile::tempdir().unwrap();
    let hopper = write(dir.path(), "hopper-medium-v2.hdf5", &record("Hopper-v4", 1, true));
    let out = ofql(&["dataset", "verify", &hopper, "--env", "Walker2d-v4"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Walker2d-v4 has 9 qpos") && err.contains("got 6"), "{err}");

    let unnamed = write(dir.path(), "data.hdf5", &record("Hopper-v4", 1, true));
    let err = stderr(&ofql(&["dataset", "verify", &unnamed]));
    assert!(err.contains("pass --env"), "{err}");

    let stateless = write(dir.path(), "hopper-expert-v2.hdf5", &record("Hopper-v4", 1, false));
    let out = ofql(&["dataset", "verify", &stateless, "--json"]);
    assert!(!out.status.success());
    assert!(json(&out)["error"].as_str().unwrap().contains("no infos/qpos"));
}
