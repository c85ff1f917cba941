//! `cargo xtask reproduce-d4rl`: the paper's table from one command.
//!
//! A suite is a list of runs (dataset x variant x seed). Each run is one `ofql train` in its
//! own folder under `--out`, then `ofql eval` of its last and best checkpoints with the paper's
//! protocol; the results go to `<run>/run.json`. Several runs go at once (`--jobs`), each with
//! its share of the cores. A suite that was interrupted skips runs that have a `run.json` and
//! resumes the others from their checkpoints. At the end `ofql report` aggregates every
//! `run.json` (polars) into `<suite folder>/<name>.md` (or `docs/results/` with `--publish`),
//! a CSV and learning-curve PNGs.
//!
//! This file only plans and launches processes: the work is done by the `ofql` binary, which
//! is built first (release), so that xtask itself stays light.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod slurm;

pub const HELP: &str = "\
cargo xtask reproduce-d4rl [OPTIONS]

Trains and evaluates a suite of OFQL runs with the `ofql` binary (built in release first) and
writes the aggregated table to <suite folder>/<name>.md (+ .csv, learning-curve PNGs), beside
the runs; --publish writes it to the project's docs/results instead.

Options:
  --suite NAME           paper (the paper's 15 datasets x 3 seeds: 9 MuJoCo at 2M steps, AntMaze
                         and Kitchen as Minari's D4RL/* datasets at 1M; 150 evaluation episodes)
                         or quick (halfcheetah-medium, 1 seed, 30k steps: about 20 minutes here)
                         [default: quick]
  --datasets A,B,..      dataset names (e.g. hopper-medium-v2, D4RL/antmaze/medium-play-v1)
                         instead of the suite's
  --seeds 0,1,2          seeds instead of the suite's
  --steps N              training steps per run instead of the suite's
  --episodes N           evaluation episodes per checkpoint instead of the suite's
  --data d4rl|generated  d4rl: the D4RL files (downloaded, or put in the cache by hand);
                         generated: the same datasets made by this project's behaviour policies
                         (`ofql dataset generate`), labelled as generated everywhere [default: d4rl]
  --policies DIR         behaviour policies for --data generated, one folder per environment
                         (e.g. DIR/halfcheetah-v4) [default: data/behaviour]; medium-replay
                         needs behaviour run folders (`ofql behaviour train --out DIR/<env>`)
  --generated-steps N    transitions per generated dataset [default: 1000000]
  --flow-ratio-ablation  the paper's Table 3: actor.flow_ratio = 1, 0.75, 0.5, 0.25, 0 on the
                         halfcheetah datasets (or --datasets)
  --sweep KEY=V1,V2,..   one variant per value of a config key, e.g. actor.eta=0.001,0.01,0.1
  --jobs N               runs at once [default: as many as the cores allow]
  --threads N            threads per run [default: cores / jobs]; use fewer when other work
                         shares the machine (an oversubscribed core stalls every thread)
  --out DIR              run folders [default: runs/reproduce-<name>]
  --results DIR          where the table goes [default: the suite folder, beside the runs]
  --publish              put the table in the project's docs/results (its published results)
  --cache-dir DIR        the D4RL download cache (as `ofql --cache-dir`)
  --ofql PATH            use this ofql binary instead of building target/release/ofql
  --dry-run              print the plan and exit (with --launcher slurm: write and print the
                         sbatch scripts without submitting them)
  --launcher local|slurm local: runs as processes on this machine [default]; slurm: one job
                         array on your cluster (one task per run, found by SLURM_ARRAY_TASK_ID
                         in <out>/slurm/plan.tsv) and a report job after it (docs/cluster.md)
  --partition P          Slurm partition [default: the cluster's]
  --time HH:MM:SS        time limit per array task [default: 48:00:00]; a task warned by
                         Slurm before its limit checkpoints, requeues itself and resumes
  --cpus-per-task N      cores per run, and its RAYON_NUM_THREADS [default: 2]
  --mem M                memory per run, as sbatch takes it [default: 4G]
  --array-parallelism K  at most K array tasks at once [default: no limit]
  --sbatch-arg ARG       one more argument for sbatch, e.g. --sbatch-arg=--account=lab
                         (repeatable)
  --status               show the suite's runs: done, running, pending, failed (with logs)
";

/// The project's published results, written only on request (`--publish`).
const PUBLISHED: &str = "docs/results";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    D4rl,
    Generated,
}

#[derive(Debug, Clone)]
struct Options {
    suite: String,
    datasets: Option<Vec<String>>,
    seeds: Option<Vec<u64>>,
    steps: Option<u64>,
    episodes: Option<usize>,
    data: Data,
    policies: PathBuf,
    generated_steps: u64,
    flow_ratio_ablation: bool,
    sweep: Option<(String, Vec<String>)>,
    jobs: Option<usize>,
    threads: Option<usize>,
    out: Option<PathBuf>,
    /// Where the table goes; None: beside the runs (the suite folder).
    results: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    ofql: Option<PathBuf>,
    dry_run: bool,
    launcher: Launcher,
    slurm: slurm::SlurmOptions,
    /// Show the suite's state (done, running, pending, failed) instead of running it.
    status: bool,
    /// Internal: run the plan's run INDEX (one array task of the Slurm launcher).
    slurm_task: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launcher {
    Local,
    Slurm,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        suite: "quick".into(),
        datasets: None,
        seeds: None,
        steps: None,
        episodes: None,
        data: Data::D4rl,
        policies: PathBuf::from("data/behaviour"),
        generated_steps: 1_000_000,
        flow_ratio_ablation: false,
        sweep: None,
        jobs: None,
        threads: None,
        out: None,
        results: None,
        cache_dir: None,
        ofql: None,
        dry_run: false,
        launcher: Launcher::Local,
        slurm: slurm::SlurmOptions::default(),
        status: false,
        slurm_task: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (flag.clone(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .with_context(|| format!("{flag} needs a value"))
        };
        let number = |v: String, what: &str| -> Result<u64> {
            v.parse().with_context(|| format!("{what}: `{v}` is not a whole number"))
        };
        match flag.as_str() {
            "--suite" => o.suite = value()?,
            "--datasets" => o.datasets = Some(list(&value()?)),
            "--seeds" => {
                let seeds = list(&value()?).into_iter().map(|s| number(s, "--seeds"));
                o.seeds = Some(seeds.collect::<Result<_>>()?);
            }
            "--steps" => o.steps = Some(number(value()?, "--steps")?),
            "--episodes" => o.episodes = Some(number(value()?, "--episodes")? as usize),
            "--data" => {
                o.data = match value()?.as_str() {
                    "d4rl" => Data::D4rl,
                    "generated" => Data::Generated,
                    other => bail!("--data {other}: use d4rl or generated"),
                }
            }
            "--policies" => o.policies = PathBuf::from(value()?),
            "--generated-steps" => o.generated_steps = number(value()?, "--generated-steps")?,
            "--flow-ratio-ablation" => o.flow_ratio_ablation = true,
            "--sweep" => {
                let v = value()?;
                let (key, values) = v.split_once('=').with_context(|| {
                    format!("--sweep {v}: write KEY=V1,V2,.. (e.g. actor.eta=0.01,0.1)")
                })?;
                o.sweep = Some((key.to_string(), list(values)));
            }
            "--jobs" => o.jobs = Some(number(value()?, "--jobs")?.max(1) as usize),
            "--threads" => o.threads = Some(number(value()?, "--threads")?.max(1) as usize),
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--results" => o.results = Some(PathBuf::from(value()?)),
            "--publish" => o.results = Some(PathBuf::from(PUBLISHED)),
            "--cache-dir" => o.cache_dir = Some(PathBuf::from(value()?)),
            "--ofql" => o.ofql = Some(PathBuf::from(value()?)),
            "--dry-run" => o.dry_run = true,
            "--launcher" => {
                o.launcher = match value()?.as_str() {
                    "local" => Launcher::Local,
                    "slurm" => Launcher::Slurm,
                    other => bail!("--launcher {other}: use local or slurm"),
                }
            }
            "--partition" => o.slurm.partition = Some(value()?),
            "--time" => o.slurm.time = slurm::check_time(&value()?)?,
            "--cpus-per-task" => {
                o.slurm.cpus_per_task = number(value()?, "--cpus-per-task")?.max(1) as usize
            }
            "--mem" => o.slurm.mem = value()?,
            "--array-parallelism" => {
                o.slurm.array_parallelism =
                    Some(number(value()?, "--array-parallelism")?.max(1) as usize)
            }
            "--sbatch-arg" => o.slurm.sbatch_args.push(value()?),
            "--status" => o.status = true,
            "--slurm-task" => o.slurm_task = Some(number(value()?, "--slurm-task")? as usize),
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    if o.flow_ratio_ablation && o.sweep.is_some() {
        bail!("--flow-ratio-ablation and --sweep are separate suites: run them one at a time");
    }
    if o.seeds.as_ref().is_some_and(|s| s.is_empty())
        || o.datasets.as_ref().is_some_and(|d| d.is_empty())
    {
        bail!("--seeds and --datasets need at least one value");
    }
    Ok(o)
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect()
}

/// The paper's AntMaze and Kitchen rows, as Minari's regenerated datasets (the D4RL v2 files
/// the paper used cannot be scored in Gymnasium-Robotics' environments; docs/envs.md).
const ANTMAZE_KITCHEN: [&str; 6] = [
    "D4RL/antmaze/medium-play-v1",
    "D4RL/antmaze/large-play-v1",
    "D4RL/antmaze/medium-diverse-v1",
    "D4RL/antmaze/large-diverse-v1",
    "D4RL/kitchen/mixed-v2",
    "D4RL/kitchen/partial-v2",
];

/// A dataset's config file and run folder name: Minari's ids with `/` -> `-`.
fn file_stem(dataset: &str) -> String {
    dataset.replace('/', "-")
}

/// The paper's nine MuJoCo datasets, in the order of its table.
const MUJOCO: [&str; 9] = [
    "halfcheetah-medium-expert-v2",
    "hopper-medium-expert-v2",
    "walker2d-medium-expert-v2",
    "halfcheetah-medium-v2",
    "hopper-medium-v2",
    "walker2d-medium-v2",
    "halfcheetah-medium-replay-v2",
    "hopper-medium-replay-v2",
    "walker2d-medium-replay-v2",
];

/// One training run of the suite.
#[derive(Debug, Clone)]
struct Run {
    dataset: String,
    /// "default", or "<key>=<value>" for ablations and sweeps.
    variant: String,
    overrides: Vec<String>,
    seed: u64,
    dir: PathBuf,
}

/// Everything a suite resolves to.
struct Plan {
    name: String,
    runs: Vec<Run>,
    steps: Option<u64>,
    /// In-training evaluation (for the learning curves) and the final one.
    curve_overrides: Vec<String>,
    final_episodes: usize,
    out: PathBuf,
}

fn plan(o: &Options, root: &Path) -> Result<Plan> {
    // (datasets, seeds, steps, final evaluation episodes, in-training evaluation overrides)
    let (datasets, seeds, steps, episodes, curve): (
        Vec<String>,
        Vec<u64>,
        Option<u64>,
        usize,
        Vec<String>,
    ) = match o.suite.as_str() {
        // The paper's 15 rows; generated data exists for the nine MuJoCo ones only.
        "paper" => {
            let mut all = MUJOCO.map(String::from).to_vec();
            if o.data != Data::Generated {
                all.extend(ANTMAZE_KITCHEN.map(String::from));
            }
            (all, vec![0, 1, 2], None, 150, vec![])
        }
        "quick" => (
            vec!["halfcheetah-medium-v2".into()],
            vec![0],
            Some(30_000),
            50,
            ["train.eval_every=5000", "eval.episodes=10", "eval.parallel_envs=10"]
                .map(String::from)
                .to_vec(),
        ),
        other => bail!(
            "unknown suite `{other}`: use paper or quick (and --datasets/--seeds/--steps to choose)"
        ),
    };
    let mut datasets = o.datasets.clone().unwrap_or(datasets);
    if o.flow_ratio_ablation && o.datasets.is_none() {
        datasets =
            MUJOCO.iter().filter(|d| d.starts_with("halfcheetah")).map(|d| d.to_string()).collect();
    }
    for d in &datasets {
        let stem = file_stem(d);
        if !root.join("configs").join(format!("{stem}.toml")).is_file() {
            bail!(
                "no config configs/{stem}.toml for dataset `{d}`: the suites know {}, {}",
                MUJOCO.join(", "),
                ANTMAZE_KITCHEN.join(", ")
            );
        }
    }
    let seeds = o.seeds.clone().unwrap_or(seeds);
    let variants: Vec<(String, Vec<String>)> = if o.flow_ratio_ablation {
        ["1", "0.75", "0.5", "0.25", "0"]
            .iter()
            .map(|r| (format!("actor.flow_ratio={r}"), vec![format!("actor.flow_ratio={r}")]))
            .collect()
    } else if let Some((key, values)) = &o.sweep {
        values.iter().map(|v| (format!("{key}={v}"), vec![format!("{key}={v}")])).collect()
    } else {
        vec![("default".into(), vec![])]
    };
    let mut name = o.suite.clone();
    if o.data == Data::Generated {
        name += "-generated";
    }
    if o.flow_ratio_ablation {
        name += "-flow-ratio";
    }
    if let Some((key, _)) = &o.sweep {
        name += &format!("-sweep-{}", key.replace('.', "-"));
    }
    let out = o.out.clone().unwrap_or_else(|| root.join("runs").join(format!("reproduce-{name}")));
    let mut runs = vec![];
    for dataset in &datasets {
        for (variant, overrides) in &variants {
            for &seed in &seeds {
                let dir = out
                    .join(file_stem(dataset))
                    .join(variant.replace('=', "-"))
                    .join(format!("seed{seed}"));
                runs.push(Run {
                    dataset: dataset.clone(),
                    variant: variant.clone(),
                    overrides: overrides.clone(),
                    seed,
                    dir,
                });
            }
        }
    }
    Ok(Plan {
        name,
        runs,
        steps: o.steps.or(steps),
        curve_overrides: curve,
        final_episodes: o.episodes.unwrap_or(episodes),
        out,
    })
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let plan = plan(&o, root)?;
    if let Some(index) = o.slurm_task {
        return slurm::task(root, &o, &plan, index);
    }
    if o.status {
        return slurm::status(&plan);
    }
    if o.launcher == Launcher::Slurm {
        return slurm::submit(root, &o, &plan, args);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = o.jobs.unwrap_or(cores).min(plan.runs.len()).max(1);
    let threads = o.threads.unwrap_or(cores / jobs).max(1);
    eprintln!(
        "reproduce-d4rl: suite `{}`: {} run(s) ({} at once, {} thread(s) each), steps {}, {} evaluation episodes per checkpoint, data {}, runs in {}",
        plan.name,
        plan.runs.len(),
        jobs,
        threads,
        plan.steps.map_or("from the configs".into(), |s| s.to_string()),
        plan.final_episodes,
        if o.data == Data::Generated {
            "generated by this project's behaviour policies"
        } else {
            "D4RL"
        },
        plan.out.display()
    );
    if o.dry_run {
        for r in &plan.runs {
            println!("{} {} seed {} -> {}", r.dataset, r.variant, r.seed, r.dir.display());
        }
        return Ok(());
    }
    let ctx = Ctx { ofql: ofql_binary(root, &o)?, root: root.to_path_buf(), o: o.clone(), threads };
    let files = ctx.datasets(&plan)?;

    let queue = Mutex::new(plan.runs.iter().cloned().collect::<VecDeque<_>>());
    let failures = Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                // Take the next run and let the queue go at once: a guard held in the
                // `while let` would keep the lock, and so the other jobs, for the whole run.
                loop {
                    let next = queue.lock().expect("queue").pop_front();
                    let Some(r) = next else { break };
                    let file = &files[&r.dataset];
                    if let Err(e) = ctx.train_and_evaluate(&r, file, &plan) {
                        eprintln!(
                            "reproduce-d4rl: {} {} seed {} failed: {e:#}",
                            r.dataset, r.variant, r.seed
                        );
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("{} ({e:#})", r.dir.display()));
                    }
                }
            });
        }
    });

    // A user's suite reports beside its runs; only --publish (or --results) writes into the
    // project's own docs/results. Interrupted or failed runs are in the report as unfinished;
    // where the report itself fails too, the runs' errors come first.
    let failures = failures.into_inner().expect("failures");
    let results = results_dir(root, &o, &plan);
    let mut report = Command::new(&ctx.ofql);
    report.args(report_args(&plan, &results, args));
    match ctx.run_logged(&mut report, None).context("ofql report") {
        Ok(_) => eprintln!(
            "reproduce-d4rl: table in {}",
            results.join(format!("{}.md", plan.name)).display()
        ),
        Err(e) if !failures.is_empty() => eprintln!("reproduce-d4rl: no table: {e:#}"),
        Err(e) => return Err(e),
    }
    if !failures.is_empty() {
        bail!(
            "{} run(s) failed (their logs are in their folders; rerun the same command to resume):\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// The `ofql` binary: --ofql, else target/release/ofql built now.
fn ofql_binary(root: &Path, o: &Options) -> Result<PathBuf> {
    Ok(match &o.ofql {
        Some(p) => p.clone(),
        None => {
            crate::cargo(&["build", "--release", "-p", "ofql-cli"], &[])?;
            root.join("target/release/ofql")
        }
    })
}

/// Where the table goes: beside the runs, unless --publish or --results says otherwise.
fn results_dir(root: &Path, o: &Options, plan: &Plan) -> PathBuf {
    o.results.as_ref().map_or_else(|| plan.out.clone(), |r| root.join(r))
}

/// The arguments of the `ofql report` that aggregates a suite.
fn report_args(plan: &Plan, results: &Path, args: &[String]) -> Vec<String> {
    let command = format!("cargo xtask reproduce-d4rl {}", args.join(" "));
    [
        "report",
        "--runs",
        &plan.out.to_string_lossy(),
        "--name",
        &plan.name,
        "--out",
        &results.to_string_lossy(),
        "--command",
        &command,
    ]
    .map(String::from)
    .to_vec()
}

struct Ctx {
    ofql: PathBuf,
    root: PathBuf,
    o: Options,
    threads: usize,
}

/// What a dataset resolves to for `ofql train`.
#[derive(Debug, Clone)]
enum DataFile {
    /// A registry name, found in the download cache.
    Name(String),
    /// A generated file and the environment that made it.
    Generated { file: PathBuf, env: String },
}

impl Ctx {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.ofql);
        c.current_dir(&self.root).env("RAYON_NUM_THREADS", self.threads.to_string());
        c
    }

    /// Run `cmd`; its stdout (one JSON object with --json) is returned, its stderr goes to
    /// `log` (or ours).
    fn run_logged(&self, cmd: &mut Command, log: Option<&Path>) -> Result<String> {
        match log {
            Some(path) => {
                let f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open log {}", path.display()))?;
                cmd.stderr(f);
            }
            None => {
                cmd.stderr(Stdio::inherit());
            }
        }
        let out = cmd
            .stdout(Stdio::piped())
            .output()
            .with_context(|| format!("cannot start {}", self.ofql.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let why = log
                .map_or(String::new(), |p| format!("; the end of {}:\n{}", p.display(), tail(p)));
            bail!("{:?} failed ({}){why}", cmd.get_args().collect::<Vec<_>>(), out.status);
        }
        Ok(stdout)
    }

    /// Every dataset of the plan, one at a time before any run: downloads and generation are
    /// shared by the runs.
    fn datasets(&self, plan: &Plan) -> Result<std::collections::BTreeMap<String, DataFile>> {
        let names: std::collections::BTreeSet<&String> =
            plan.runs.iter().map(|r| &r.dataset).collect();
        names.into_iter().map(|d| Ok((d.clone(), self.dataset(d, &plan.out)?))).collect()
    }

    fn dataset(&self, name: &str, out: &Path) -> Result<DataFile> {
        match self.o.data {
            Data::D4rl => {
                let mut c = self.command();
                c.args(["dataset", "fetch", name, "--json"]);
                if let Some(dir) = &self.o.cache_dir {
                    c.arg("--cache-dir").arg(dir);
                }
                self.run_logged(&mut c, None).with_context(|| {
                    format!(
                        "D4RL dataset {name} is not available. Alternatively run the same suite on \
                         datasets made by this project's behaviour policies: add --data generated"
                    )
                })?;
                Ok(DataFile::Name(name.to_string()))
            }
            Data::Generated => {
                let (env, kind) = generated_env_and_kind(name)?;
                let dir = out.join("data");
                fs::create_dir_all(&dir)?;
                let file =
                    dir.join(format!("{}-{kind}-generated.hdf5", env.trim_end_matches("-v4")));
                // Two suites sharing an --out (one lane per run, as docs/reproduce.md shows)
                // must not generate the same file at once: the second waits for the first.
                // The OS drops the lock when its holder dies, so a killed suite blocks no one.
                let lock = fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(file.with_extension("hdf5.lock"))?;
                if lock.try_lock().is_err() {
                    eprintln!(
                        "reproduce-d4rl: waiting for another suite that is generating {}",
                        file.display()
                    );
                    lock.lock()?;
                }
                if !file.is_file() {
                    let policy = self.root.join(&self.o.policies).join(&env);
                    let part = file.with_extension("hdf5.tmp");
                    eprintln!(
                        "reproduce-d4rl: generating {} ({kind} of {env}, policies {})",
                        file.display(),
                        policy.display()
                    );
                    let mut c = self.command();
                    c.args(["dataset", "generate", "--env", &env, "--kind", &kind, "--policy"])
                        .arg(&policy)
                        .args(["--seed", "0", "--force", "--json", "--out"])
                        .arg(&part);
                    // medium-replay's size is the behaviour run's own step count.
                    if kind != "medium-replay" {
                        c.args(["--steps", &self.o.generated_steps.to_string()]);
                    }
                    let json = self.run_logged(&mut c, None).with_context(|| {
                        format!(
                            "cannot generate {kind} data for {env} (behaviour policies in {})",
                            policy.display()
                        )
                    })?;
                    // The record names the file where it ends up, not the temporary one.
                    let json = json.replace(&*part.to_string_lossy(), &file.to_string_lossy());
                    // `ofql report` reads it as <runs>/data/<dataset>.json.
                    fs::write(dir.join(format!("{name}.json")), json)?;
                    fs::rename(&part, &file)?;
                }
                drop(lock);
                Ok(DataFile::Generated { file, env })
            }
        }
    }

    fn train_and_evaluate(&self, r: &Run, data: &DataFile, plan: &Plan) -> Result<()> {
        let done = r.dir.join("run.json");
        if done.is_file() {
            eprintln!("reproduce-d4rl: {} done already, skipped", r.dir.display());
            return Ok(());
        }
        // The log sits beside the run folder (`seed0.log`): `ofql train` makes the folder
        // itself and refuses one that holds anything else.
        let parent = r.dir.parent().context("a run folder has a parent")?;
        fs::create_dir_all(parent)?;
        let log = r.dir.with_extension("log");
        let started = Instant::now();
        let mut train = self.command();
        train.arg("train");
        let resumed = r.dir.join("checkpoint/last.safetensors").is_file();
        if !resumed && r.dir.exists() {
            // Stopped before its first checkpoint (or not a run at all): keep it, under
            // another name, and start the run afresh.
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let aside = r.dir.with_extension(format!("unfinished-{secs}"));
            fs::rename(&r.dir, &aside)?;
            eprintln!(
                "reproduce-d4rl: {} had no checkpoint to resume from: moved to {}, starting afresh",
                r.dir.display(),
                aside.display()
            );
        }
        if resumed {
            train.arg("--resume").arg(&r.dir);
        } else {
            train
                .arg("--config")
                .arg(self.root.join("configs").join(format!("{}.toml", file_stem(&r.dataset))));
            train.args(["--seed", &r.seed.to_string(), "--out"]).arg(&r.dir);
            match data {
                DataFile::Name(n) => {
                    train.args(["--dataset", n]);
                }
                DataFile::Generated { file, env } => {
                    train.arg("--dataset").arg(file).args(["--env", env]);
                }
            }
            for kv in plan.curve_overrides.iter().chain(&r.overrides) {
                train.args(["--set", kv]);
            }
        }
        if let Some(steps) = plan.steps {
            train.args(["--steps", &steps.to_string()]);
        }
        if let Some(dir) = &self.o.cache_dir {
            train.arg("--cache-dir").arg(dir);
        }
        train.arg("--json");
        // Which run the folder holds, beside it (`seed0.plan.json`): `ofql report` lists the
        // run by it until its run.json exists.
        let kind = if matches!(data, DataFile::Generated { .. }) { "generated" } else { "d4rl" };
        let run_plan = format!(
            "{{\"dataset\":{},\"data\":{},\"variant\":{},\"seed\":{}}}\n",
            quote(&r.dataset),
            quote(kind),
            quote(&r.variant),
            r.seed
        );
        fs::write(r.dir.with_extension("plan.json"), run_plan)?;
        eprintln!(
            "reproduce-d4rl: {} {} seed {}: {}",
            r.dataset,
            r.variant,
            r.seed,
            if resumed { "resuming" } else { "training" }
        );
        let train_json = self.run_logged(&mut train, Some(&log))?;
        let train_seconds = started.elapsed().as_secs_f64();

        // Both checkpoints under both protocols: the paper's (Q-softmax over 50 candidates)
        // and one plain sample, so the table shows what the critic's choice adds.
        let mut evals = vec![];
        for protocol in ["cleandiffuser", "plain"] {
            for which in ["last", "best"] {
                if which == "best" && !r.dir.join("checkpoint/best.safetensors").is_file() {
                    evals.push("null".to_string());
                    continue;
                }
                let mut ev = self.command();
                ev.args(["eval", "--checkpoint"]).arg(&r.dir).args([
                    "--which",
                    which,
                    "--protocol",
                    protocol,
                    "--episodes",
                    &plan.final_episodes.to_string(),
                    "--json",
                ]);
                evals.push(self.run_logged(&mut ev, Some(&log))?.trim().to_string());
            }
        }
        let record = format!(
            "{{\"dataset\":{},\"data\":{},\"variant\":{},\"seed\":{},\"resumed\":{},\"train_seconds\":{:.1},\"wall_seconds\":{:.1},\"train\":{},\"eval_last\":{},\"eval_best\":{},\"eval_last_plain\":{},\"eval_best_plain\":{}}}\n",
            quote(&r.dataset),
            quote(kind),
            quote(&r.variant),
            r.seed,
            resumed,
            train_seconds,
            started.elapsed().as_secs_f64(),
            train_json.trim(),
            evals[0],
            evals[1],
            evals[2],
            evals[3],
        );
        let tmp = done.with_extension("json.tmp");
        fs::write(&tmp, record)?;
        fs::rename(&tmp, &done)?;
        eprintln!(
            "reproduce-d4rl: {} finished in {:.0} s",
            r.dir.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// `halfcheetah-medium-replay-v2` -> (`halfcheetah-v4`, `medium-replay`).
fn generated_env_and_kind(dataset: &str) -> Result<(String, String)> {
    let stem = dataset.strip_suffix("-v2").unwrap_or(dataset);
    for env in ["halfcheetah", "hopper", "walker2d"] {
        if let Some(kind) = stem.strip_prefix(env).and_then(|k| k.strip_prefix('-')) {
            return Ok((format!("{env}-v4"), kind.to_string()));
        }
    }
    bail!("--data generated covers the halfcheetah, hopper and walker2d datasets, not `{dataset}`")
}

/// A JSON string literal (names here are plain ASCII, but quote properly anyway).
fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q += "\\\"",
            '\\' => q += "\\\\",
            c if (c as u32) < 0x20 => q += &format!("\\u{:04x}", c as u32),
            c => q.push(c),
        }
    }
    q + "\""
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn paper_suite_is_fifteen_datasets_by_three_seeds() {
        let root = crate::project_root();
        let p = plan(&parse(&args("--suite paper")).unwrap(), &root).unwrap();
        assert_eq!(p.runs.len(), 45);
        assert_eq!(p.steps, None, "the configs' 2M (MuJoCo) and 1M (AntMaze, Kitchen) steps");
        // Minari's ids name a flat folder and their own config.
        let maze = p.runs.iter().find(|r| r.dataset == "D4RL/antmaze/large-play-v1").unwrap();
        assert!(maze.dir.ends_with("D4RL-antmaze-large-play-v1/default/seed0"), "{:?}", maze.dir);
        // Generated data exists for the nine MuJoCo rows only.
        let p = plan(&parse(&args("--suite paper --data generated")).unwrap(), &root).unwrap();
        assert_eq!(p.runs.len(), 27);
        assert_eq!(p.final_episodes, 150);
        let p = plan(
            &parse(&args("--suite paper --datasets hopper-medium-v2 --seeds 4 --steps 10"))
                .unwrap(),
            &root,
        )
        .unwrap();
        assert_eq!(p.runs.len(), 1);
        assert_eq!((p.runs[0].seed, p.steps), (4, Some(10)));
    }

    #[test]
    fn ablation_and_sweep_make_one_variant_per_value() {
        let root = crate::project_root();
        let p =
            plan(&parse(&args("--flow-ratio-ablation --data generated")).unwrap(), &root).unwrap();
        assert_eq!(p.runs.len(), 3 * 5);
        assert_eq!(p.name, "quick-generated-flow-ratio");
        assert!(p.runs.iter().all(|r| r.dataset.starts_with("halfcheetah")));
        let p =
            plan(&parse(&args("--sweep actor.eta=0.01,0.1 --seeds 0,1")).unwrap(), &root).unwrap();
        assert_eq!(p.runs.len(), 4);
        assert_eq!(p.runs[0].overrides, vec!["actor.eta=0.01".to_string()]);
        assert!(p.runs[0].dir.ends_with("halfcheetah-medium-v2/actor.eta-0.01/seed0"));
    }

    /// A user's suite reports beside its runs; only --publish writes into docs/results.
    #[test]
    fn reports_go_beside_the_runs_unless_published() {
        assert_eq!(parse(&args("--suite quick")).unwrap().results, None);
        let o = parse(&args("--suite quick --publish")).unwrap();
        assert_eq!(o.results, Some(PathBuf::from("docs/results")));
        let o = parse(&args("--results /tmp/x")).unwrap();
        assert_eq!(o.results, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn bad_options_are_named() {
        let root = crate::project_root();
        let err = |s: &str| match parse(&args(s)).and_then(|o| plan(&o, &root)) {
            Ok(_) => panic!("`{s}` was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err("--suite huge").contains("huge"));
        assert!(err("--data minari").contains("minari"));
        assert!(err("--datasets pong-v0").contains("pong-v0"));
        assert!(err("--steps ten").contains("ten"));
        assert!(err("--sweep actor.eta").contains("KEY=V1"));
        assert!(err("--frobnicate").contains("--frobnicate"));
        assert!(generated_env_and_kind("antmaze-large-play-v2").is_err());
        assert_eq!(
            generated_env_and_kind("walker2d-medium-replay-v2").unwrap(),
            ("walker2d-v4".to_string(), "medium-replay".to_string())
        );
    }

    /// Two suites sharing an --out (one lane per run) generate a dataset once: the second
    /// waits on the lock and then finds the file. Without the lock both would see no file
    /// during the first's generation (it takes a second here) and both would generate it.
    #[cfg(unix)]
    #[test]
    fn two_suites_generate_a_shared_dataset_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-data-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // A stand-in for `ofql dataset generate`: it counts its calls, takes a second, then
        // writes the file named by --out and prints its JSON record.
        let calls = dir.join("calls");
        let fake = dir.join("ofql");
        fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho call >> '{}'\nsleep 1\nwhile [ $# -gt 0 ]; do\n  \
                 [ \"$1\" = --out ] && out=\"$2\"\n  shift\ndone\necho hdf5 > \"$out\"\n\
                 echo \"{{\\\"path\\\": \\\"$out\\\"}}\"\n",
                calls.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let ctx = || Ctx {
            ofql: fake.clone(),
            root: dir.clone(),
            o: parse(&args("--suite paper --data generated")).unwrap(),
            threads: 1,
        };
        let out = dir.join("runs");
        let files: Vec<PathBuf> = std::thread::scope(|s| {
            let lanes: Vec<_> = (0..2)
                .map(|_| {
                    let (c, out) = (ctx(), &out);
                    s.spawn(move || match c.dataset("hopper-medium-v2", out).unwrap() {
                        DataFile::Generated { file, env } => {
                            assert_eq!(env, "hopper-v4");
                            file
                        }
                        other => panic!("not generated: {other:?}"),
                    })
                })
                .collect();
            lanes.into_iter().map(|l| l.join().unwrap()).collect()
        });
        assert_eq!(fs::read_to_string(&calls).unwrap().lines().count(), 1, "generated twice");
        assert_eq!(files[0], files[1]);
        assert_eq!(fs::read_to_string(&files[0]).unwrap(), "hdf5\n");
        assert!(!files[0].with_extension("hdf5.tmp").exists());
        // The record names the final file, not the temporary one.
        let record = fs::read_to_string(out.join("data/hopper-medium-v2.json")).unwrap();
        assert!(record.contains(&*files[0].to_string_lossy()), "{record}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
