//! `ofql dataset info|convert|fetch` end to end, on files and a loopback server the tests make.

mod common;

use common::{json, ofql, stderr};

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;

use ndarray::{Array1, Array2};
use ofql_data::{Dataset, Dtype, Stats, registry, write_d4rl};

/// Hopper-shaped data (obs 11, act 3): episodes of 4 (terminal), 5 (timeout) and 3 steps.
fn hopper_like(act_dim: usize) -> Dataset {
    let n = 12;
    let obs = Array2::from_shape_fn((n, 11), |(i, j)| (i * 11 + j) as f32 / 64.0);
    let mut next = Array2::from_shape_fn((n, 11), |(i, j)| (i * 11 + j + 11) as f32 / 64.0);
    next[[11, 0]] = 99.0;
    let acts = Array2::from_shape_fn((n, act_dim), |(i, j)| ((i + j) % 5) as f32 / 4.0 - 0.5);
    let rewards = Array1::from_iter((0..n).map(|i| 100.0 + i as f32 * 10.0));
    let mut terminals = Array1::from_elem(n, false);
    let mut timeouts = Array1::from_elem(n, false);
    terminals[3] = true;
    timeouts[8] = true;
    let mut d = Dataset::new(obs, acts, rewards, terminals, timeouts);
    d.next_observations = Some(next);
    d
}

#[test]
fn info_json_reports_sizes_returns_and_normalised_return() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hopper-medium-v2.hdf5");
    let data = hopper_like(3);
    write_d4rl(&path, &data, Dtype::F64).unwrap();
    let out = ofql(&["dataset", "info", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    let stats = Stats::of(&data);
    assert_eq!(v["rows"], 12);
    assert_eq!(v["transitions"], 10); // timeout row and last row dropped
    assert_eq!(v["episodes"], 3);
    assert_eq!(v["obs_dim"], 11);
    assert_eq!(v["act_dim"], 3);
    assert_eq!(v["dtype"], "float64");
    assert_eq!(v["format"], "d4rl");
    assert_eq!(v["env"], "hopper");
    assert_eq!(v["return_mean"].as_f64().unwrap(), stats.return_mean);
    let expected = registry::normalized_score("hopper", stats.return_mean).unwrap();
    assert!((v["normalized_return_mean"].as_f64().unwrap() - expected).abs() < 1e-9);
    assert!(expected > 0.0);

    let out =
        ofql(&["dataset", "info", path.to_str().unwrap(), "--next-obs", "recorded", "--json"]);
    assert_eq!(json(&out)["transitions"], 12);

    let out = ofql(&["dataset", "info", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("episodes 3") && text.contains("normalised return (hopper)"), "{text}");
}

#[test]
fn info_without_a_known_environment_omits_the_normalised_return() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.hdf5");
    write_d4rl(&path, &hopper_like(3), Dtype::F32).unwrap();
    let v = json(&ofql(&["dataset", "info", path.to_str().unwrap(), "--json"]));
    assert!(v["normalized_return_mean"].is_null() && v["env"].is_null());
    let v =
        json(&ofql(&["dataset", "info", path.to_str().unwrap(), "--env", "Hopper-v4", "--json"]));
    assert_eq!(v["env"], "hopper");
    assert!(v["normalized_return_mean"].is_f64());
}

#[test]
fn info_errors_are_clear_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.hdf5");
    write_d4rl(&path, &hopper_like(6), Dtype::F32).unwrap();
    let out = ofql(&["dataset", "info", path.to_str().unwrap(), "--env", "hopper"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("action dimension is 6 but environment `hopper` has 3"),
        "{}",
        stderr(&out)
    );

    let out = ofql(&["dataset", "info", "/no/such.hdf5", "--json"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("file not found: /no/such.hdf5"));
    assert!(json(&out)["error"].as_str().unwrap().contains("file not found"));

    let out = ofql(&["dataset", "info", "hoper-medium-v2"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("did you mean `hopper-medium-v2`"), "{}", stderr(&out));

    let cache = dir.path().join("cache");
    let out =
        ofql(&["dataset", "info", "hopper-medium-v2", "--cache-dir", cache.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("run `ofql dataset fetch hopper-medium-v2`"), "{}", stderr(&out));

    let bad = dir.path().join("bad.hdf5");
    std::fs::write(&bad, b"not hdf5 at all").unwrap();
    let out = ofql(&["dataset", "info", bad.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("is not an HDF5 or parquet file"));
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn convert_goes_through_every_layout_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.hdf5");
    let data = hopper_like(3);
    write_d4rl(&src, &data, Dtype::F32).unwrap();
    let pq = dir.path().join("a.parquet");
    let minari = dir.path().join("hopper-test-v0");
    let back = dir.path().join("back.hdf5");
    let steps: [(&Path, &Path, &str); 3] =
        [(&src, &pq, "parquet"), (&pq, &minari, "minari"), (&minari, &back, "d4rl")];
    for (from, to, layout) in steps {
        let out =
            ofql(&["dataset", "convert", from.to_str().unwrap(), to.to_str().unwrap(), "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v = json(&out);
        assert_eq!((v["to"].as_str().unwrap(), v["rows"].as_u64().unwrap()), (layout, 12));
    }
    let round = ofql_data::read_d4rl(&back).unwrap();
    assert_eq!(round.observations, data.observations);
    assert_eq!(round.actions, data.actions);
    assert_eq!(round.rewards, data.rewards);
    assert_eq!(round.terminals, data.terminals);
    assert_eq!(round.timeouts, data.timeouts);
    // Minari keeps one observation array: s' inside an episode is the next row's s.
    assert_eq!(round.next_observations.unwrap().row(11), data.next_observations.unwrap().row(11));

    let out = ofql(&["dataset", "convert", src.to_str().unwrap(), back.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("pass --force"));
    let out = ofql(&[
        "dataset",
        "convert",
        src.to_str().unwrap(),
        back.to_str().unwrap(),
        "--force",
        "--dtype",
        "float64",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ofql_data::read_d4rl(&back).unwrap().dtype, Dtype::F64);
}

/// `--force` replaces only the one output the tool would write, and only once the new one is
/// complete: a folder with other things in it survives, and a failed write keeps the old
/// output. No temporary file is left behind.
#[test]
fn convert_force_never_destroys_what_it_would_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.hdf5");
    write_d4rl(&src, &hopper_like(3), Dtype::F32).unwrap();
    let convert = |to: &Path, extra: &[&str]| {
        let args = [&["dataset", "convert", src.to_str().unwrap(), to.to_str().unwrap()], extra];
        ofql(&args.concat())
    };

    // A folder of the user's, named as a Minari output: refused, every file kept.
    let mine = dir.path().join("my-folder");
    std::fs::create_dir_all(mine.join("data")).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    std::fs::write(mine.join("data/main_data.hdf5"), "old").unwrap();
    let out = convert(&mine, &["--force"]);
    assert!(!out.status.success() && stderr(&out).contains("notes.txt"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(mine.join("notes.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_to_string(mine.join("data/main_data.hdf5")).unwrap(), "old");

    // A folder where a file output goes: refused, not deleted.
    let folder = dir.path().join("out.parquet");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("x"), "x").unwrap();
    let out = convert(&folder, &["--force"]);
    assert!(!out.status.success() && stderr(&out).contains("not a file"), "{}", stderr(&out));
    assert!(folder.join("x").is_file());

    // A Minari output this tool wrote is replaced whole.
    let minari = dir.path().join("hopper-test-v0");
    assert!(convert(&minari, &[]).status.success());
    let out = convert(&minari, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(minari.join("data/main_data.hdf5").is_file());

    // A write that fails (Minari needs next_observations) keeps the old output as it was.
    let no_next = dir.path().join("no-next.hdf5");
    let mut d = hopper_like(3);
    d.next_observations = None;
    write_d4rl(&no_next, &d, Dtype::F32).unwrap();
    let before = std::fs::read(minari.join("data/main_data.hdf5")).unwrap();
    let args =
        ["dataset", "convert", no_next.to_str().unwrap(), minari.to_str().unwrap(), "--force"];
    let out = ofql(&args);
    assert!(
        !out.status.success() && stderr(&out).contains("next_observations"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(minari.join("data/main_data.hdf5")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial-") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Serve `body` for every request on 127.0.0.1; returns the base URL.
fn serve(body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    base
}

#[test]
fn fetch_downloads_pins_and_feeds_info() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("served.hdf5");
    write_d4rl(&src, &hopper_like(3), Dtype::F32).unwrap();
    let base = serve(std::fs::read(&src).unwrap());
    let cache = dir.path().join("cache");
    let pins = dir.path().join("pins.toml");
    let args = |name: &str| {
        vec![
            "dataset".to_string(),
            "fetch".into(),
            name.into(),
            "--base-url".into(),
            base.clone(),
            "--cache-dir".into(),
            cache.display().to_string(),
            "--pins".into(),
            pins.display().to_string(),
            "--json".into(),
        ]
    };
    let run = |a: Vec<String>| Command::new(env!("CARGO_BIN_EXE_ofql")).args(a).output().unwrap();
    let out = run(args("hopper-medium-v2"));
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["fetched"][0]["pin"], "recorded");
    assert!(
        v["fetched"][0]["url"].as_str().unwrap().ends_with("/gym_mujoco_v2/hopper_medium-v2.hdf5")
    );
    assert!(std::fs::read_to_string(&pins).unwrap().contains("\"hopper-medium-v2.hdf5\""));

    let out = run(args("hopper-medium-v2"));
    assert_eq!(json(&out)["fetched"][0]["pin"], "verified");

    let out = ofql(&[
        "dataset",
        "info",
        "hopper-medium-v2",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["env"], "hopper");

    let out = run(args("hopper-medum-v2"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("did you mean `hopper-medium-v2`"), "{}", stderr(&out));

    let v = json(&ofql(&["dataset", "fetch", "--list", "--json"]));
    assert_eq!(v["datasets"].as_array().unwrap().len(), 44);
}

/// Serve these files by URL path on 127.0.0.1 (404 for anything else); returns the base URL.
fn serve_files(files: Vec<(String, Vec<u8>)>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap_or(0);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or_default().to_string();
            let (status, body) = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"no such file".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    base
}

/// A Minari dataset in Minari's remote layout (the Hugging Face repo `farama-minari/D4RL`)
/// is fetched by its id into Minari's folder layout, pinned, and read with its dictionary
/// observations flattened to the AntMaze rows.
#[test]
fn fetch_takes_minari_ids_from_the_remote_layout() {
    let dir = tempfile::tempdir().unwrap();
    let id = "D4RL/antmaze/medium-play-v1";
    // AntMaze-shaped episodes: 2 + 27 + 2 observation numbers, 8 actions.
    let n = 12;
    let obs = Array2::from_shape_fn((n, 31), |(i, j)| (i * 31 + j) as f32 / 64.0);
    let next = Array2::from_shape_fn((n, 31), |(i, j)| (i * 31 + j + 31) as f32 / 64.0);
    let acts = Array2::from_shape_fn((n, 8), |(i, j)| ((i + j) % 5) as f32 / 4.0 - 0.5);
    let rewards = Array1::from_iter((0..n).map(|i| (i % 4 == 3) as u8 as f32));
    let mut timeouts = Array1::from_elem(n, false);
    timeouts[5] = true;
    let mut data = Dataset::new(obs, acts, rewards, Array1::from_elem(n, false), timeouts);
    data.next_observations = Some(next);
    let made = dir.path().join("made");
    let layout = [("observation", 27), ("achieved_goal", 2), ("desired_goal", 2)];
    ofql_data::write_minari_with_layout(&made, &data, id, Some(&layout)).unwrap();
    let main = std::fs::read(made.join("data/main_data.hdf5")).unwrap();
    let meta = std::fs::read(made.join("data/metadata.json")).unwrap();
    let remote = "/farama-minari/D4RL/resolve/main/antmaze/medium-play-v1/data";
    let base = serve_files(vec![
        (format!("{remote}/main_data.hdf5"), main.clone()),
        (format!("{remote}/metadata.json"), meta),
    ]);
    let cache = dir.path().join("cache");
    let pins = dir.path().join("pins.toml");
    let fetch = |name: &str| {
        let (c, p) = (cache.display().to_string(), pins.display().to_string());
        let args = ["dataset", "fetch", name, "--minari-base-url", &base, "--cache-dir", &c];
        ofql(&[&args[..], &["--pins", &p, "--retries", "0", "--json"]].concat())
    };
    let out = fetch(id);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["fetched"].as_array().unwrap().len(), 2);
    assert_eq!(v["fetched"][0]["pin"], "recorded");
    let local = cache.join(id).join("data/main_data.hdf5");
    assert_eq!(std::fs::read(&local).unwrap(), main);
    assert!(cache.join(id).join("data/metadata.json").is_file());
    let pinned = std::fs::read_to_string(&pins).unwrap();
    assert!(pinned.contains(&format!("\"{id}/data/main_data.hdf5\"")), "{pinned}");
    assert_eq!(json(&fetch(id))["fetched"][1]["pin"], "verified");

    // Read by name from the cache: the rows are [achieved_goal, observation, desired_goal].
    let c = cache.display().to_string();
    let out = ofql(&["dataset", "info", id, "--cache-dir", &c, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!((v["obs_dim"].as_u64(), v["env"].as_str()), (Some(31), Some("antmaze-gr")), "{v}");

    // Another id of the registry that the server does not hold: a clear error, no file left.
    let out = fetch("D4RL/antmaze/large-play-v1");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    assert!(!cache.join("D4RL/antmaze/large-play-v1/data/main_data.hdf5").exists());
}

/// A crafted header claiming 10^12 rows, under a memory limit: an error and, with --json,
/// exactly one JSON object on stdout; no out-of-memory kill.
#[test]
fn a_huge_shape_claim_is_an_error_under_a_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.hdf5");
    {
        let f = hdf5::File::create(&path).unwrap();
        let rows = 1_000_000_000_000usize;
        f.new_dataset::<f32>().chunk((1024, 11)).shape((rows, 11)).create("observations").unwrap();
        f.new_dataset::<f32>().chunk((1024, 3)).shape((rows, 3)).create("actions").unwrap();
        f.new_dataset::<f32>().chunk(1024).shape(rows).create("rewards").unwrap();
        f.new_dataset::<bool>().chunk(1024).shape(rows).create("terminals").unwrap();
    }
    let out = Command::new("sh")
        .args(["-c", "ulimit -v 8000000; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ofql"))
        .args(["dataset", "info", path.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json(&out);
    assert!(v["error"].as_str().unwrap().contains("claims shape"), "{v}");
}
