//! `ofql toy`: the 2-D toy experiment of the paper's Figure 4 (spec section 9).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ofql_flow::toy::{ToyData, ToyExperiment, ToyReport, ToyTrainConfig, run_experiment};
use ofql_plot::{LineChart, PALETTE, Panel, ScatterGrid, Series, TextRenderer};
use serde::Serialize;

use crate::output::Output;

#[derive(Args)]
pub struct ToyArgs {
    /// Directory for toy.png (scatter grid) and toy_loss.png (training curves).
    #[arg(long)]
    pub out: PathBuf,
    /// Comma-separated: checkerboard, crescent, spiral.
    #[arg(long, value_delimiter = ',', default_value = "checkerboard,crescent,spiral")]
    pub datasets: Vec<String>,
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    #[arg(long, default_value_t = 40)]
    pub batches_per_epoch: usize,
    #[arg(long, default_value_t = 2048)]
    pub batch: usize,
    /// Hidden width of the 3-layer velocity MLP.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Adam learning rate (constant).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// P(t = r) of the MeanFlow models.
    #[arg(long, default_value_t = 0.5)]
    pub flow_ratio: f64,
    /// Time scale k of the extra MeanFlow row (the main rows use k = 1).
    #[arg(long, default_value_t = 1000.0)]
    pub large_time_scale: f64,
    /// Samples per sampler (and held-out points).
    #[arg(long, default_value_t = 8192)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Models trained at once (default: the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
}

#[derive(Serialize)]
struct Reference {
    dataset: ToyData,
    sliced_wasserstein_data_vs_data: f64,
}

#[derive(Serialize)]
struct Report<'a> {
    experiment: &'a ToyExperiment,
    rows: &'a [ofql_flow::toy::ToyRow],
    reference: Vec<Reference>,
    /// Per model: its label and mean training loss per epoch.
    loss_curves: &'a [(String, Vec<f64>)],
    figure: String,
    loss_figure: String,
    seconds: f64,
}

pub fn run(args: ToyArgs, out: &Output) -> Result<()> {
    let datasets = args
        .datasets
        .iter()
        .map(|name| {
            ToyData::parse(name).with_context(|| {
                format!("unknown toy data set `{name}`: use checkerboard, crescent or spiral")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if args.epochs == 0 || args.batches_per_epoch == 0 || args.batch == 0 || args.samples < 2 {
        bail!("--epochs, --batches-per-epoch and --batch must be > 0 and --samples >= 2");
    }
    if !(0.0..=1.0).contains(&args.flow_ratio) {
        bail!("--flow-ratio {} must be in [0, 1]", args.flow_ratio);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    let font = TextRenderer::from_env()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let exp = ToyExperiment {
        datasets,
        train: ToyTrainConfig {
            epochs: args.epochs,
            batches_per_epoch: args.batches_per_epoch,
            batch: args.batch,
            hidden: args.hidden,
            lr: args.lr,
            ..ToyTrainConfig::default()
        },
        flow_ratio: args.flow_ratio,
        large_time_scale: args.large_time_scale,
        samples: args.samples,
        seed: args.seed,
        workers: args.workers.unwrap_or(cores).max(1),
        ..ToyExperiment::default()
    };
    if exp.workers > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Parallel models, one core each: matrix products must not also spread over cores.
        // SAFETY: no other thread exists yet in this process.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>28} {bar:30} {pos}/{len} {elapsed}")
        .expect("valid template");
    let jobs: Vec<ProgressBar> = exp
        .jobs()
        .iter()
        .map(|job| {
            let total = (exp.train.epochs * exp.train.batches_per_epoch) as u64;
            let bar = bars.add(ProgressBar::new(total).with_style(style.clone()));
            bar.set_prefix(job.label());
            bar
        })
        .collect();
    let start = Instant::now();
    let labels: Vec<String> = exp.jobs().iter().map(|j| j.label()).collect();
    let report = run_experiment(&exp, |job, step, total| {
        jobs[job].set_position(step as u64);
        if step == total {
            // A line per finished model also when stderr is not a terminal (bars are hidden).
            let secs = start.elapsed().as_secs_f64();
            bars.suspend(|| eprintln!("trained {} ({secs:.0} s since start)", labels[job]));
        }
    })?;
    jobs.iter().for_each(ProgressBar::finish);
    let seconds = start.elapsed().as_secs_f64();

    let figure = args.out.join("toy.png");
    let loss_figure = args.out.join("toy_loss.png");
    scatter_grid(&report, &exp).save(&figure, &font)?;
    loss_chart(&report).save(&loss_figure, &font)?;

    let value = Report {
        experiment: &exp,
        rows: &report.rows,
        reference: report
            .reference
            .iter()
            .map(|&(dataset, sw)| Reference { dataset, sliced_wasserstein_data_vs_data: sw })
            .collect(),
        loss_curves: &report.loss_curves,
        figure: figure.display().to_string(),
        loss_figure: loss_figure.display().to_string(),
        seconds,
    };
    out.report(&value, || text_table(&report, &value));
    Ok(())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn text_table(report: &ToyReport, value: &Report) -> String {
    let mut s = String::from(
        "| data | velocity | k | sampler | steps | sliced W1 | on squares | final loss |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in &report.rows {
        let sampler = match r.sampler {
            ofql_flow::toy::Sampler::AverageVelocity { .. } => "average",
            ofql_flow::toy::Sampler::Euler { .. } => "Euler",
        };
        let sw = match r.sliced_wasserstein {
            Some(v) => format!("{v:.4}"),
            None => format!("n/a ({} non-finite)", r.non_finite_samples),
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.4} |\n",
            r.dataset.name(),
            r.velocity,
            r.time_scale,
            sampler,
            r.steps,
            sw,
            fmt_opt(r.on_squares, 3),
            r.final_loss
        );
    }
    for (d, sw) in &report.reference {
        s += &format!(
            "| {} | data vs data | | | | {sw:.4} | {} | |\n",
            d.name(),
            if *d == ToyData::Checkerboard { "1.000" } else { "-" }
        );
    }
    s +=
        &format!("\nfigures: {} {}\ntime: {:.0} s", value.figure, value.loss_figure, value.seconds);
    s
}

fn scatter_grid(report: &ToyReport, exp: &ToyExperiment) -> ScatterGrid {
    let column_labels = report
        .panels
        .first()
        .map(|(_, p)| p.iter().map(|p| p.label.clone()).collect())
        .unwrap_or_default();
    let panels = report
        .panels
        .iter()
        .map(|(dataset, panels)| {
            panels
                .iter()
                .map(|p| {
                    let mut panel = Panel::new(p.points.clone(), dataset.plot_range());
                    panel.caption = match p.row.map(|i| &report.rows[i]) {
                        None => "reference".into(),
                        Some(r) => {
                            let sw = r
                                .sliced_wasserstein
                                .map_or("diverged".into(), |v| format!("SW {v:.3}"));
                            match r.on_squares {
                                Some(f) => format!("{sw}, {:.0}% on", 100.0 * f),
                                None => sw,
                            }
                        }
                    };
                    panel.color = if p.row.is_none() { PALETTE[7] } else { PALETTE[0] };
                    panel
                })
                .collect()
        })
        .collect();
    ScatterGrid {
        title: format!(
            "One-step average velocity u vs Euler-sampled instantaneous velocity v ({} epochs x {} x {})",
            exp.train.epochs, exp.train.batches_per_epoch, exp.train.batch
        ),
        column_labels,
        row_labels: report.panels.iter().map(|(d, _)| d.name().to_string()).collect(),
        panels,
        cell: 200,
    }
}

fn loss_chart(report: &ToyReport) -> LineChart {
    LineChart {
        title: "Toy training loss (mean per epoch)".into(),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        series: report
            .loss_curves
            .iter()
            .map(|(label, curve)| Series {
                label: label.clone(),
                points: curve.iter().enumerate().map(|(i, l)| ((i + 1) as f64, *l)).collect(),
                color: None,
                band: vec![],
            })
            .collect(),
        references: vec![],
        size: (1000, 560),
        log_y: true,
    }
}
