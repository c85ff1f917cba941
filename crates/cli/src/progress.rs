//! Progress on stderr for long commands: a bar on a terminal; without one (a log file, CI, a
//! cluster job) a plain line every `LOG_SECONDS`, and every message as its own line, so a log
//! tells what happened.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between two plain progress lines.
const LOG_SECONDS: u64 = 60;

pub struct Progress {
    pub bar: ProgressBar,
    /// Plain lines instead of the bar.
    plain: bool,
    started: Instant,
    last_line: Option<Instant>,
    first_step: Option<u64>,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let plain = !std::io::stderr().is_terminal();
        let bar = if plain { ProgressBar::hidden() } else { ProgressBar::new(total) };
        bar.set_length(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Progress { bar, plain, started: Instant::now(), last_line: None, first_step: None }
    }

    pub fn println(&self, text: &str) {
        if self.plain { eprintln!("{text}") } else { self.bar.println(text) }
    }

    /// The bar at `step`; without a terminal, a line `step N/T (p %), R steps/s, <detail>,
    /// <time> left` once a minute and at the last step.
    pub fn step(&mut self, step: u64, total: u64, detail: impl FnOnce() -> String) {
        self.first_step.get_or_insert(step.saturating_sub(1));
        self.bar.set_position(step);
        let due = self.last_line.is_none_or(|t| t.elapsed().as_secs() >= LOG_SECONDS);
        if self.plain && (due || step == total) {
            let done = step - self.first_step.unwrap_or(step);
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let left = if rate > 0.0 { total.saturating_sub(step) as f64 / rate } else { f64::NAN };
            eprintln!(
                "step {step}/{total} ({:.1} %), {rate:.1} steps/s, {}, {} left",
                100.0 * step as f64 / total.max(1) as f64,
                detail(),
                duration(left)
            );
            self.last_line = Some(Instant::now());
        }
    }
}

/// `1h 27m`, `4m 10s`, or `?` when unknown.
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".into();
    }
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m {:02}s", s / 60, s % 60)
    }
}
