//! `ofql behaviour train` then `ofql dataset generate` and `verify`: datasets made by the
//! project's own policies replay in the simulator exactly (error 0).

mod common;

use common::{json_ok, ofql};

/// `ofql dataset verify` of a generated hopper file: every row replays with error exactly 0
/// (exact states, compared at the file's float32). Returns the rows checked.
fn assert_replays_exactly(file: &str, what: &str) -> u64 {
    let r = json_ok(&ofql(&["dataset", "verify", file, "--env", "hopper-v4", "--json"]));
    assert_eq!(r["termination_mismatches"], 0, "{what}");
    assert_eq!(r["max_abs_obs_err"].as_f64(), Some(0.0), "{what}: {r}");
    assert_eq!(r["max_abs_reward_err"].as_f64(), Some(0.0), "{what}: {r}");
    r["rows_checked"].as_u64().unwrap()
}

#[test]
fn behaviour_snapshots_make_datasets_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("sac");
    let run = run.to_str().unwrap();
    let out = ofql(&[
        "behaviour",
        "train",
        "--env",
        "hopper-v4",
        "--steps",
        "400",
        "--eval-every",
        "200",
        "--out",
        run,
        "--json",
    ]);
    let v = json_ok(&out);
    assert_eq!(v["steps"], 400);
    // Without a terminal, progress comes as plain lines a log keeps.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("step 400/400 (100.0 %)") && log.contains("step 200: return"), "{log}");

    for kind in ["random", "medium", "expert", "medium-expert"] {
        let file = dir.path().join(format!("hopper-{kind}.hdf5"));
        let file = file.to_str().unwrap();
        let g = json_ok(&ofql(&[
            "dataset",
            "generate",
            "--env",
            "hopper-v4",
            "--kind",
            kind,
            "--policy",
            run,
            "--steps",
            "600",
            "--out",
            file,
            "--json",
        ]));
        assert_eq!(g["transitions"], 600, "{kind}");
        assert_eq!(assert_replays_exactly(file, kind), 600);
        let info = json_ok(&ofql(&["dataset", "info", file, "--env", "hopper", "--json"]));
        assert!(info["transitions"].as_u64().unwrap() > 0);
        let random = &info["metadata"]["policy/random_return"];
        assert!(random.as_f64().is_some_and(|r| r.is_finite()), "{kind}: {info}");
    }

    // medium-replay: the run's own transitions up to the medium snapshot, states included.
    // D4RL's rule: the first snapshot reaching a third of the best return.
    let snaps: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("sac/snapshots.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let ret = |s: &serde_json::Value| s["return_mean"].as_f64().unwrap();
    let best = snaps.iter().map(ret).fold(f64::NEG_INFINITY, f64::max);
    let medium = snaps.iter().find(|s| ret(s) >= best / 3.0).unwrap();
    let file = dir.path().join("hopper-medium-replay.hdf5");
    let file = file.to_str().unwrap();
    let g = json_ok(&ofql(&[
        "dataset",
        "generate",
        "--env",
        "hopper-v4",
        "--kind",
        "medium-replay",
        "--policy",
        run,
        "--out",
        file,
        "--json",
    ]));
    let rows = g["transitions"].as_u64().unwrap();
    assert!(rows == 200 || rows == 400, "medium is one of the two snapshots: {g}");
    assert_eq!(rows, medium["step"].as_u64().unwrap(), "every step up to the medium snapshot");
    assert_eq!(assert_replays_exactly(file, "medium-replay"), rows);

    // Export: the medium and expert weights alone still make datasets; replay needs the run.
    let shipped = dir.path().join("shipped");
    let shipped = shipped.to_str().unwrap();
    let e = json_ok(&ofql(&["behaviour", "export", "--run", run, "--out", shipped, "--json"]));
    assert_eq!(e["env"], "hopper-v4");
    let file = dir.path().join("from-shipped.hdf5");
    let file = file.to_str().unwrap();
    let args = ["dataset", "generate", "--env", "hopper-v4", "--policy", shipped, "--out", file];
    let g =
        json_ok(&ofql(&[&args[..], &["--kind", "expert", "--steps", "300", "--json"]].concat()));
    assert_eq!(g["transitions"], 300);
    let steps = ["--kind", "medium-replay", "--steps", "100", "--force"];
    let out = ofql(&[&args[..], &steps[..]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--steps does not apply"));
    let out = ofql(&[&args[..], &["--kind", "medium-replay", "--force"]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("checkpoint"));
    // Without --policy, medium comes from the policies the project ships, named in the log;
    // medium-replay (which needs a behaviour run) still asks for --policy.
    let x = dir.path().join("x.hdf5");
    let x = x.to_str().unwrap();
    let base = ["dataset", "generate", "--env", "hopper-v4", "--out", x, "--json"];
    let out = ofql(&[&base[..], &["--kind", "medium", "--steps", "50"]].concat());
    let g = json_ok(&out);
    assert_eq!(g["transitions"], 50);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("shipped behaviour policies") && log.contains("hopper-v4"), "{log}");
    let out = ofql(&[&base[..], &["--kind", "medium-replay", "--force"]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy"));
}
