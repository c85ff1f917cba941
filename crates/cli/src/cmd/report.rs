//! `ofql report`: aggregate a suite of runs (every `run.json` that `cargo xtask
//! reproduce-d4rl` writes, with the run's `metrics.jsonl`) into `<out>/<name>.md`, `<name>.csv`
//! and one learning-curve PNG per dataset in `<out>/<name>/`.
//!
//! Per dataset and variant: mean and std over seeds of the last and the best checkpoint's
//! score, the paper's OFQL / DQL / FQL / BC numbers beside ours with the difference (D4RL data
//! only: generated data is never put beside D4RL numbers), steps per second and wall time.
//! Run folders without a `run.json` (still training, stopped or failed: long runs outlive a
//! session) get their own section with their in-training evaluations so far, and are in the
//! learning curves.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::paper::{self, PaperScores};
use anyhow::{Context, Result, bail};
use clap::Args;
use ofql_algo::train::read_metrics;
use ofql_data::registry;
use ofql_plot::{LineChart, Reference, Series, TextRenderer};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::output::Output;

#[derive(Args)]
pub struct ReportArgs {
    /// The suite's run folders (searched recursively for run.json).
    #[arg(long)]
    pub runs: PathBuf,
    /// The report's name: <out>/<name>.md, .csv and <out>/<name>/*.png.
    #[arg(long)]
    pub name: String,
    /// Where the report goes [default: the --runs folder, beside the runs].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The command that made the runs, quoted in the table.
    #[arg(long)]
    pub command: Option<String>,
}

/// What `ofql dataset generate --json` printed for a generated dataset, saved by the xtask as
/// `<runs>/data/<dataset>.json`.
#[derive(Debug, Clone, Deserialize)]
struct Generated {
    return_mean: f64,
    transitions: usize,
}

/// What `cargo xtask reproduce-d4rl` records for one finished run.
#[derive(Debug, Clone, Deserialize)]
struct RunRecord {
    dataset: String,
    data: String,
    variant: String,
    seed: u64,
    wall_seconds: f64,
    train: TrainPart,
    eval_last: Option<EvalPart>,
    eval_best: Option<EvalPart>,
    /// The same checkpoints with one plain sample per state (suites from before this have
    /// none).
    #[serde(default)]
    eval_last_plain: Option<EvalPart>,
    #[serde(default)]
    eval_best_plain: Option<EvalPart>,
    #[serde(skip)]
    dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
struct TrainPart {
    steps: u64,
    steps_per_second: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct EvalPart {
    score_mean: f64,
    episodes: usize,
}

/// What `cargo xtask reproduce-d4rl` writes beside a run folder each time it starts or resumes
/// it (`seed0.plan.json` beside `seed0/`): which run the folder holds before it has a
/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunPlan {
    dataset: String,
    data: String,
    variant: String,
    seed: u64,
}

/// A run folder without a `run.json`: still training, stopped or failed.
#[derive(Debug, Clone, Serialize)]
struct Unfinished {
    #[serde(flatten)]
    plan: RunPlan,
    /// The last step in its metrics.jsonl.
    logged_steps: u64,
    /// Its in-training evaluations so far.
    evaluations: Vec<Evaluation>,
    dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
struct Evaluation {
    step: u64,
    score_mean: Option<f64>,
    score_std: Option<f64>,
    plain_score_mean: Option<f64>,
    plain_score_std: Option<f64>,
}

/// One aggregated row (dataset x variant).
#[derive(Debug, Clone, Serialize)]
struct Row {
    dataset: String,
    variant: String,
    seeds: u64,
    steps: f64,
    last_mean: Option<f64>,
    last_std: Option<f64>,
    best_mean: Option<f64>,
    best_std: Option<f64>,
    /// The plain protocol (one sample, no critic) on the same checkpoints.
    last_plain_mean: Option<f64>,
    last_plain_std: Option<f64>,
    best_plain_mean: Option<f64>,
    best_plain_std: Option<f64>,
    steps_per_second: Option<f64>,
    wall_hours: Option<f64>,
    episodes: Option<f64>,
    /// Generated data: the normalised mean episode return of the dataset itself.
    data_score: Option<f64>,
    data_transitions: Option<usize>,
}

#[derive(Serialize)]
struct Report {
    name: String,
    data: String,
    runs: usize,
    table: PathBuf,
    csv: PathBuf,
    figures: Vec<PathBuf>,
    rows: Vec<Row>,
    unfinished: Vec<Unfinished>,
}

pub fn run(args: ReportArgs, out: &Output) -> Result<()> {
    let dest = args.out.clone().unwrap_or_else(|| args.runs.clone());
    let (runs, unfinished) = find_runs(&args.runs)?;
    if runs.is_empty() && unfinished.is_empty() {
        bail!(
            "no runs under {} (neither a run.json nor a run folder with metrics.jsonl)",
            args.runs.display()
        );
    }
    let kinds: std::collections::BTreeSet<&str> = runs
        .iter()
        .map(|r| r.data.as_str())
        .chain(unfinished.iter().map(|u| u.plan.data.as_str()))
        .collect();
    if kinds.len() > 1 {
        bail!(
            "{} mixes D4RL and generated runs; report them separately (never in one table)",
            args.runs.display()
        );
    }
    let data = kinds.first().expect("one kind at least").to_string();
    let mut rows = if runs.is_empty() { vec![] } else { aggregate(&runs)? };
    for r in &mut rows {
        if let Some(g) = generated_record(&args.runs, &r.dataset)? {
            r.data_score = Some(g.0);
            r.data_transitions = Some(g.1);
        }
    }
    fs::create_dir_all(dest.join(&args.name))
        .with_context(|| format!("cannot create {}", dest.display()))?;
    let mut data_levels: Vec<(String, f64)> = vec![];
    let datasets =
        runs.iter().map(|r| &r.dataset).chain(unfinished.iter().map(|u| &u.plan.dataset));
    for d in datasets {
        if !data_levels.iter().any(|(known, _)| known == d)
            && let Some((score, _)) = generated_record(&args.runs, d)?
        {
            data_levels.push((d.clone(), score));
        }
    }
    let sources: Vec<CurveSource> = runs
        .iter()
        .map(|r| CurveSource { dataset: &r.dataset, variant: &r.variant, dir: &r.dir })
        .chain(unfinished.iter().map(|u| CurveSource {
            dataset: &u.plan.dataset,
            variant: &u.plan.variant,
            dir: &u.dir,
        }))
        .collect();
    let figures = curves(&sources, &data_levels, &dest, &args.name)?;
    let table = dest.join(format!("{}.md", args.name));
    let csv = dest.join(format!("{}.csv", args.name));
    let md = markdown(
        &args.name,
        &data,
        &rows,
        &runs,
        &unfinished_markdown(&unfinished, &data_levels, data == "d4rl"),
        &figures,
        &dest,
        args.command.as_deref(),
    );
    fs::write(&table, md)?;
    fs::write(&csv, to_csv(&rows, data == "d4rl"))?;
    let report =
        Report { name: args.name, data, runs: runs.len(), table, csv, figures, rows, unfinished };
    out.report(&report, || {
        let unfinished = match report.unfinished.len() {
            0 => String::new(),
            n => format!(" (and {n} unfinished)"),
        };
        format!(
            "{} runs{unfinished} -> {} and {}",
            report.runs,
            report.table.display(),
            report.csv.display()
        )
    });
    Ok(())
}

/// Generated data: the dataset's own normalised score and its size, from what the xtask saved
/// as `<runs>/data/<dataset>.json`.
fn generated_record(runs: &Path, dataset: &str) -> Result<Option<(f64, usize)>> {
    let path = runs.join("data").join(format!("{dataset}.json"));
    let (Ok(text), Ok(info)) = (fs::read_to_string(&path), registry::lookup(dataset)) else {
        return Ok(None);
    };
    let g: Generated = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a generated-dataset record", path.display()))?;
    Ok(Some((info.normalized_score(g.return_mean), g.transitions)))
}

/// The finished runs (a `run.json`) and the unfinished ones (a `metrics.jsonl` and no
/// `run.json`) below `root`, each in the paper's row order.
fn find_runs(root: &Path) -> Result<(Vec<RunRecord>, Vec<Unfinished>)> {
    let (mut found, mut unfinished) = (vec![], vec![]);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            // The xtask sets aside a folder stopped before its first checkpoint as
            // `seed0.unfinished-<time>`; its run started afresh in `seed0`.
            let set_aside =
                || path.file_name().is_some_and(|n| n.to_string_lossy().contains(".unfinished-"));
            if path.is_dir() {
                if !set_aside() {
                    stack.push(path);
                }
            } else if path.file_name().is_some_and(|n| n == "run.json") {
                let text = fs::read_to_string(&path)?;
                let mut r: RunRecord = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a run record", path.display()))?;
                r.dir = path.parent().expect("a file has a parent").to_path_buf();
                found.push(r);
            } else if path.file_name().is_some_and(|n| n == "metrics.jsonl")
                && !dir.join("run.json").exists()
            {
                unfinished.push(read_unfinished(root, &dir)?);
            }
        }
    }
    found.sort_by(|a, b| {
        (order(&a.dataset), &a.variant, a.seed).cmp(&(order(&b.dataset), &b.variant, b.seed))
    });
    unfinished.sort_by(|a, b| {
        let key = |u: &Unfinished| (order(&u.plan.dataset), u.plan.variant.clone(), u.plan.seed);
        key(a).cmp(&key(b))
    });
    Ok((found, unfinished))
}

/// An unfinished run folder: which run it is (from the plan the xtask wrote beside it, or, for
/// folders from before the plans, from the xtask's layout `<dataset>/<variant>/seed<N>`) and
/// its in-training evaluations.
fn read_unfinished(root: &Path, dir: &Path) -> Result<Unfinished> {
    let folder = dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let plan_file = dir.with_file_name(format!("{folder}.plan.json"));
    let plan = if plan_file.is_file() {
        let text = fs::read_to_string(&plan_file)?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a run plan", plan_file.display()))?
    } else {
        let name = |p: Option<&Path>| {
            p.and_then(Path::file_name).map_or(String::new(), |n| n.to_string_lossy().into_owned())
        };
        let variant_dir = dir.parent();
        let dataset = name(variant_dir.and_then(Path::parent));
        let generated = root.join("data").join(format!("{dataset}.json")).is_file();
        RunPlan {
            data: if generated { "generated" } else { "d4rl" }.into(),
            variant: name(variant_dir),
            seed: folder.trim_start_matches("seed").parse().unwrap_or(0),
            dataset,
        }
    };
    let metrics = read_metrics(&dir.join("metrics.jsonl"))?;
    let evaluations = metrics
        .iter()
        .filter(|m| m.score_mean.is_some() || m.plain_score_mean.is_some())
        .map(|m| Evaluation {
            step: m.step,
            score_mean: m.score_mean,
            score_std: m.score_std,
            plain_score_mean: m.plain_score_mean,
            plain_score_std: m.plain_score_std,
        })
        .collect();
    Ok(Unfinished {
        plan,
        logged_steps: metrics.last().map_or(0, |m| m.step),
        evaluations,
        dir: dir.to_path_buf(),
    })
}

/// The unfinished runs' section: one row per in-training evaluation.
fn unfinished_markdown(
    unfinished: &[Unfinished],
    data_levels: &[(String, f64)],
    d4rl: bool,
) -> String {
    if unfinished.is_empty() {
        return String::new();
    }
    let suffix = if d4rl { "" } else { " (generated)" };
    let mut md = String::from(
        "\n## Unfinished runs\n\nRun folders without a run.json (still training, stopped or \
         failed; rerun the suite's command to resume them): their in-training evaluations so \
         far, of the EMA actor (OFQL, DQL) or the one-step policy (FQL), under the paper's \
         protocol and plainly. They are not in the tables above; the learning curves include \
         them.\n\n| dataset | variant | seed | logged steps | step | protocol | plain |",
    );
    md += if d4rl { "" } else { " data |" };
    md += " folder |\n|---|---|---|---|---|---|---|";
    md += if d4rl { "" } else { "---|" };
    md += "---|\n";
    for u in unfinished {
        let data = data_levels.iter().find(|(d, _)| *d == u.plan.dataset).map(|(_, s)| *s);
        let mut write_row = |step: String, protocol: String, plain: String| {
            let _ = write!(
                md,
                "| {}{suffix} | {} | {} | {} | {step} | {protocol} | {plain} |",
                short_name(&u.plan.dataset),
                u.plan.variant,
                u.plan.seed,
                u.logged_steps
            );
            if !d4rl {
                let _ = write!(md, " {} |", opt(data, 1));
            }
            let _ = writeln!(md, " `{}` |", relative(&u.dir).display());
        };
        if u.evaluations.is_empty() {
            write_row("-".into(), "-".into(), "-".into());
        }
        for e in &u.evaluations {
            write_row(
                e.step.to_string(),
                pm(e.score_mean, e.score_std),
                pm(e.plain_score_mean, e.plain_score_std),
            );
        }
    }
    md
}

/// The paper's row order; other datasets after it.
fn order(dataset: &str) -> usize {
    paper::order(dataset)
}

/// Mean and std over seeds per (dataset, variant), with polars.
fn aggregate(runs: &[RunRecord]) -> Result<Vec<Row>> {
    let score = |e: &Option<EvalPart>| e.as_ref().map(|e| e.score_mean);
    let df = df!(
        "dataset" => runs.iter().map(|r| r.dataset.clone()).collect::<Vec<_>>(),
        "variant" => runs.iter().map(|r| r.variant.clone()).collect::<Vec<_>>(),
        "seed" => runs.iter().map(|r| r.seed).collect::<Vec<_>>(),
        "steps" => runs.iter().map(|r| r.train.steps as f64).collect::<Vec<_>>(),
        "last" => runs.iter().map(|r| score(&r.eval_last)).collect::<Vec<_>>(),
        "best" => runs.iter().map(|r| score(&r.eval_best)).collect::<Vec<_>>(),
        "last_plain" => runs.iter().map(|r| score(&r.eval_last_plain)).collect::<Vec<_>>(),
        "best_plain" => runs.iter().map(|r| score(&r.eval_best_plain)).collect::<Vec<_>>(),
        "sps" => runs.iter().map(|r| r.train.steps_per_second).collect::<Vec<_>>(),
        "wall" => runs.iter().map(|r| r.wall_seconds / 3600.0).collect::<Vec<_>>(),
        "episodes" => runs.iter().map(|r| r.eval_last.as_ref().map(|e| e.episodes as f64)).collect::<Vec<_>>(),
    )?;
    // One group per (dataset, variant), in the runs' order (the paper's rows first).
    let mut rows = vec![];
    for group in df.partition_by_stable(["dataset", "variant"], true)? {
        let floats =
            |name: &str| -> Result<Float64Chunked> { Ok(group.column(name)?.f64()?.clone()) };
        let (last, best) = (floats("last")?, floats("best")?);
        let (last_plain, best_plain) = (floats("last_plain")?, floats("best_plain")?);
        rows.push(Row {
            dataset: key(&group, "dataset")?,
            variant: key(&group, "variant")?,
            seeds: group.height() as u64,
            steps: floats("steps")?.mean().unwrap_or(0.0),
            last_mean: last.mean(),
            last_std: last.std(1),
            best_mean: best.mean(),
            best_std: best.std(1),
            last_plain_mean: last_plain.mean(),
            last_plain_std: last_plain.std(1),
            best_plain_mean: best_plain.mean(),
            best_plain_std: best_plain.std(1),
            steps_per_second: floats("sps")?.mean(),
            wall_hours: floats("wall")?.mean(),
            episodes: floats("episodes")?.mean(),
            data_score: None,
            data_transitions: None,
        });
    }
    Ok(rows)
}

fn pm(mean: Option<f64>, std: Option<f64>) -> String {
    match (mean, std) {
        (Some(m), Some(s)) if s.is_finite() => format!("{m:.1} ± {s:.1}"),
        (Some(m), _) => format!("{m:.1}"),
        _ => "-".into(),
    }
}

/// D4RL's names without their `-v2`; Minari's ids whole (their version is part of the id).
fn short_name(dataset: &str) -> &str {
    if dataset.contains('/') { dataset } else { dataset.trim_end_matches("-v2") }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// The report: the table of finished runs, each run, then `unfinished` (a section of its own)
/// and the learning curves.
#[allow(clippy::too_many_arguments)]
fn markdown(
    name: &str,
    data: &str,
    rows: &[Row],
    runs: &[RunRecord],
    unfinished: &str,
    figures: &[PathBuf],
    out: &Path,
    command: Option<&str>,
) -> String {
    let d4rl = data == "d4rl";
    let mut md = format!("# Results: `{name}`\n\n");
    if let Some(c) = command {
        let _ = writeln!(md, "Made by `{c}`.\n");
    }
    if d4rl {
        md += "D4RL datasets. Normalised scores (D4RL's constants), mean ± std over seeds, for the \
               last and the best checkpoint (each re-evaluated after training with the paper's \
               protocol: the method's policy (OFQL, DQL: the EMA actor; FQL: the one-step policy), \
               50 candidates, softmax(w · min Q')). Beside them, the paper's \
               numbers (its OFQL is the mean of 3 seeds); Δ = our last − paper OFQL.\n\n";
        if rows.iter().any(|r| r.dataset.starts_with("D4RL/")) {
            md += "`D4RL/antmaze/*` and `D4RL/kitchen/*` rows are Minari's regenerations of \
                   D4RL's files on Gymnasium-Robotics (AntMaze scored as success in % in the \
                   dataset's evaluation maze, reaching the goal ending the episode); the paper's \
                   numbers beside them are for D4RL's original files: not the same data, a \
                   reference only.\n\n";
        }
    } else {
        md += "**Generated data**: datasets made by this project's own SAC behaviour policies \
               (`cargo xtask reproduce-d4rl --data generated`, `ofql dataset generate`), NOT the \
               D4RL files. The scores use D4RL's normalisation constants for the environment, but \
               the data differ from D4RL's, so the paper's numbers are deliberately not shown \
               beside them. Mean ± std over seeds, last and best checkpoint, each re-evaluated \
               after training with the paper's protocol (the method's policy: OFQL, DQL the EMA \
               actor, FQL the one-step policy; 50 candidates, softmax(w · min Q')). \"data\" is the dataset's own mean episode return, \
               normalised the same way: the behaviour policy's level.\n\n";
    }
    md += "\"plain\" columns: the same checkpoints acting with one sample per state (noise \
           temperature 1, no critic), so the difference to the protocol's columns is what the \
           critic's choice among 50 candidates adds.\n\n";
    if rows.is_empty() {
        md += "No run has finished yet.\n";
    } else {
        md += &tables(rows, runs, d4rl);
    }
    md += unfinished;
    if !figures.is_empty() {
        md += "\n## Learning curves\n\nScore of the in-training evaluations, mean over seeds \
               with a ± std band.\n\n";
        for f in figures {
            let rel = f.strip_prefix(out).unwrap_or(f);
            let _ = writeln!(md, "![{}]({})\n", rel.display(), rel.display());
        }
    }
    md
}

/// The table of finished runs (mean over seeds, averages per variant), then one row per run.
fn tables(rows: &[Row], runs: &[RunRecord], d4rl: bool) -> String {
    let suffix = if d4rl { "" } else { " (generated)" };
    let mut md = String::new();
    md +=
        "| dataset | variant | seeds | steps | episodes | last | best | last plain | best plain |";
    if d4rl {
        md += " paper OFQL | Δ | DQL | FQL | BC |";
    } else {
        md += " data |";
    }
    md += " steps/s | wall (h) |\n|---|---|---|---|---|---|---|---|---|";
    if d4rl {
        md += "---|---|---|---|---|";
    } else {
        md += "---|";
    }
    md += "---|---|\n";
    for r in rows {
        let _ = write!(
            md,
            "| {}{suffix} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            short_name(&r.dataset),
            r.variant,
            r.seeds,
            r.steps,
            opt(r.episodes, 0),
            pm(r.last_mean, r.last_std),
            pm(r.best_mean, r.best_std),
            pm(r.last_plain_mean, r.last_plain_std),
            pm(r.best_plain_mean, r.best_plain_std)
        );
        if d4rl {
            md += &paper_cells(paper::lookup(&r.dataset), r.last_mean);
        } else {
            let _ = write!(md, " {} |", opt(r.data_score, 1));
        }
        let _ = writeln!(md, " {} | {} |", opt(r.steps_per_second, 1), opt(r.wall_hours, 2));
    }
    // The MuJoCo average, per variant (in order of appearance, each once), over the paper's
    // datasets present.
    let mut variants: Vec<&str> = vec![];
    for r in rows {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    for v in variants {
        let sel: Vec<&Row> =
            rows.iter().filter(|r| r.variant == v && paper::is_mujoco(&r.dataset)).collect();
        if sel.len() < 2 {
            continue;
        }
        let mean = |f: fn(&Row) -> Option<f64>| -> Option<f64> {
            let xs: Option<Vec<f64>> = sel.iter().map(|r| f(r)).collect();
            xs.map(|xs| xs.iter().sum::<f64>() / xs.len() as f64)
        };
        let label = if sel.len() == paper::MUJOCO.len() {
            "MuJoCo average".to_string()
        } else {
            format!("average of these {} datasets", sel.len())
        };
        let last = mean(|r| r.last_mean);
        let _ = write!(
            md,
            "| **{label}**{suffix} | {v} | | | | {} | {} | {} | {} |",
            opt(last, 1),
            opt(mean(|r| r.best_mean), 1),
            opt(mean(|r| r.last_plain_mean), 1),
            opt(mean(|r| r.best_plain_mean), 1)
        );
        if d4rl {
            let n = sel.len() as f64;
            let avg = |f: fn(&PaperScores) -> f64| {
                sel.iter().filter_map(|r| paper::lookup(&r.dataset)).map(f).sum::<f64>() / n
            };
            let p = PaperScores {
                dataset: "",
                bc: avg(|p| p.bc),
                dql: avg(|p| p.dql),
                fql: avg(|p| p.fql),
                ofql: avg(|p| p.ofql),
            };
            md += &paper_cells(Some(&p), last);
        } else {
            let _ = write!(md, " {} |", opt(mean(|r| r.data_score), 1));
        }
        md += " | |\n";
    }

    md += "\n## Runs\n\n| dataset | variant | seed | steps | last | best | last plain | best plain | steps/s | wall (min) | folder |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in runs {
        let score = |e: &Option<EvalPart>| opt(e.as_ref().map(|e| e.score_mean), 1);
        let _ = writeln!(
            md,
            "| {}{suffix} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | `{}` |",
            short_name(&r.dataset),
            r.variant,
            r.seed,
            r.train.steps,
            score(&r.eval_last),
            score(&r.eval_best),
            score(&r.eval_last_plain),
            score(&r.eval_best_plain),
            r.train.steps_per_second,
            r.wall_seconds / 60.0,
            relative(&r.dir).display()
        );
    }
    md += "\nSteps/s is that of the training process (evaluations during training included); \
           wall time includes training, the in-training evaluations and the final evaluation of \
           both checkpoints. A resumed run reports the time and speed of its last sitting.\n";
    md
}

/// A partition's key column `name` (the same value on every row).
fn key(group: &DataFrame, name: &str) -> Result<String> {
    Ok(group.column(name)?.str()?.get(0).unwrap_or_default().to_string())
}

/// `path` relative to the working directory when it lies below it (tables stay portable).
fn relative(path: &Path) -> PathBuf {
    let here = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&here).map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

fn paper_cells(p: Option<&PaperScores>, last: Option<f64>) -> String {
    // The paper has no BC number for AntMaze (NaN here).
    let num = |x: f64| if x.is_nan() { "-".to_string() } else { format!("{x:.1}") };
    match p {
        Some(p) => format!(
            " {} | {} | {} | {} | {} |",
            num(p.ofql),
            last.map_or("-".into(), |l| format!("{:+.1}", l - p.ofql)),
            num(p.dql),
            num(p.fql),
            num(p.bc)
        ),
        None => " - | - | - | - | - |".into(),
    }
}

fn to_csv(rows: &[Row], d4rl: bool) -> String {
    let mut csv = String::from(
        "dataset,variant,seeds,steps,episodes,last_mean,last_std,best_mean,best_std,last_plain_mean,last_plain_std,best_plain_mean,best_plain_std,steps_per_second,wall_hours",
    );
    csv += if d4rl { ",paper_ofql,paper_dql,paper_fql,paper_bc" } else { ",data_score" };
    csv += "\n";
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for r in rows {
        let _ = write!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.dataset,
            r.variant,
            r.seeds,
            r.steps,
            o(r.episodes),
            o(r.last_mean),
            o(r.last_std),
            o(r.best_mean),
            o(r.best_std),
            o(r.last_plain_mean),
            o(r.last_plain_std),
            o(r.best_plain_mean),
            o(r.best_plain_std),
            o(r.steps_per_second),
            o(r.wall_hours)
        );
        if d4rl {
            match paper::lookup(&r.dataset) {
                Some(p) => {
                    let n = |x: f64| if x.is_nan() { String::new() } else { x.to_string() };
                    let _ = write!(csv, ",{},{},{},{}", n(p.ofql), n(p.dql), n(p.fql), n(p.bc));
                }
                None => csv += ",,,,",
            }
        } else {
            csv += &format!(",{}", o(r.data_score));
        }
        csv += "\n";
    }
    csv
}

/// A run whose in-training scores go into the learning curves.
struct CurveSource<'a> {
    dataset: &'a str,
    variant: &'a str,
    dir: &'a Path,
}

/// One PNG per dataset: the in-training scores, mean over seeds with a ± std band per variant.
fn curves(
    runs: &[CurveSource],
    data_levels: &[(String, f64)],
    out: &Path,
    name: &str,
) -> Result<Vec<PathBuf>> {
    let (mut dataset, mut variant, mut step, mut score) = (vec![], vec![], vec![], vec![]);
    for r in runs {
        let path = r.dir.join("metrics.jsonl");
        for row in read_metrics(&path)? {
            // Each protocol its own line, labelled with the variant.
            let protocol = format!("{} (Q-softmax)", r.variant);
            let plain = format!("{} (plain)", r.variant);
            for (label, s) in [(&protocol, row.score_mean), (&plain, row.plain_score_mean)] {
                if let Some(s) = s {
                    dataset.push(r.dataset.to_string());
                    variant.push(label.clone());
                    step.push(row.step);
                    score.push(s);
                }
            }
        }
    }
    if score.is_empty() {
        return Ok(vec![]);
    }
    let df = df!("dataset" => dataset, "variant" => variant, "step" => step, "score" => score)?;
    // Mean and std over seeds at each evaluation step, per (dataset, variant).
    let mut points = vec![];
    for group in df.partition_by_stable(["dataset", "variant", "step"], true)? {
        let step = group.column("step")?.u64()?.get(0).unwrap_or(0) as f64;
        let score = group.column("score")?.f64()?.clone();
        let (mean, std) = (score.mean().unwrap_or(f64::NAN), score.std(1));
        points.push((key(&group, "dataset")?, key(&group, "variant")?, step, mean, std));
    }
    points.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)).then(a.2.total_cmp(&b.2)));

    let font = TextRenderer::from_env()?;
    let mut files = vec![];
    for per_dataset in points.chunk_by(|a, b| a.0 == b.0) {
        let d = &per_dataset[0].0;
        let mut series = vec![];
        for per_variant in per_dataset.chunk_by(|a, b| a.1 == b.1) {
            let points = per_variant.iter().map(|p| (p.2, p.3)).collect();
            let band = per_variant
                .iter()
                .filter_map(|p| p.4.filter(|v| v.is_finite()).map(|sd| (p.2, p.3 - sd, p.3 + sd)))
                .collect();
            series.push(Series { label: per_variant[0].1.clone(), points, color: None, band });
        }
        // The data's own level (generated data: the behaviour policy's normalised return).
        let references = data_levels
            .iter()
            .filter(|(dataset, _)| dataset == d)
            .map(|(_, y)| Reference { label: format!("data ({y:.1})"), y: *y, color: (0, 0, 0) })
            .collect();
        let chart = LineChart {
            title: format!("{d} ({name})"),
            x_label: "training step".into(),
            y_label: "normalised score (D4RL constants)".into(),
            series,
            references,
            size: (800, 450),
            log_y: false,
        };
        let file = out.join(name).join(format!("{d}.png"));
        chart.save(&file, &font)?;
        files.push(file);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(dataset: &str, variant: &str, last: f64) -> Row {
        Row {
            dataset: dataset.into(),
            variant: variant.into(),
            seeds: 1,
            steps: 1000.0,
            last_mean: Some(last),
            last_std: None,
            best_mean: Some(last),
            best_std: None,
            last_plain_mean: None,
            last_plain_std: None,
            best_plain_mean: None,
            best_plain_std: None,
            steps_per_second: None,
            wall_hours: None,
            episodes: Some(5.0),
            data_score: Some(10.0),
            data_transitions: None,
        }
    }

    /// A sweep over two datasets gives one average row per variant (not one per dataset).
    #[test]
    fn one_average_row_per_variant() {
        let rows = [
            row("halfcheetah-medium-v2", "actor.eta=0.01", 20.0),
            row("halfcheetah-medium-v2", "actor.eta=0.1", 10.0),
            row("walker2d-medium-v2", "actor.eta=0.01", 30.0),
            row("walker2d-medium-v2", "actor.eta=0.1", 40.0),
        ];
        let md = markdown("t", "generated", &rows, &[], "", &[], Path::new("."), None);
        let averages: Vec<&str> = md.lines().filter(|l| l.contains("average of these")).collect();
        assert_eq!(averages.len(), 2, "{md}");
        assert!(averages[0].contains("actor.eta=0.01") && averages[0].contains("| 25.0 |"));
        assert!(averages[1].contains("actor.eta=0.1") && averages[1].contains("| 25.0 |"));
    }
}
