//! `ofql train` and `ofql eval` end to end on a small D4RL-layout file written here from the
//! real simulator: JSON summaries, metrics, curves, checkpoints, resume after `kill -9`, and
//! refusal of bad configs.

mod common;

use common::{json_ok, ofql, write_config, write_dataset};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn train_then_eval_reports_json_and_writes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_dataset(dir.path());
    let config = write_config(dir.path(), "");
    let run = dir.path().join("run");
    let out = ofql(&[
        "train",
        "--config",
        &config,
        "--dataset",
        &data,
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]);
    let v = json_ok(&out);
    assert_eq!(v["steps"], 40);
    // The data handling the paper's weights were tuned with, recorded in the report.
    let r = &v["rewards"];
    assert_eq!(r["norm"], "return_range");
    let range = r["return_max"].as_f64().unwrap() - r["return_min"].as_f64().unwrap();
    assert!(range > 0.0 && (r["factor"].as_f64().unwrap() - 1000.0 / range).abs() < 1e-9, "{r}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("data.json")).unwrap()).unwrap();
    assert_eq!(record["rewards"], *r);
    assert_eq!(record["obs_norm"]["mean"].as_array().unwrap().len(), 17);
    // Without a terminal, progress comes as plain lines (a log shows what happened).
    let log = common::stderr(&out);
    assert!(log.contains("step 40/40 (100.0 %)"), "{log}");
    assert!(log.contains("step 20: score") && log.contains("; plain"), "{log}");
    assert!(v["steps_per_second"].as_f64().unwrap() > 0.0);
    assert!(v["score_mean"].as_f64().unwrap().is_finite());
    for key in ["critic", "flow", "q", "actor"] {
        assert!(v["final_losses"][key].as_f64().unwrap().is_finite(), "{key}");
    }
    let rows = metrics(&run);
    assert_eq!(rows.len(), 40);
    assert_eq!(rows.iter().filter(|r| r.get("score_mean").is_some()).count(), 2);
    // Every in-training evaluation scores both protocols.
    assert_eq!(rows.iter().filter(|r| r.get("plain_score_mean").is_some()).count(), 2);
    for f in [
        "config.toml",
        "checkpoint/last.safetensors",
        "checkpoint/best.safetensors",
        "curves_loss.png",
        "curves_q.png",
        "curves_score.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }

    let out = ofql(&["eval", "--checkpoint", run.to_str().unwrap(), "--episodes", "3", "--json"]);
    let e = json_ok(&out);
    assert_eq!(e["step"], 40);
    assert_eq!(e["returns"].as_array().unwrap().len(), 3);
    assert!(e["score_mean"].as_f64().unwrap().is_finite());
    assert!(e["score_std"].as_f64().unwrap() >= 0.0);
    let plain = json_ok(&ofql(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--episodes",
        "2",
        "--protocol",
        "plain",
        "--json",
    ]));
    assert_eq!(plain["protocol"], "plain");
    assert!(!common::stderr(&out).contains("was trained for"), "{}", common::stderr(&out));

    // --set changes the run's [eval] values for one evaluation: its own w gives the same
    // episodes, w = 0 (a uniform draw among the candidates) others; other keys are refused.
    let run_s = run.to_str().unwrap();
    let eval_with = |set: &str| {
        ofql(&["eval", "--checkpoint", run_s, "--episodes", "3", "--set", set, "--json"])
    };
    let w = e["q_weight"].as_f64().expect("the protocol's w in the report");
    assert_eq!(json_ok(&eval_with(&format!("eval.q_weight={w:?}")))["returns"], e["returns"]);
    let uniform = json_ok(&eval_with("eval.q_weight=0.0"));
    assert_eq!(uniform["q_weight"], 0.0);
    assert_ne!(uniform["returns"], e["returns"], "w = 0 must choose other candidates");
    for (bad, says) in [
        ("actor.eta=0.3", "eval.* keys only"),
        ("eval.protocol=\"plain\"", "--protocol"),
        ("eval.q_weight=-1.0", "eval.q_weight"),
    ] {
        let out = eval_with(bad);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(common::stderr(&out).contains(says), "{bad}: {}", common::stderr(&out));
    }

    // `ofql critic`: the critics on the run's own data, seeded (250 states: two chunks).
    let critic = || ofql(&["critic", "--checkpoint", run_s, "--states", "250", "--json"]);
    let c = json_ok(&critic());
    assert_eq!((c["step"].as_u64(), c["states"].as_u64()), (Some(40), Some(250)));
    assert_eq!((c["method"].as_str(), c["candidates"].as_u64()), (Some("ofql"), Some(4)));
    for key in ["q_data", "q_policy", "q_best_candidate"] {
        assert!(c[key].as_f64().unwrap().is_finite(), "{key}: {c}");
    }
    for key in ["distance_policy", "distance_best_candidate"] {
        let d = c[key].as_f64().unwrap();
        // Actions lie in [-1, 1]: no rms distance exceeds 2.
        assert!(d > 0.0 && d <= 2.0, "{key}: {c}");
    }
    assert_eq!(json_ok(&critic()), c, "a seed fixes the numbers");
    let out = ofql(&["critic", "--checkpoint", run_s, "--states", "1000000000"]);
    assert!(!out.status.success(), "more states than the data's transitions accepted");
    assert!(common::stderr(&out).contains("at most"), "{}", common::stderr(&out));
    // Weights of the same sizes in another environment run, with a warning naming both.
    let other = ofql(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--episodes",
        "1",
        "--env",
        "walker2d-v4",
        "--json",
    ]);
    json_ok(&other);
    let warning = common::stderr(&other);
    assert!(
        warning.contains("warning")
            && warning.contains("HalfCheetah")
            && warning.contains("Walker2d"),
        "{warning}"
    );

    // Other data under the run's dataset path: refused, not silently measured.
    let mut moved = ofql_data::load(Path::new(&data)).unwrap().0;
    moved.observations.mapv_inplace(|x| x + 1.0);
    ofql_data::write_d4rl(Path::new(&data), &moved, ofql_data::Dtype::F32).unwrap();
    let out = critic();
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("not the data the run trained on"), "{:?}", out);
}

/// Diffusion-QL through the same commands: `--set algo.name=dql` trains (T = 3 here), its
/// checkpoint evaluates with `ofql eval` under both protocols, and a resume with another
/// method is refused by name.
#[test]
fn dql_trains_and_evaluates_through_the_same_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_dataset(dir.path());
    let config = write_config(dir.path(), "[algo]\nname = \"dql\"\n[dql]\nsteps = 3\n");
    let run = dir.path().join("dql");
    let run_s = run.to_str().unwrap();
    let v = json_ok(&ofql(&[
        "train",
        "--config",
        &config,
        "--dataset",
        &data,
        "--out",
        run_s,
        "--json",
    ]));
    assert_eq!(v["steps"], 40);
    for key in ["critic", "bc", "q", "actor"] {
        assert!(v["final_losses"][key].as_f64().unwrap().is_finite(), "{key}");
    }
    assert!(v["score_mean"].as_f64().unwrap().is_finite());
    for protocol in ["cleandiffuser", "plain"] {
        let e = json_ok(&ofql(&[
            "eval",
            "--checkpoint",
            run_s,
            "--episodes",
            "2",
            "--protocol",
            protocol,
            "--json",
        ]));
        assert_eq!((e["step"].as_u64(), e["protocol"].as_str()), (Some(40), Some(protocol)));
        assert!(e["score_mean"].as_f64().unwrap().is_finite());
    }
    let out =
        ofql(&["train", "--resume", run_s, "--steps", "50", "--set", "algo.name=ofql", "--json"]);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("algo.name"), "{}", common::stderr(&out));
}

/// Start a run, kill -9 it once it is past its second checkpoint, resume, and compare every
/// logged step with an uninterrupted run.
#[test]
fn resume_after_kill_9_gives_the_uninterrupted_losses() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_dataset(dir.path());
    let config = write_config(dir.path(), "");
    let common = |out: &PathBuf| -> Vec<String> {
        [
            "train",
            "--config",
            &config,
            "--dataset",
            &data,
            "--steps",
            "150",
            "--no-eval",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (full, killed) = (dir.path().join("full"), dir.path().join("killed"));
    json_ok(&ofql(
        &[common(&full), vec!["--json".into()]]
            .concat()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));

    let mut child = Command::new(env!("CARGO_BIN_EXE_ofql"))
        .args(common(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while metrics_len(&killed) < 27 {
        assert!(started.elapsed() < Duration::from_secs(120), "run made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no chance to write anything more.
    child.wait().unwrap();
    let at_kill = metrics_len(&killed);
    assert!(at_kill < 150, "killed too late to test anything");

    let v = json_ok(&ofql(&["train", "--resume", killed.to_str().unwrap(), "--json"]));
    assert_eq!(v["steps"], 150);
    let (a, b) = (metrics(&full), metrics(&killed));
    assert_eq!(a.len(), 150);
    assert_eq!(b.len(), 150);
    for (x, y) in a.iter().zip(&b) {
        for key in ["step", "critic", "flow", "q", "actor", "q_mean", "q_policy"] {
            assert_eq!(x[key], y[key], "{key} at step {} (killed after {at_kill} rows)", x["step"]);
        }
    }
}

fn metrics_len(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl")).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn bad_configs_and_inputs_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_dataset(dir.path());
    let run = dir.path().join("run");
    let run = run.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--config".into(), write_config(dir.path(), "[oops]\nx = 1\n")], "oops"),
        (
            vec![
                "--config".into(),
                write_config(dir.path(), ""),
                "--set".into(),
                "actor.eta=-1".into(),
            ],
            "actor.eta",
        ),
        (
            vec![
                "--config".into(),
                write_config(dir.path(), ""),
                "--set".into(),
                "actor.flow_ratio=2".into(),
            ],
            "actor.flow_ratio",
        ),
        (
            vec![
                "--config".into(),
                write_config(dir.path(), ""),
                "--set".into(),
                "train.batch_size=0".into(),
            ],
            "train.batch_size",
        ),
        (
            vec![
                "--config".into(),
                write_config(dir.path(), ""),
                "--set".into(),
                "eval.protocol=best".into(),
            ],
            "eval.protocol",
        ),
        (
            vec!["--config".into(), dir.path().join("missing.toml").to_str().unwrap().into()],
            "missing.toml",
        ),
        (
            vec![
                "--config".into(),
                write_config(dir.path(), ""),
                "--env".into(),
                "hopper-v4".into(),
            ],
            "Hopper-v4",
        ),
        (
            vec![
                "--config".into(),
                write_config(dir.path(), ""),
                "--env".into(),
                "cartpole".into(),
            ],
            "cartpole",
        ),
    ];
    for (mut args, needle) in cases {
        if !args.iter().any(|a| a == "--dataset") {
            args.extend(["--dataset".into(), data.clone()]);
        }
        let mut full: Vec<String> =
            vec!["train".into(), "--out".into(), run.into(), "--json".into()];
        full.extend(args);
        let out = ofql(&full.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!out.status.success(), "accepted: {full:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{full:?}: stderr does not name `{needle}`: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["error"].as_str().unwrap().contains(needle));
    }
    // A dataset that is neither a file nor a known name.
    let out = ofql(&[
        "train",
        "--config",
        &write_config(dir.path(), ""),
        "--dataset",
        "halfcheetah-medum-v2",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("halfcheetah-medium-v2"));
}

/// Ctrl-C (SIGINT) writes a checkpoint at the current step and exits non-zero, saying how to
/// resume; the resumed run finishes the budget.
#[test]
fn ctrl_c_checkpoints_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_dataset(dir.path());
    let config = write_config(dir.path(), "");
    let run = dir.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_ofql"))
        .args(["train", "--config", &config, "--dataset", &data, "--steps", "400", "--no-eval"])
        .args(["--out", run.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while metrics_len(&run) < 15 {
        assert!(started.elapsed() < Duration::from_secs(120), "run made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "an interrupted run must not exit 0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--resume"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stopped = v["steps"].as_u64().unwrap();
    assert!(v["interrupted"].as_bool().unwrap());
    assert!((15..400).contains(&stopped), "stopped at {stopped}");
    // The checkpoint holds exactly the step where it stopped: nothing was lost.
    assert_eq!(metrics_len(&run) as u64, stopped);

    let v = json_ok(&ofql(&["train", "--resume", run.to_str().unwrap(), "--json"]));
    assert_eq!(v["steps"], 400);
    assert_eq!(metrics_len(&run), 400);
}
