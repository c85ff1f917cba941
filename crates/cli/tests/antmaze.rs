//! A Minari AntMaze dataset by its id, end to end: data recorded here in the simulator
//! (Gymnasium-Robotics' layout: dictionary observations), put in the cache as Minari keeps it,
//! trained on by name, and evaluated as the paper does in the dataset's evaluation maze.

mod common;

use common::{json_ok, ofql, record_episodes, stderr};

use ofql_data::{Dataset, write_minari_with_layout};
use ofql_envs::maze::GOAL_RADIUS;
use ofql_envs::{EnvConfig, EnvId, MazeMap, MazeOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ID: &str = "D4RL/antmaze/medium-play-v1";

/// Three 150-step episodes of random actions in AntMaze_Medium-v4 (continuing task, as
/// Minari recorded it), goal in the rows.
fn record(cache: &std::path::Path) {
    let config = EnvConfig {
        maze: MazeOptions { goal_in_observation: true, ..MazeOptions::default() },
        ..EnvConfig::from(EnvId::ant_maze(MazeMap::Medium))
    };
    let mut env = config.make_one().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let data = record_episodes(&mut env, 3, 150, |_| {
        (0..8).map(|_| rng.random_range(-1.0..1.0)).collect()
    });
    let layout = [("achieved_goal", 2), ("observation", 27), ("desired_goal", 2)];
    write_minari_with_layout(&cache.join(ID), &data, ID, Some(&layout)).unwrap();
}

#[test]
fn minari_antmaze_trains_by_id_and_scores_in_its_evaluation_maze() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    record(&cache);
    let config = dir.path().join("maze.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndataset = \"{ID}\"\nreward_norm = \"none\"\nreward_shift = -1.0\n\
             [train]\nsteps = 20\nbatch_size = 32\nseed = 3\neval_every = 20\n\
             checkpoint_every = 10\nlog_every = 1\n\
             [actor]\nhidden = 32\nema_start = 10\n[critic]\nhidden = 32\nmax_q_backup = true\n\
             [eval]\nepisodes = 2\nparallel_envs = 2\ncandidates = 4\n"
        ),
    )
    .unwrap();
    // The cache is found through OFQL_DATA_DIR, as a user's Minari folder would be.
    let run = dir.path().join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ofql"))
        .args(["train", "--config", config.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .arg("--json")
        .env("OFQL_DATA_DIR", &cache)
        .output()
        .unwrap();
    let v = json_ok(&out);
    let log = stderr(&out);
    assert!(log.contains("obs 31 / act 8"), "{log}");
    assert!(log.contains("step 20: score"), "{log}");
    assert!(log.contains("closest to the goal"), "{log}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert!(last["closest_goal_distance_mean"].as_f64().unwrap() > GOAL_RADIUS, "{last}");
    // A random policy does not cross the maze: every episode runs to the 1000-step limit and
    // scores 0 (success would end it with return 1, score 100).
    assert_eq!(v["score_mean"].as_f64(), Some(0.0), "{v}");

    let e = json_ok(&ofql(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--episodes",
        "2",
        "--json",
    ]));
    assert_eq!(e["env"], "AntMaze_Medium-v4");
    assert_eq!(e["lengths"], serde_json::json!([1000, 1000]));
    assert_eq!(e["returns"], serde_json::json!([0.0, 0.0]));
    // Neither episode came within the goal's radius; the mean is the episodes' mean.
    let closest: Vec<f64> = serde_json::from_value(e["closest_goal_distances"].clone()).unwrap();
    assert_eq!(closest.len(), 2);
    assert!(closest.iter().all(|&d| d > GOAL_RADIUS), "{closest:?}");
    let mean = e["closest_goal_distance_mean"].as_f64().unwrap();
    assert!((mean - (closest[0] + closest[1]) / 2.0).abs() < 1e-12);

    // `ofql dataset verify` replays the rows (states and goals from the rows themselves, no
    // infos/qpos): they were recorded here, rounded to f32 by the recording, so the replay
    // agrees to f32 rounding, rewards exactly.
    let verify = |cache: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ofql"))
            .args(["dataset", "verify", ID, "--json"])
            .env("OFQL_DATA_DIR", cache)
            .output()
            .unwrap()
    };
    let v = json_ok(&verify(&cache));
    assert_eq!(v["env"], "AntMaze_Medium-v4");
    assert_eq!(v["rows_checked"], 450);
    assert!(v["max_abs_obs_err"].as_f64().unwrap() < 1e-4, "{v}");
    assert_eq!(v["max_abs_reward_err"].as_f64(), Some(0.0), "{v}");
    assert_eq!(v["termination_mismatches"], 0);
    // A dataset whose rows are not this maze's layout is refused with the sizes.
    let other = dir.path().join("other");
    let full = ofql_data::read_minari(&cache.join(ID)).unwrap();
    let mut narrow = Dataset::new(
        full.observations.slice(ndarray::s![.., ..30]).to_owned(),
        full.actions.clone(),
        full.rewards.clone(),
        full.terminals.clone(),
        full.timeouts.clone(),
    );
    narrow.next_observations =
        full.next_observations.as_ref().map(|n| n.slice(ndarray::s![.., ..30]).to_owned());
    ofql_data::write_minari(&other.join(ID), &narrow, ID).unwrap();
    let out = verify(&other);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("30 numbers"), "{}", stderr(&out));
}

/// AntMaze data made here as Minari made it: a goal-reaching ant (a few hundred steps of
/// `ofql behaviour train --goal-reaching`, so barely trained) steered by waypoints, written
/// as a Minari folder named after the dataset it imitates, labelled as generated; a run on
/// the folder finds its evaluation maze through the folder's metadata.
#[test]
fn generated_antmaze_data_is_a_minari_folder_that_trains_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let ant = dir.path().join("ant");
    let (ant_s, out) = (ant.to_str().unwrap(), dir.path().join("medium-play"));
    json_ok(&ofql(&[
        "behaviour",
        "train",
        "--env",
        "AntMaze_Open-v4",
        "--goal-reaching",
        "--steps",
        "300",
        "--eval-every",
        "300",
        "--out",
        ant_s,
        "--json",
    ]));
    let made = |extra: &[&str]| {
        let base = ["dataset", "generate", "--env", "antmaze-medium-play", "--policy", ant_s];
        let rest = ["--steps", "1200", "--out", out.to_str().unwrap(), "--json"];
        ofql(&[&base[..], extra, &rest[..]].concat())
    };
    let v = json_ok(&made(&[]));
    assert_eq!((v["transitions"].as_u64(), v["episodes"].as_u64()), (Some(1200), Some(2)), "{v}");
    assert_eq!(v["env"], "AntMaze_Medium-v4");
    let rate = v["success_rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("data/metadata.json")).unwrap())
            .unwrap();
    assert_eq!(meta["dataset_id"], ID);
    assert!(meta["generated_by"].as_str().unwrap().contains("not Minari"));
    // An existing output is kept unless --force; a locomotion kind is refused for mazes.
    assert!(!made(&[]).status.success());
    let out_kind = made(&["--kind", "medium", "--force"]);
    assert!(stderr(&out_kind).contains("--kind does not apply"), "{}", stderr(&out_kind));

    let config = dir.path().join("maze.toml");
    std::fs::write(
        &config,
        "[data]\nreward_norm = \"none\"\nreward_shift = -1.0\n\
         [train]\nsteps = 10\nbatch_size = 32\neval_every = 10\ncheckpoint_every = 10\n\
         [actor]\nhidden = 32\nema_start = 5\n[critic]\nhidden = 32\n\
         [eval]\nepisodes = 1\nparallel_envs = 1\ncandidates = 2\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let t = json_ok(&ofql(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--dataset",
        out.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]));
    assert!(t["score_mean"].as_f64().is_some(), "{t}");
    let e = json_ok(&ofql(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--episodes",
        "1",
        "--json",
    ]));
    assert_eq!(e["env"], "AntMaze_Medium-v4");
}
