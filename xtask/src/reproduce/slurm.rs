//! The Slurm launcher of `reproduce-d4rl`: the same plan as the local launcher, submitted as
//! one job array (one task per run) and a report job that waits for it.
//!
//! `<out>/slurm/` holds `plan.tsv` (one line per array task: index, dataset, variant, seed,
//! run folder), `task.sh` and `report.sh` (the sbatch scripts), `jobs` (the submitted ids)
//! and `logs/` (Slurm's output files). Each task runs this xtask again with `--slurm-task
//! $SLURM_ARRAY_TASK_ID`, which trains (or resumes) and evaluates its run exactly as the local
//! launcher does. Slurm's warning signal before the time limit (USR1) reaches `ofql train` as
//! SIGINT: it writes its checkpoint and stops, and the task requeues itself to continue.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{Ctx, Options, Plan, ofql_binary, report_args, results_dir};

#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub time: String,
    pub cpus_per_task: usize,
    pub mem: String,
    pub array_parallelism: Option<usize>,
    pub sbatch_args: Vec<String>,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            time: "48:00:00".into(),
            cpus_per_task: 2,
            mem: "4G".into(),
            array_parallelism: None,
            sbatch_args: vec![],
        }
    }
}

/// Seconds before the time limit at which Slurm warns a task (it then checkpoints and
/// requeues): a checkpoint takes well under a second, an evaluation in progress finishes
/// first, so two minutes is ample.
const WARN_SECONDS: u64 = 120;

/// `HH:MM:SS` (or `D-HH:MM:SS`, or minutes), as sbatch takes it; checked here so that a typo
/// is refused before anything is submitted.
pub fn check_time(t: &str) -> Result<String> {
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    let ok_days = days.is_none_or(|d| d.parse::<u32>().is_ok());
    let parts: Vec<&str> = rest.split(':').collect();
    let ok_parts = !parts.is_empty()
        && parts.len() <= 3
        && parts.iter().all(|p| !p.is_empty() && p.parse::<u32>().is_ok());
    if !(ok_days && ok_parts) {
        bail!("--time {t}: write HH:MM:SS, D-HH:MM:SS or a number of minutes, as sbatch takes it");
    }
    Ok(t.to_string())
}

/// The Slurm files of a suite.
struct SuiteFiles {
    dir: PathBuf,
}

impl SuiteFiles {
    fn new(plan: &Plan) -> SuiteFiles {
        SuiteFiles { dir: plan.out.join("slurm") }
    }
    fn plan(&self) -> PathBuf {
        self.dir.join("plan.tsv")
    }
    fn task_script(&self) -> PathBuf {
        self.dir.join("task.sh")
    }
    fn report_script(&self) -> PathBuf {
        self.dir.join("report.sh")
    }
    fn jobs(&self) -> PathBuf {
        self.dir.join("jobs")
    }
    fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
}

/// One line of plan.tsv per run.
fn plan_tsv(plan: &Plan) -> String {
    let mut t = String::from("# index\tdataset\tvariant\tseed\trun folder\n");
    for (i, r) in plan.runs.iter().enumerate() {
        let _ = writeln!(t, "{i}\t{}\t{}\t{}\t{}", r.dataset, r.variant, r.seed, r.dir.display());
    }
    t
}

/// A word for a bash script, single-quoted.
fn sh(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Environment variables the `ofql` binary reads (models, font, MuJoCo), passed on as they
/// are here, so that a task sees what this process sees.
fn exports() -> String {
    let mut out = String::new();
    for key in ["OFQL_MODELS_DIR", "OFQL_FONT", "MUJOCO_DYNAMIC_LINK_DIR", "OFQL_DATA_DIR"] {
        if let Ok(v) = std::env::var(key) {
            let v = std::fs::canonicalize(&v).map_or(v, |p| p.display().to_string());
            let _ = writeln!(out, "export {key}={}", sh(&v));
        }
    }
    out
}

/// The array script: every task runs this xtask for its own run.
fn task_script(
    root: &Path,
    o: &Options,
    plan: &Plan,
    args: &[String],
    ofql: &Path,
) -> Result<String> {
    let files = SuiteFiles::new(plan);
    let xtask = std::env::current_exe().context("the path of this xtask binary")?;
    let s = &o.slurm;
    let last = plan.runs.len() - 1;
    let array = match s.array_parallelism {
        Some(k) => format!("0-{last}%{k}"),
        None => format!("0-{last}"),
    };
    let mut t = String::from("#!/bin/bash\n");
    let _ = writeln!(t, "#SBATCH --job-name=ofql-{}", plan.name);
    let _ = writeln!(t, "#SBATCH --array={array}");
    let _ = writeln!(t, "#SBATCH --cpus-per-task={}", s.cpus_per_task);
    let _ = writeln!(t, "#SBATCH --mem={}", s.mem);
    let _ = writeln!(t, "#SBATCH --time={}", s.time);
    if let Some(p) = &s.partition {
        let _ = writeln!(t, "#SBATCH --partition={p}");
    }
    let _ = writeln!(t, "#SBATCH --output={}/%A_%a.out", files.logs().display());
    let _ = writeln!(t, "#SBATCH --open-mode=append");
    let _ = writeln!(t, "#SBATCH --signal=B:USR1@{WARN_SECONDS}");
    let _ = writeln!(t, "#SBATCH --requeue");
    t += "\n# Written by `cargo xtask reproduce-d4rl --launcher slurm`; one task per line of\n";
    let _ = writeln!(t, "# {} (the task's run: SLURM_ARRAY_TASK_ID).", files.plan().display());
    t += "set -u\n";
    let _ = writeln!(t, "export RAYON_NUM_THREADS={}", s.cpus_per_task);
    t += &exports();
    let _ = writeln!(t, "cd {}", sh(&root.display().to_string()));
    // The task's own arguments: the suite's, minus the launcher's, plus the run index.
    let mut words = vec![sh(&xtask.display().to_string()), "reproduce-d4rl".into()];
    words.extend(task_args(args).iter().map(|a| sh(a)));
    words.extend(["--ofql".into(), sh(&ofql.display().to_string())]);
    words.extend(["--threads".into(), s.cpus_per_task.to_string()]);
    words.extend(["--slurm-task".into(), "\"$SLURM_ARRAY_TASK_ID\"".into()]);
    t += r#"
# Slurm's warning before the time limit (USR1, or `scancel --batch --signal=USR1`) reaches
# the training process as SIGINT: it writes its checkpoint and stops; then this task requeues
# itself and resumes from that checkpoint when it runs again. A plain scancel (TERM) also
# lets it checkpoint, but is a cancel: no requeue.
warned=0
trap 'warned=1; pkill -INT -P "$task" 2>/dev/null' USR1
trap 'pkill -INT -P "$task" 2>/dev/null' TERM
"#;
    let _ = writeln!(t, "{} &", words.join(" "));
    t += r#"task=$!
rc=0
# A trapped signal ends `wait` early: wait again until the task has really finished.
while kill -0 "$task" 2>/dev/null; do wait "$task"; rc=$?; done
if [ "$warned" = 1 ]; then
    echo "ofql: task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} stopped at a checkpoint; requeueing it"
    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
    exit 0
fi
exit "$rc"
"#;
    Ok(t)
}

/// The suite's arguments without the launcher's own (which a task must not repeat).
fn task_args(args: &[String]) -> Vec<String> {
    let with_value = [
        "--launcher",
        "--partition",
        "--time",
        "--cpus-per-task",
        "--mem",
        "--array-parallelism",
        "--sbatch-arg",
        "--ofql",
        "--threads",
        "--jobs",
    ];
    let mut out = vec![];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let flag = a.split_once('=').map_or(a.as_str(), |(f, _)| f);
        if with_value.contains(&flag) {
            if !a.contains('=') {
                it.next();
            }
        } else if !["--dry-run", "--status"].contains(&flag) {
            out.push(a.clone());
        }
    }
    out
}

/// The report job: `ofql report` once every array task has ended, however it ended.
fn report_script(o: &Options, plan: &Plan, root: &Path, args: &[String], ofql: &Path) -> String {
    let files = SuiteFiles::new(plan);
    let mut t = String::from("#!/bin/bash\n");
    let _ = writeln!(t, "#SBATCH --job-name=ofql-{}-report", plan.name);
    let _ = writeln!(t, "#SBATCH --cpus-per-task=1");
    let _ = writeln!(t, "#SBATCH --mem=2G");
    let _ = writeln!(t, "#SBATCH --time=00:30:00");
    if let Some(p) = &o.slurm.partition {
        let _ = writeln!(t, "#SBATCH --partition={p}");
    }
    let _ = writeln!(t, "#SBATCH --output={}/report_%j.out", files.logs().display());
    t += "set -eu\n";
    t += &exports();
    let _ = writeln!(t, "cd {}", sh(&root.display().to_string()));
    let results = results_dir(root, o, plan);
    let words: Vec<String> = std::iter::once(ofql.display().to_string())
        .chain(report_args(plan, &results, args))
        .map(|w| sh(&w))
        .collect();
    let _ = writeln!(t, "{}", words.join(" "));
    t
}

/// Find `program` on PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// `sbatch --parsable ARGS SCRIPT`: the job id, or Slurm's own message.
fn sbatch(args: &[String], script: &Path) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .context("cannot start sbatch")?;
    if !out.status.success() {
        bail!(
            "sbatch refused {}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `id` or `id;cluster`.
    let id = stdout.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() {
        bail!("sbatch printed no job id for {}", script.display());
    }
    Ok(id)
}

/// Write the plan and the scripts, prepare the datasets, and submit (unless --dry-run).
pub fn submit(root: &Path, o: &Options, plan: &Plan, args: &[String]) -> Result<()> {
    if !o.dry_run && on_path("sbatch").is_none() {
        bail!(
            "no `sbatch` on PATH: --launcher slurm needs the Slurm client of your cluster \
             (sbatch, squeue, scontrol). Load it (e.g. `module load slurm`), start a local \
             one-node cluster with `cargo xtask slurm-local up`, or run the suite on this \
             machine with --launcher local (the default)"
        );
    }
    let files = SuiteFiles::new(plan);
    fs::create_dir_all(files.logs())
        .with_context(|| format!("cannot create {}", files.logs().display()))?;
    let ofql = if o.dry_run {
        o.ofql.clone().unwrap_or_else(|| root.join("target/release/ofql"))
    } else {
        ofql_binary(root, o)?
    };
    let ofql = fs::canonicalize(&ofql).unwrap_or(ofql);
    fs::write(files.plan(), plan_tsv(plan))?;
    fs::write(files.task_script(), task_script(root, o, plan, args, &ofql)?)?;
    fs::write(files.report_script(), report_script(o, plan, root, args, &ofql))?;
    eprintln!(
        "reproduce-d4rl: suite `{}`: {} run(s) as one Slurm job array ({} core(s), {} memory, \
         time limit {} each); plan and scripts in {}",
        plan.name,
        plan.runs.len(),
        o.slurm.cpus_per_task,
        o.slurm.mem,
        o.slurm.time,
        files.dir.display()
    );
    if o.dry_run {
        for f in [files.task_script(), files.report_script()] {
            println!("# {}\n{}", f.display(), fs::read_to_string(&f)?);
        }
        return Ok(());
    }
    // Every dataset exists before any task starts: tasks only read them.
    let ctx = Ctx {
        ofql: ofql.clone(),
        root: root.to_path_buf(),
        o: o.clone(),
        threads: o.slurm.cpus_per_task,
    };
    ctx.datasets(plan)?;

    let array = sbatch(&o.slurm.sbatch_args, &files.task_script())?;
    fs::write(files.jobs(), format!("array {array}\n"))?;
    let mut after = o.slurm.sbatch_args.clone();
    after.push(format!("--dependency=afterany:{array}"));
    let report = sbatch(&after, &files.report_script()).with_context(|| {
        format!(
            "the job array {array} WAS submitted, but its report job was not: when the array \
             has ended, run `sbatch {}` (or `scancel {array}` to give up)",
            files.report_script().display()
        )
    })?;
    fs::write(files.jobs(), format!("array {array}\nreport {report}\n"))?;
    let results = results_dir(root, o, plan);
    println!("submitted job array {array} ({} runs) and report job {report}", plan.runs.len());
    eprintln!(
        "reproduce-d4rl: watch it with `squeue -j {array}` or `cargo xtask reproduce-d4rl <the \
         same options> --status`; the table will be {}",
        results.join(format!("{}.md", plan.name)).display()
    );
    Ok(())
}

/// One array task: the plan's run `index`, trained (or resumed) and evaluated.
pub fn task(root: &Path, o: &Options, plan: &Plan, index: usize) -> Result<()> {
    let files = SuiteFiles::new(plan);
    let Some(run) = plan.runs.get(index) else {
        bail!("--slurm-task {index}: the plan has {} runs", plan.runs.len());
    };
    // The plan file is what was submitted: the task must be the same run.
    let written = fs::read_to_string(files.plan())
        .with_context(|| format!("cannot read the suite's plan {}", files.plan().display()))?;
    let expected = plan_tsv(plan);
    let line = |text: &str| text.lines().nth(index + 1).map(str::to_string);
    if line(&written) != line(&expected) {
        bail!(
            "array task {index} does not match {}: the suite's options changed since it was \
             submitted",
            files.plan().display()
        );
    }
    let ctx = Ctx {
        ofql: ofql_binary(root, o)?,
        root: root.to_path_buf(),
        o: o.clone(),
        threads: o.threads.unwrap_or(o.slurm.cpus_per_task),
    };
    let data = ctx.dataset(&run.dataset, &plan.out)?;
    ctx.train_and_evaluate(run, &data, plan)
}

/// The state of every run: done (run.json), running or pending (squeue), failed (ended
/// without run.json, with its logs), or not started.
pub fn status(plan: &Plan) -> Result<()> {
    let files = SuiteFiles::new(plan);
    let jobs = fs::read_to_string(files.jobs()).unwrap_or_default();
    let array = jobs.lines().find_map(|l| l.strip_prefix("array ")).map(str::to_string);
    // squeue: "<array>_<task> STATE" for the tasks Slurm still knows of.
    let mut queued = std::collections::BTreeMap::new();
    if let Some(id) = &array
        && on_path("squeue").is_some()
    {
        let out = Command::new("squeue")
            .args(["-h", "-r", "-o", "%i %T", "-j", id])
            .output()
            .context("cannot run squeue")?;
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((job, state)) = l.split_once(' ')
                && let Some(task) = job.rsplit('_').next().and_then(|t| t.parse::<usize>().ok())
            {
                queued.insert(task, state.to_string());
            }
        }
    }
    let (mut done, mut failed) = (0, 0);
    for (i, r) in plan.runs.iter().enumerate() {
        let log = r.dir.with_extension("log");
        let state = if r.dir.join("run.json").is_file() {
            done += 1;
            "done".to_string()
        } else if let Some(s) = queued.get(&i) {
            s.to_lowercase()
        } else if array.is_some() && (log.is_file() || r.dir.exists()) {
            failed += 1;
            let slurm_log = array
                .as_ref()
                .map(|a| files.logs().join(format!("{a}_{i}.out")).display().to_string())
                .unwrap_or_default();
            format!("failed (logs: {}, {slurm_log})", log.display())
        } else {
            "not started".to_string()
        };
        println!("{i:>3} {} {} seed {}: {state}", r.dataset, r.variant, r.seed);
    }
    println!(
        "{done} of {} done, {failed} failed{}",
        plan.runs.len(),
        array.map_or(String::new(), |a| format!(" (job array {a})"))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_checked_and_launcher_flags_stay_out_of_tasks() {
        for ok in ["48:00:00", "1-00:00:00", "30", "05:00"] {
            check_time(ok).unwrap();
        }
        for bad in ["two hours", "1:xx:00", "", "1-"] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
        let args: Vec<String> =
            "--suite quick --launcher slurm --time 01:00:00 --sbatch-arg=--account=x --seeds 0,1 --dry-run"
                .split_whitespace()
                .map(String::from)
                .collect();
        assert_eq!(task_args(&args), ["--suite", "quick", "--seeds", "0,1"]);
        assert_eq!(sh("it's"), r"'it'\''s'");
    }
}
