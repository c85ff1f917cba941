//! `ofql behaviour train` then `ofql dataset generate` and `verify`: datasets made by the
//! project's own policies replay in the simulator exactly (error 0).

mod common;

use common::{json_ok, ofql};

#[test]
fn behaviour_snapshots_make_datasets_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("sac");
    let run = run.to_str().unwrap();
    let v = json_ok(&ofql(&[
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
    ]));
    assert_eq!(v["steps"], 400);

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
        let r = json_ok(&ofql(&["dataset", "verify", file, "--env", "hopper-v4", "--json"]));
        assert_eq!(r["rows_checked"], 600);
        assert_eq!(r["termination_mismatches"], 0, "{kind}");
        // Exact states, compared at the file's float32: the replay is the recording.
        assert_eq!(r["max_abs_obs_err"].as_f64(), Some(0.0), "{kind}: {r}");
        assert_eq!(r["max_abs_reward_err"].as_f64(), Some(0.0), "{kind}: {r}");
        let info = json_ok(&ofql(&["dataset", "info", file, "--env", "hopper", "--json"]));
        assert!(info["transitions"].as_u64().unwrap() > 0);
        let random = &info["metadata"]["policy/random_return"];
        assert!(random.as_f64().is_some_and(|r| r.is_finite()), "{kind}: {info}");
    }

    // medium-replay: the run's own transitions up to the medium snapshot, states included.
    let snaps = std::fs::read_to_string(dir.path().join("sac/snapshots.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(snaps.lines().next().unwrap()).unwrap();
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
    assert!(rows <= first["step"].as_u64().unwrap() || snaps.lines().count() == 2);
    let r = json_ok(&ofql(&["dataset", "verify", file, "--env", "hopper-v4", "--json"]));
    assert_eq!(r["rows_checked"], rows);
    assert_eq!(r["termination_mismatches"], 0);
    assert_eq!(r["max_abs_obs_err"].as_f64(), Some(0.0), "{r}");
    assert_eq!(r["max_abs_reward_err"].as_f64(), Some(0.0), "{r}");

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
    let out =
        ofql(&["dataset", "generate", "--env", "hopper-v4", "--kind", "medium", "--out", "x.hdf5"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy"));
}
