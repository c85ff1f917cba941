//! The README's main job as a newcomer runs it, shrunk: `cargo xtask reproduce-d4rl --suite
//! quick --data generated` with a few hundred steps. `cargo xtask test` runs it after the
//! workspace tests. It checks that a user's suite reports beside its runs and leaves the
//! checkout as it found it (no file of the project's own docs/results rewritten).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub fn run(root: &Path) -> Result<()> {
    // The dev-profile binary the workspace tests built (a no-op after them).
    crate::cargo(&crate::test_workspace(&["--no-run"]), &[])?;
    let work = std::env::temp_dir().join(format!("ofql-suite-test-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let started = Instant::now();
    let result = quick_suite_keeps_checkout_clean(root, &work);
    match &result {
        Ok(()) => println!(
            "suite test `the quick suite reports beside its runs, checkout unchanged` ... ok ({:.0} s)",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => println!("suite test ... FAILED: {e:#} (files in {})", work.display()),
    }
    result?;
    fs::remove_dir_all(&work)?;
    Ok(())
}

fn quick_suite_keeps_checkout_clean(root: &Path, work: &Path) -> Result<()> {
    let before = Checkout::snapshot(root)?;
    let out = work.join("quick");
    let ofql = root.join("target/debug/ofql");
    let args = [
        "reproduce-d4rl",
        "--suite",
        "quick",
        "--data",
        "generated",
        "--steps",
        "300",
        "--episodes",
        "2",
        "--generated-steps",
        "3000",
        // Two in-training evaluations, so that the report draws learning curves.
        "--sweep",
        "train.eval_every=150",
        "--ofql",
        &ofql.to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
    ];
    let r = Command::new(std::env::current_exe()?)
        .args(args)
        .current_dir(root)
        .output()
        .context("cannot run the xtask")?;
    let stderr = String::from_utf8_lossy(&r.stderr);
    if !r.status.success() {
        bail!("the quick suite failed ({}):\n{stderr}", r.status);
    }
    // The table, its CSV and the curves beside the runs, and the path said on stderr.
    let name = "quick-generated-sweep-train-eval_every";
    let table = out.join(format!("{name}.md"));
    for file in [table.clone(), out.join(format!("{name}.csv"))] {
        if !file.is_file() {
            bail!("no {} after the suite:\n{stderr}", file.display());
        }
    }
    let curves = out.join(name);
    let pngs = fs::read_dir(&curves).map_or(0, |d| {
        d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".png")).count()
    });
    if pngs == 0 {
        bail!("no learning-curve PNG in {}", curves.display());
    }
    if !stderr.contains(&format!("table in {}", table.display())) {
        bail!("stderr does not say where the table went:\n{stderr}");
    }
    if !out.join("halfcheetah-medium-v2/train.eval_every-150/seed0.log").is_file() {
        bail!("no run log beside the run folder");
    }
    let after = Checkout::snapshot(root)?;
    if after != before {
        bail!("the suite changed the checkout:\n{}", before.difference(&after));
    }
    Ok(())
}

/// What a user would see changed: `git status` and the contents of docs/results.
#[derive(PartialEq, Eq)]
struct Checkout {
    /// None outside a git checkout (an unpacked source archive).
    git_status: Option<String>,
    results: BTreeMap<PathBuf, Vec<u8>>,
}

impl Checkout {
    fn snapshot(root: &Path) -> Result<Checkout> {
        let git = Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=all"])
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let mut results = BTreeMap::new();
        let dir = root.join("docs/results");
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            if path.is_file() {
                results.insert(path.clone(), fs::read(&path)?);
            }
        }
        Ok(Checkout { git_status: git, results })
    }

    fn difference(&self, after: &Checkout) -> String {
        let mut lines = vec![];
        if self.git_status != after.git_status {
            lines.push(format!(
                "git status before:\n{}\nafter:\n{}",
                self.git_status.as_deref().unwrap_or("-"),
                after.git_status.as_deref().unwrap_or("-")
            ));
        }
        for (path, bytes) in &after.results {
            if self.results.get(path) != Some(bytes) {
                lines.push(format!("{} written", path.display()));
            }
        }
        lines.join("\n")
    }
}
