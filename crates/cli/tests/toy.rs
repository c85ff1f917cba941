//! `ofql toy` on a tiny budget: one JSON object with every row, and both figures written.

use std::process::Command;

#[test]
fn toy_json_has_all_rows_and_writes_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ofql"))
        .args(["toy", "--json", "--datasets", "checkerboard,spiral", "--epochs", "2"])
        .args(["--batches-per-epoch", "3", "--batch", "64", "--samples", "256", "--workers", "2"])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    // Per data set: u (1 step), v (1, 2, 5, 10 Euler steps), u at k = 1000 (1 step).
    assert_eq!(rows.len(), 2 * 6);
    let steps: Vec<u64> = rows[..6].iter().map(|r| r["steps"].as_u64().unwrap()).collect();
    assert_eq!(steps, [1, 1, 2, 5, 10, 1]);
    assert_eq!(rows[5]["time_scale"], 1000.0);
    assert!(rows[..6].iter().all(|r| r["dataset"] == "checkerboard" && r["on_squares"].is_f64()));
    assert!(rows[6..].iter().all(|r| r["dataset"] == "spiral" && r["on_squares"].is_null()));
    assert!(rows.iter().all(|r| r["final_loss"].as_f64().unwrap() > 0.0));
    assert_eq!(v["reference"].as_array().unwrap().len(), 2);
    for name in ["toy.png", "toy_loss.png"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        assert_eq!(&bytes[..4], b"\x89PNG");
    }
}

#[test]
fn unknown_data_set_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ofql"))
        .args(["toy", "--json", "--datasets", "moons", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("moons"), "{v}");
}
