//! Helpers shared by the `ofql` end-to-end tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Output};

/// Run the `ofql` binary built for these tests.
pub fn ofql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ofql")).args(args).output().unwrap()
}

/// The single JSON object a `--json` command printed on stdout.
pub fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "exactly one JSON line expected: {stdout}\nstderr: {}",
        stderr(out)
    );
    serde_json::from_str(&stdout).unwrap()
}

/// Like `json`, for a command that must have succeeded.
pub fn json_ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    json(out)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
