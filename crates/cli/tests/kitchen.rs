//! A Minari Kitchen dataset by its id, end to end: a small scripted dataset recorded here in
//! FrankaKitchen-v1 (Minari's layout, the 59-number `observation`), trained on by name from
//! the cache, and evaluated as the paper does (D4RL's protocol: the dataset's four tasks, each
//! rewarded once, at most 280 steps; score = tasks completed / 4).

mod common;

use common::{json_ok, ofql, record_episodes};

use ofql_data::write_minari_with_layout;
use ofql_envs::{EnvConfig, EnvId, KitchenOptions};

const ID: &str = "D4RL/kitchen/mixed-v2";

/// Two 60-step episodes of a scripted sweep of the arm's joint velocities, with the tasks
/// and options Minari recorded mixed-v2 with.
fn record(cache: &std::path::Path) {
    let tasks =
        KitchenOptions::parse_tasks(&["microwave", "kettle", "bottom burner", "light switch"])
            .unwrap();
    let config = EnvConfig {
        kitchen: KitchenOptions {
            tasks_to_complete: tasks,
            remove_task_when_completed: false,
            terminate_on_tasks_completed: false,
            max_episode_steps: 450,
            ..KitchenOptions::default()
        },
        ..EnvConfig::from(EnvId::franka_kitchen())
    };
    let mut env = config.make_one().unwrap();
    let sweep = |t: usize| (0..9).map(|j| (t as f32 * 0.2 + j as f32).sin() * 0.8).collect();
    let data = record_episodes(&mut env, 2, 60, sweep);
    write_minari_with_layout(&cache.join(ID), &data, ID, Some(&[("observation", 59)])).unwrap();
}

#[test]
fn minari_kitchen_trains_by_id_and_scores_tasks_completed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    record(&cache);
    let config = dir.path().join("kitchen.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndataset = \"{ID}\"\nreward_norm = \"none\"\n\
             [train]\nsteps = 10\nbatch_size = 32\nseed = 3\neval_every = 10\n\
             checkpoint_every = 10\nlog_every = 1\n\
             [actor]\nhidden = 32\nema_start = 5\n[critic]\nhidden = 32\n\
             [eval]\nepisodes = 1\nparallel_envs = 1\ncandidates = 2\n"
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ofql"))
        .args(["train", "--config", config.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .arg("--json")
        .env("OFQL_DATA_DIR", &cache)
        .output()
        .unwrap();
    let v = json_ok(&out);
    // An untrained arm completes no task: score 0 of D4RL's (0, 4).
    assert_eq!(v["score_mean"].as_f64(), Some(0.0), "{v}");
    let e = json_ok(&ofql(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--episodes",
        "1",
        "--json",
    ]));
    assert_eq!(e["env"], "FrankaKitchen-v1");
    assert_eq!(e["lengths"], serde_json::json!([280]));
}

/// `ofql dataset generate --env kitchen-partial`: the scripted demonstrator's data lands in a
/// Minari folder under the dataset's id; an existing folder is kept; an unknown name is
/// refused with the names there are, and --episodes anywhere but Kitchen data.
#[test]
fn generated_kitchen_data_is_a_minari_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("D4RL/kitchen/partial-v2");
    let f = folder.to_str().unwrap();
    let g = json_ok(&ofql(&[
        "dataset",
        "generate",
        "--env",
        "kitchen-partial",
        "--episodes",
        "1",
        "--out",
        f,
        "--json",
    ]));
    assert_eq!(g["episodes"], 1);
    assert!(g["tasks_completed_mean"].as_f64().unwrap() >= 1.0, "{g}");
    assert!(folder.join("data/main_data.hdf5").is_file());
    // `dataset verify` replays it in FrankaKitchen-v1 from the states its noisy observations
    // show: rewards exact, next observations at the noise floor.
    let v = json_ok(&ofql(&["dataset", "verify", f, "--json"]));
    assert_eq!(v["env"], "FrankaKitchen-v1");
    assert_eq!(v["rows_checked"], g["transitions"]);
    assert_eq!(
        (v["max_abs_reward_err"].as_f64(), v["termination_mismatches"].as_u64()),
        (Some(0.0), Some(0))
    );
    let floor = &v["noise_floor"]["next_observations"]["mean_abs"];
    let (mean, floor) = (&v["next_observations"]["mean_abs"], floor);
    let (mean, floor) = (mean.as_f64().unwrap(), floor.as_f64().unwrap());
    assert!(floor > 0.0 && mean < 1.5 * floor, "{v}");
    // The recorded controls (infos/ctrl, as Minari's kitchen files have them) come from the
    // observed robot positions, stored through float32 here: equal to that rounding.
    let ctrl = &v["ctrl"];
    assert_eq!(ctrl["rows"], g["transitions"]);
    assert!(ctrl["max_abs"].as_f64().unwrap() < 1e-6, "{ctrl}");
    let again = ofql(&["dataset", "generate", "--env", "kitchen-partial", "--out", f]);
    assert!(!again.status.success(), "an existing folder is kept without --force");
    let episodes_elsewhere = ofql(&[
        "dataset",
        "generate",
        "--env",
        "hopper-v4",
        "--kind",
        "random",
        "--episodes",
        "3",
        "--out",
        "unused.hdf5",
    ]);
    let err = String::from_utf8_lossy(&episodes_elsewhere.stderr);
    assert!(!episodes_elsewhere.status.success() && err.contains("--episodes"), "{err}");
    let unknown = ofql(&["dataset", "generate", "--env", "kitchen-hinge", "--out", "unused"]);
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success() && err.contains("kitchen-mixed"), "{err}");
}
