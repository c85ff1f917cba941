//! What the parity tests share: the pinned Python, floats as hex, differences.

#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

pub fn parity_python() -> PathBuf {
    let python = std::env::var_os("OFQL_PARITY_PYTHON")
        .map(PathBuf::from)
        .or_else(|| option_env!("OFQL_PARITY_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".deps/parity-venv/bin/python"));
    assert!(
        python.is_file(),
        "the parity test's Python ({}) is missing: run `cargo xtask setup` (it creates \
         .deps/parity-venv with gymnasium 1.2.2, gymnasium-robotics 1.4.2 and mujoco 3.17.0)",
        python.display()
    );
    python
}

pub fn to_hex<T: Copy>(values: &[T], to_le: impl Fn(T) -> Vec<u8>) -> String {
    values.iter().flat_map(|&v| to_le(v)).map(|b| format!("{b:02x}")).collect()
}

pub fn f64_hex(values: &[f64]) -> String {
    to_hex(values, |v| v.to_le_bytes().to_vec())
}

pub fn f64s_from_hex(text: &str) -> Vec<f64> {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex from the script"))
        .collect();
    bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// |a - b|, with NaN in both counted as equal and NaN in one as infinitely far.
pub fn abs_diff(a: f64, b: f64) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => 0.0,
        (false, false) if a == b => 0.0,
        (false, false) => (a - b).abs(),
        _ => f64::INFINITY,
    }
}

pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| abs_diff(x, y)).fold(0.0, f64::max)
}

/// Run `tests/parity/<script>` in the pinned Python on these scenarios; its JSON answer.
pub fn run_parity_script(script: &str, scenarios: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let (input, results) = (dir.path().join("scenarios.json"), dir.path().join("out.json"));
    std::fs::write(&input, scenarios.to_string()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity").join(script);
    let output = Command::new(parity_python())
        .arg(&script)
        .arg(&input)
        .arg(&results)
        .current_dir(dir.path()) // MuJoCo's log file, if any, lands in the temp dir
        .output()
        .expect("start the parity venv's python");
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap()
}

/// A JSON array of booleans.
pub fn bools(v: &Value) -> Vec<bool> {
    v.as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect()
}
