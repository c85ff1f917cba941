//! `ofql report` on real runs: two seeds trained and evaluated here, recorded as `cargo xtask
//! reproduce-d4rl` records them (`run.json`), aggregated into the table, CSV and curves.

mod common;

use std::path::Path;

use common::{json_ok, ofql, stderr, write_config, write_dataset};

/// Train and evaluate one seed, then write its `run.json` in the xtask's format.
fn run_seed(dir: &Path, config: &str, data: &str, seed: u64, kind: &str) -> f64 {
    let run = dir.join(format!("runs-{kind}/halfcheetah-medium-v2/default/seed{seed}"));
    let run_s = run.to_str().unwrap();
    let args = ["train", "--config", config, "--dataset", data, "--out", run_s, "--json"];
    let seed_s = seed.to_string();
    let train = json_ok(&ofql(&[&args[..], &["--seed", &seed_s]].concat()));
    let eval = |which: &str, protocol: &str| {
        json_ok(&ofql(&[
            "eval",
            "--checkpoint",
            run_s,
            "--which",
            which,
            "--protocol",
            protocol,
            "--episodes",
            "2",
            "--json",
        ]))
    };
    let (last, best) = (eval("last", "cleandiffuser"), eval("best", "cleandiffuser"));
    let last_plain = eval("last", "plain");
    let record = serde_json::json!({
        "dataset": "halfcheetah-medium-v2", "data": kind, "variant": "default", "seed": seed,
        "resumed": false, "train_seconds": 1.0, "wall_seconds": 2.0,
        "train": train, "eval_last": last, "eval_best": best, "eval_last_plain": last_plain,
    });
    std::fs::write(run.join("run.json"), record.to_string()).unwrap();
    last["score_mean"].as_f64().unwrap()
}

#[test]
fn report_aggregates_seeds_and_keeps_generated_data_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_dataset(dir.path());
    let config = write_config(dir.path(), "");
    let scores: Vec<f64> =
        [1, 2].iter().map(|&s| run_seed(dir.path(), &config, &data, s, "d4rl")).collect();
    let out = dir.path().join("results");
    let runs = dir.path().join("runs-d4rl");
    let (runs_s, out_s) = (runs.to_str().unwrap(), out.to_str().unwrap());
    let r = json_ok(&ofql(&["report", "--runs", runs_s, "--name", "t", "--out", out_s, "--json"]));
    assert_eq!(r["runs"], 2);
    let row = &r["rows"][0];
    let mean = (scores[0] + scores[1]) / 2.0;
    let std = (scores[0] - scores[1]).abs() / 2f64.sqrt(); // sample std of two values
    assert!((row["last_mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{row}");
    assert!((row["last_std"].as_f64().unwrap() - std).abs() < 1e-9, "{row}");
    assert_eq!(row["seeds"], 2);
    let md = std::fs::read_to_string(out.join("t.md")).unwrap();
    assert!(md.contains("paper OFQL") && md.contains("63.8"), "the paper's number beside ours");
    let csv = std::fs::read_to_string(out.join("t.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2);
    assert!(out.join("t/halfcheetah-medium-v2.png").is_file());

    // Generated data: labelled, and never beside the paper's D4RL numbers.
    run_seed(dir.path(), &config, &data, 1, "generated");
    let gen_runs = dir.path().join("runs-generated");
    let g = gen_runs.to_str().unwrap();
    // The xtask saves what `ofql dataset generate` reported; the table shows the data's level.
    std::fs::create_dir_all(gen_runs.join("data")).unwrap();
    let record = r#"{"return_mean": 4000.0, "transitions": 300}"#;
    std::fs::write(gen_runs.join("data/halfcheetah-medium-v2.json"), record).unwrap();
    // Without --out the report goes beside the runs, never into the project's docs/.
    let r = json_ok(&ofql(&["report", "--runs", g, "--name", "g", "--json"]));
    assert_eq!(r["table"].as_str().unwrap(), gen_runs.join("g.md").to_str().unwrap());
    let info = ofql_data::registry::lookup("halfcheetah-medium-v2").unwrap();
    let data_score = r["rows"][0]["data_score"].as_f64().unwrap();
    assert!((data_score - info.normalized_score(4000.0)).abs() < 1e-9);
    let md = std::fs::read_to_string(gen_runs.join("g.md")).unwrap();
    assert!(md.contains("(generated)") && !md.contains("paper OFQL"), "{md}");
    let plain = r["rows"][0]["last_plain_mean"].as_f64();
    assert!(plain.is_some() && md.contains("last plain"), "both protocols in the table: {md}");
    assert!(md.contains(&format!("| {data_score:.1} |")), "{md}");

    // One table never mixes the two.
    std::fs::rename(gen_runs.join("halfcheetah-medium-v2"), runs.join("generated")).unwrap();
    std::fs::remove_dir_all(gen_runs.join("data")).unwrap();
    let bad = ofql(&["report", "--runs", runs_s, "--name", "x", "--out", out_s]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("mixes"), "{}", stderr(&bad));
    let empty =
        ofql(&["report", "--runs", dir.path().join("nothing").to_str().unwrap(), "--name", "x"]);
    assert!(!empty.status.success());
}

/// Runs still training (no run.json) are listed with their in-training evaluations, named by
/// the plan the xtask writes beside them (or by its folder layout), and a report of only
/// unfinished runs works; a folder the xtask set aside is not one of them.
#[test]
fn report_lists_unfinished_runs_with_their_evaluations() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_dataset(dir.path());
    let config = write_config(dir.path(), "");
    let runs = dir.path().join("runs");
    let run = runs.join("halfcheetah-medium-v2/actor.eta-0.1/seed4");
    let run_s = run.to_str().unwrap();
    let train = ["train", "--config", &config, "--dataset", &data, "--out", run_s, "--json"];
    json_ok(&ofql(&[&train[..], &["--set", "actor.eta=0.1"]].concat()));
    let aside = runs.join("halfcheetah-medium-v2/actor.eta-0.1/seed4.unfinished-17");
    std::fs::create_dir_all(&aside).unwrap();
    std::fs::copy(run.join("metrics.jsonl"), aside.join("metrics.jsonl")).unwrap();
    // The in-training evaluations, as the run logged them.
    let logged: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("score_mean").is_some())
        .collect();
    assert_eq!(logged.len(), 2, "evaluations at steps 20 and 40");

    let runs_s = runs.to_str().unwrap();
    let report =
        |name: &str| json_ok(&ofql(&["report", "--runs", runs_s, "--name", name, "--json"]));
    let r = report("a");
    assert_eq!(r["runs"], 0);
    assert_eq!(r["unfinished"].as_array().unwrap().len(), 1, "{r}");
    let u = &r["unfinished"][0];
    assert_eq!(u["dataset"], "halfcheetah-medium-v2");
    assert_eq!(u["variant"], "actor.eta-0.1", "without a plan: the folder's name");
    assert_eq!(u["seed"], 4);
    assert_eq!(u["logged_steps"], 40);
    for (e, want) in u["evaluations"].as_array().unwrap().iter().zip(&logged) {
        assert_eq!(e["step"], want["step"]);
        assert_eq!(e["score_mean"], want["score_mean"]);
        assert_eq!(e["plain_score_mean"], want["plain_score_mean"]);
    }
    let md = std::fs::read_to_string(runs.join("a.md")).unwrap();
    assert!(md.contains("No run has finished yet") && md.contains("## Unfinished runs"), "{md}");
    let score = logged[1]["score_mean"].as_f64().unwrap();
    assert!(md.contains(&format!("| 40 | {score:.1}")), "{md}");
    assert!(runs.join("a/halfcheetah-medium-v2.png").is_file(), "its learning curve");

    // The plan the xtask writes beside the folder names the run exactly.
    let plan =
        r#"{"dataset":"halfcheetah-medium-v2","data":"d4rl","variant":"actor.eta=0.1","seed":4}"#;
    std::fs::write(run.with_file_name("seed4.plan.json"), plan).unwrap();
    assert_eq!(report("b")["unfinished"][0]["variant"], "actor.eta=0.1");
}
