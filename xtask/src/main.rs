//! Project automation: `cargo xtask <command>` (see `cargo xtask help`).
//!
//! Kept in the style of rust-analyzer's xtask: plain std, no build of the main crates needed
//! to run `setup`, because `setup` provisions what those crates link against.

mod reproduce;
mod setup;
mod slurm_local;
mod slurm_test;
mod suite_test;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const HELP: &str = "\
cargo xtask <command>

Commands:
  setup            fetch MuJoCo 3.17.0, Gymnasium's XML models, Gymnasium-Robotics' kitchen
                   assets and CMake from PyPI with pip into .deps/, and the parity test's venv
                   .deps/parity-venv (idempotent; offline once done)
  test [ARGS..]    setup, then `cargo test --workspace` (extra ARGS go to cargo test), then
                   the quick suite shrunk to a few hundred steps (it must report beside its
                   runs and leave the checkout unchanged), then the Slurm launcher's tests
                   when a local cluster is up (slurm-test)
  lint             cargo fmt --check and cargo clippy --workspace --all-targets -D warnings
  reproduce-d4rl   train and evaluate a suite of runs and write the table beside them
                   (`cargo xtask reproduce-d4rl --help`; quick suite by default)
  slurm-local up|down|env
                   a one-node Slurm cluster on 127.0.0.1 (Debian's packages, as root),
                   for the Slurm launcher's tests; `env` prints its SLURM_CONF
  suite-test       the shrunk quick suite of `test` alone
  slurm-test       the Slurm launcher's tests against that cluster
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_else(|| "help".into());
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "setup" => {
            setup::run(&project_root())?;
            setup::parity_venv(&project_root())
        }
        "test" => {
            setup::run(&project_root())?;
            setup::parity_venv(&project_root())?;
            cargo(&test_workspace(&[]), &rest)?;
            suite_test::run(&project_root())?;
            slurm_test::run(&project_root())
        }
        "slurm-local" => slurm_local::run(&project_root(), &rest),
        "suite-test" => {
            setup::run(&project_root())?;
            suite_test::run(&project_root())
        }
        "slurm-test" => {
            setup::run(&project_root())?;
            slurm_test::run(&project_root())
        }
        "lint" => {
            setup::run(&project_root())?;
            cargo(&["fmt", "--all", "--", "--check"], &[])?;
            cargo(
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--features",
                    HUB,
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )
        }
        "reproduce-d4rl" => {
            setup::run(&project_root())?;
            reproduce::run(&project_root(), &rest)
        }
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

/// The workspace root: xtask lives one level below it.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent").to_path_buf()
}

/// The tests build the `hub` feature (Hugging Face downloads, tested on loopback) into the
/// workspace: one feature set for every test build, so the suite and Slurm tests reuse it.
const HUB: &str = "ofql-cli/hub";

/// `cargo test --workspace` with the tests' features, then `extra` (e.g. `--no-run`).
fn test_workspace<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["test", "--workspace", "--features", HUB];
    args.extend_from_slice(extra);
    args
}

fn cargo(args: &[&str], extra: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    // `cargo run` gave this process its package's variables; a nested cargo passes them on to
    // build scripts that track them (ring tracks CARGO_MANIFEST_DIR), which would make every
    // `cargo xtask` build differ from a plain `cargo build` and rebuild half the tree.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let from_cargo_run = key.starts_with("CARGO_PKG_")
            || ["CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_CRATE_NAME", "CARGO_BIN_NAME"]
                .contains(&key.as_str());
        if from_cargo_run {
            command.env_remove(&key);
        }
    }
    let status = command
        .args(args)
        .args(extra)
        .current_dir(project_root())
        .status()
        .with_context(|| format!("could not start `{cargo}`"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
