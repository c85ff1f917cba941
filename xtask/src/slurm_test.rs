//! `cargo xtask slurm-test`: the Slurm launcher against the real engine, a one-node cluster
//! started by `cargo xtask slurm-local up` (`.ci/run` starts it; `cargo xtask test` runs
//! these after the workspace tests, and says so when it skips them).
//!
//! 1. Bad input: no sbatch on PATH, and sbatch refusing an unknown partition.
//! 2. A small suite (two generated datasets x two seeds, a few hundred steps) submitted as a
//!    job array, with one task stopped mid-run by Slurm's signal, requeued and resumed; the
//!    report holds exactly the four runs, with the same final losses as the same suite run by
//!    the local launcher.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::slurm_local;

pub fn run(root: &Path) -> Result<()> {
    if !slurm_local::is_up(root) {
        println!(
            "slurm tests: skipped (no local cluster: `cargo xtask slurm-local up` starts one; \
             .ci/run does)"
        );
        return Ok(());
    }
    // The dev-profile binary the workspace tests built: `cargo test --workspace --no-run`
    // is a no-op after them (a plain `cargo build -p` would unify features differently and
    // rebuild half the tree).
    crate::cargo(&crate::test_workspace(&["--no-run"]), &[])?;
    let t = Tester {
        root: root.to_path_buf(),
        xtask: std::env::current_exe()?,
        ofql: root.join("target/debug/ofql"),
        work: std::env::temp_dir().join(format!("ofql-slurm-test-{}", std::process::id())),
    };
    fs::create_dir_all(&t.work)?;
    let started = Instant::now();
    let cases: [(&str, Case); 2] = [
        ("bad input is refused with Slurm's own words", Tester::bad_input),
        ("a job array matches the local launcher, one task requeued", Tester::suite),
    ];
    let mut failed = 0;
    for (name, case) in cases {
        match case(&t) {
            Ok(()) => println!("slurm test `{name}` ... ok"),
            Err(e) => {
                failed += 1;
                println!("slurm test `{name}` ... FAILED: {e:#}");
            }
        }
    }
    println!(
        "slurm tests: {} passed, {failed} failed ({:.0} s)",
        cases.len() - failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} Slurm test(s) failed; their files are in {}", t.work.display());
    }
    fs::remove_dir_all(&t.work)?;
    Ok(())
}

/// One test: its name and its body.
type Case = fn(&Tester) -> Result<()>;

struct Tester {
    root: PathBuf,
    xtask: PathBuf,
    ofql: PathBuf,
    work: PathBuf,
}

/// The small suite both launchers run: 2 datasets x 2 seeds, checkpoints every 50 steps.
const SUITE: &str = "--suite quick --datasets halfcheetah-medium-v2,hopper-medium-v2 \
                     --seeds 0,1 --steps 400 --episodes 2 --data generated \
                     --generated-steps 3000 --sweep train.checkpoint_every=50";

impl Tester {
    fn xtask(&self, args: &[String], path: Option<&str>) -> Result<Output> {
        let mut c = Command::new(&self.xtask);
        c.arg("reproduce-d4rl").args(args).current_dir(&self.root);
        c.env("SLURM_CONF", slurm_local::conf(&self.root));
        if let Some(p) = path {
            c.env("PATH", p);
        }
        c.output().context("cannot run the xtask")
    }

    fn suite_args(&self, out: &Path, extra: &str) -> Vec<String> {
        let mut a: Vec<String> = SUITE.split_whitespace().map(String::from).collect();
        a.extend(extra.split_whitespace().map(String::from));
        a.extend(["--ofql".into(), self.ofql.display().to_string()]);
        a.extend(["--out".into(), out.display().to_string()]);
        a
    }

    fn bad_input(&self) -> Result<()> {
        // No Slurm client (PATH holds only an empty folder): a clear error naming it and the
        // local launcher; nothing written.
        let out = self.work.join("no-sbatch");
        let empty = self.work.join("empty-path");
        fs::create_dir_all(&empty)?;
        let path = empty.display().to_string();
        let r = self.xtask(&self.suite_args(&out, "--launcher slurm"), Some(&path))?;
        let err = String::from_utf8_lossy(&r.stderr);
        if r.status.success()
            || !err.contains("no `sbatch` on PATH")
            || !err.contains("--launcher local")
        {
            bail!("without sbatch: {} / {err}", r.status);
        }
        if out.exists() {
            bail!("without sbatch, {} was created", out.display());
        }
        // Slurm refuses an unknown partition: its message, a non-zero exit.
        let out = self.work.join("bad-partition");
        let r = self.xtask(&self.suite_args(&out, "--launcher slurm --partition nosuch"), None)?;
        let err = String::from_utf8_lossy(&r.stderr);
        if r.status.success() || !err.contains("sbatch refused") || !err.contains("partition") {
            bail!("unknown partition: {} / {err}", r.status);
        }
        Ok(())
    }

    fn suite(&self) -> Result<()> {
        let (local, slurm) = (self.work.join("local"), self.work.join("slurm"));
        let r = self.xtask(
            &self.suite_args(&slurm, "--launcher slurm --cpus-per-task 1 --mem 2G --time 00:30:00"),
            None,
        )?;
        if !r.status.success() {
            bail!("submission failed: {}", String::from_utf8_lossy(&r.stderr));
        }
        let jobs = fs::read_to_string(slurm.join("slurm/jobs"))?;
        let id = |kind: &str| {
            jobs.lines().find_map(|l| l.strip_prefix(kind)).map(|s| s.trim().to_string())
        };
        let (array, report) =
            (id("array ").context("no array id")?, id("report ").context("no report id")?);

        // Stop task 0 mid-run as Slurm's time-limit warning would, once it has a checkpoint.
        let run0 = slurm.join("halfcheetah-medium-v2/train.checkpoint_every-50/seed0");
        wait_for(Duration::from_secs(600), || {
            Ok(run0.join("checkpoint/last.safetensors").is_file())
        })
        .context("task 0 never wrote a checkpoint")?;
        if run0.join("run.json").is_file() {
            bail!("task 0 finished before it could be interrupted");
        }
        // scancel may answer "try again later" while Slurm updates the job: try until the
        // task's log shows that it stopped and requeued itself.
        let log0 = slurm.join(format!("slurm/logs/{array}_0.out"));
        let signal = ["--batch", "--signal=USR1", &format!("{array}_0")];
        let mut last_try: Option<Instant> = None;
        wait_for(Duration::from_secs(120), || {
            if fs::read_to_string(&log0).unwrap_or_default().contains("requeueing") {
                return Ok(true);
            }
            if last_try.is_none_or(|t| t.elapsed() > Duration::from_secs(3)) {
                let _ = slurm_cmd("scancel", &signal, &self.root);
                last_try = Some(Instant::now());
            }
            Ok(false)
        })
        .context("task 0 did not requeue itself")?;
        // Slurm holds a requeued job back for two minutes; let it start as soon as it can.
        wait_for(Duration::from_secs(60), || {
            let now = ["update", &format!("JobId={array}_0"), "StartTime=now"];
            Ok(slurm_cmd("scontrol", &now, &self.root).is_ok())
        })
        .context("cannot release the requeued task")?;

        // Meanwhile the same suite here, with the local launcher.
        let r = self.xtask(&self.suite_args(&local, "--jobs 1 --threads 1"), None)?;
        if !r.status.success() {
            bail!("local suite failed: {}", String::from_utf8_lossy(&r.stderr));
        }
        wait_for(Duration::from_secs(900), || Ok(queue_state(&report, &self.root)?.is_empty()))
            .context("the report job did not finish")?;

        let table = slurm.join("quick-generated-sweep-train-checkpoint_every.md");
        let md =
            fs::read_to_string(&table).with_context(|| format!("no table {}", table.display()))?;
        let runs = md.lines().filter(|l| l.contains("| `")).count();
        if runs != 4 {
            bail!("the table lists {runs} runs, not 4:\n{md}");
        }
        if !fs::read_to_string(run0.with_extension("log"))?.contains("resumed") {
            bail!("task 0's log does not show a resume");
        }
        for d in ["halfcheetah-medium-v2", "hopper-medium-v2"] {
            for seed in [0, 1] {
                let rel = format!("{d}/train.checkpoint_every-50/seed{seed}/run.json");
                let (a, b) = (final_losses(&local.join(&rel))?, final_losses(&slurm.join(&rel))?);
                if a != b {
                    bail!("{rel}: local {a} vs Slurm {b}");
                }
            }
        }
        Ok(())
    }
}

/// The `"final_losses":{...}` object of a run.json, as written.
fn final_losses(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("no {}", path.display()))?;
    let start = text.find("\"final_losses\":").context("no final_losses")?;
    let end = text[start..].find('}').context("unterminated final_losses")?;
    Ok(text[start..start + end + 1].to_string())
}

/// The states squeue shows for a job (every array task); empty once Slurm is done with it.
fn queue_state(job: &str, root: &Path) -> Result<Vec<String>> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%T", "-j", job])
        .env("SLURM_CONF", slurm_local::conf(root))
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
}

fn slurm_cmd(program: &str, args: &[&str], root: &Path) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .env("SLURM_CONF", slurm_local::conf(root))
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let started = Instant::now();
    while !done()? {
        if started.elapsed() > limit {
            bail!("gave up after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
