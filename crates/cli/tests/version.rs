//! The binary starts, finds libmujoco.so through its rpath, and prints one JSON object.

use std::process::Command;

#[test]
fn version_json_reports_the_native_libraries() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_ofql")).args(["version", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mujoco"], "3.17.0");
    assert!(v["hdf5"].as_str().unwrap().starts_with(|c: char| c.is_ascii_digit()));
}

#[test]
fn unknown_subcommand_fails_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_ofql")).arg("no-such-command").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
}
