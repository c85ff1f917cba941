//! Learning curves from `metrics.jsonl`: losses, Q and evaluation score, as PNGs next to it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ofql_plot::{LineChart, Series, TextRenderer};

use ofql_algo::train::MetricsRow;

/// Write `curves_loss.png`, `curves_q.png` and (when the run evaluated) `curves_score.png`
/// into `dir`; returns the files written.
pub fn write_curves(rows: &[MetricsRow], dir: &Path, title: &str) -> Result<Vec<PathBuf>> {
    let font = TextRenderer::from_env()?;
    let series = |label: &str, f: &dyn Fn(&MetricsRow) -> Option<f64>| Series {
        label: label.to_string(),
        points: rows.iter().filter_map(|r| f(r).map(|y| (r.step as f64, y))).collect(),
        color: None,
        band: vec![],
    };
    let chart = |name: &str, y_label: &str, log_y: bool, series: Vec<Series>| LineChart {
        title: format!("{title}: {name}"),
        x_label: "gradient step".into(),
        y_label: y_label.into(),
        series,
        references: vec![],
        size: (900, 540),
        log_y,
    };
    let mut written = Vec::new();
    let mut save = |file: &str, c: LineChart| -> Result<()> {
        let path = dir.join(file);
        c.save(&path, &font)?;
        written.push(path);
        Ok(())
    };
    save(
        "curves_loss.png",
        chart(
            "losses",
            "loss",
            true,
            drawn(vec![
                series("critic", &|r| r.metrics.get("critic")),
                // The method's behaviour-cloning loss (only one of them is in a run).
                series("MeanFlow (L_FBC)", &|r| r.metrics.get("flow")),
                series("BC (DQL: noise prediction, FQL: flow matching)", &|r| r.metrics.get("bc")),
            ]),
        ),
    )?;
    save(
        "curves_q.png",
        chart(
            "Q",
            "mean Q(s, a)",
            false,
            drawn(vec![
                series("Q1 on data", &|r| r.metrics.get("q_mean")),
                series("Q1 on the policy's actions", &|r| r.metrics.get("q_policy")),
            ]),
        ),
    )?;
    if rows.iter().any(|r| r.score_mean.is_some()) {
        save(
            "curves_score.png",
            chart(
                "score",
                "D4RL normalised score",
                false,
                drawn(vec![
                    series("protocol (Q-softmax)", &|r| r.score_mean),
                    series("plain (one sample)", &|r| r.plain_score_mean),
                ]),
            ),
        )?;
    }
    Ok(written)
}

/// The series that have points: a run logs only its own method's metrics.
fn drawn(series: Vec<Series>) -> Vec<Series> {
    series.into_iter().filter(|s| !s.points.is_empty()).collect()
}
