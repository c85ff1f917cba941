//! A line chart with axes, ticks, labels and a legend (e.g. learning curves).

use std::path::Path;

use anyhow::{Result, bail};

use crate::canvas::{Align, Canvas};
use crate::text::TextRenderer;
use crate::{PALETTE, Rgb};

pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: Option<Rgb>,
    /// A shaded band (x, low, high) around the line, e.g. mean +- std over seeds; may be empty.
    pub band: Vec<(f64, f64, f64)>,
}

/// A labelled horizontal dashed line across the plot, e.g. the level of the data.
pub struct Reference {
    pub label: String,
    pub y: f64,
    pub color: Rgb,
}

pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Horizontal reference lines, listed after the series in the legend.
    pub references: Vec<Reference>,
    pub size: (u32, u32),
    /// Plot y on a log10 axis (all values must be > 0).
    pub log_y: bool,
}

/// About `n` round tick values covering [lo, hi].
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn fmt_tick(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        // As many digits as the tick has (150000 is 1.5e5, not 2e5), up to four.
        let s = format!("{v:.3e}");
        let (mantissa, exponent) = s.split_once('e').expect("an exponent");
        format!("{}e{exponent}", mantissa.trim_end_matches('0').trim_end_matches('.'))
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl LineChart {
    pub fn save(&self, path: &Path, font: &TextRenderer) -> Result<()> {
        let ty = |y: f64| if self.log_y { y.log10() } else { y };
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| {
                let band = s.band.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
                s.points.iter().copied().chain(band)
            })
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
            .map(|(x, y)| (x, ty(y)))
            .collect();
        // References widen the y range (not the x range: they span whatever the data do).
        let refs: Vec<(&Reference, f64)> = self
            .references
            .iter()
            .filter(|r| r.y.is_finite() && (!self.log_y || r.y > 0.0))
            .map(|r| (r, ty(r.y)))
            .collect();
        if pts.is_empty() {
            bail!("line chart `{}` has no finite points", self.title);
        }
        let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
            pts.iter().map(pick).fold(init, f)
        };
        let (mut x0, mut x1) =
            (fold(f64::min, f64::INFINITY, |p| p.0), fold(f64::max, f64::NEG_INFINITY, |p| p.0));
        let (mut y0, mut y1) =
            (fold(f64::min, f64::INFINITY, |p| p.1), fold(f64::max, f64::NEG_INFINITY, |p| p.1));
        for &(_, y) in &refs {
            (y0, y1) = (y0.min(y), y1.max(y));
        }
        if x1 <= x0 {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        let margin = if y1 > y0 { 0.05 * (y1 - y0) } else { 0.5 };
        (y0, y1) = (y0 - margin, y1 + margin);

        let (w, h) = (self.size.0 as i32, self.size.1 as i32);
        // The legend column is as wide as its longest label.
        let labels = self.series.iter().map(|s| &s.label).chain(refs.iter().map(|r| &r.0.label));
        let legend_w = labels.map(|l| font.width(l, 13.0) as i32).max().unwrap_or(0) + 60;
        let (left, right, top, bottom) = (80, w - 10 - legend_w, 40, h - 55);
        let canvas = Canvas::new(path, self.size, font)?;
        let black = (0, 0, 0);
        let px = |x: f64| left + ((x - x0) / (x1 - x0) * (right - left) as f64) as i32;
        let py = |y: f64| bottom - ((y - y0) / (y1 - y0) * (bottom - top) as f64) as i32;

        canvas.text(&self.title, w as f32 / 2.0, 10.0, 17.0, Align::Centre, black)?;
        canvas.rect(left, top, right, bottom, (120, 120, 120), false)?;
        for x in ticks(x0, x1, 6) {
            canvas.line(vec![(px(x), bottom), (px(x), bottom + 5)], black, 1)?;
            canvas.text(
                &fmt_tick(x),
                px(x) as f32,
                bottom as f32 + 8.0,
                12.0,
                Align::Centre,
                black,
            )?;
        }
        for y in ticks(y0, y1, 6) {
            canvas.line(vec![(left - 5, py(y)), (left, py(y))], black, 1)?;
            canvas.line(vec![(left, py(y)), (right, py(y))], (230, 230, 230), 1)?;
            let label = if self.log_y { fmt_tick(10f64.powf(y)) } else { fmt_tick(y) };
            canvas.text(
                &label,
                left as f32 - 8.0,
                py(y) as f32 - 7.0,
                12.0,
                Align::Right,
                black,
            )?;
        }
        canvas.text(
            &self.x_label,
            (left + right) as f32 / 2.0,
            bottom as f32 + 28.0,
            14.0,
            Align::Centre,
            black,
        )?;
        let y_label =
            if self.log_y { format!("{} (log)", self.y_label) } else { self.y_label.clone() };
        canvas.text(&y_label, 8.0, top as f32 - 26.0, 14.0, Align::Left, black)?;

        for (i, s) in self.series.iter().enumerate() {
            let color = s.color.unwrap_or(PALETTE[i % PALETTE.len()]);
            let ok = |y: f64| y.is_finite() && (!self.log_y || y > 0.0);
            let band: Vec<_> =
                s.band.iter().filter(|(x, lo, hi)| x.is_finite() && ok(*lo) && ok(*hi)).collect();
            if band.len() >= 2 {
                let upper = band.iter().map(|&&(x, _, hi)| (px(x), py(ty(hi))));
                let lower = band.iter().rev().map(|&&(x, lo, _)| (px(x), py(ty(lo))));
                canvas.polygon(upper.chain(lower).collect(), color, 0.2)?;
            }
            let line: Vec<(i32, i32)> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
                .map(|&(x, y)| (px(x), py(ty(y))))
                .collect();
            canvas.line(line, color, 2)?;
            let ly = top + 6 + 20 * i as i32;
            canvas.line(vec![(right + 15, ly + 7), (right + 40, ly + 7)], color, 3)?;
            canvas.text(&s.label, right as f32 + 46.0, ly as f32, 13.0, Align::Left, black)?;
        }
        for (i, (r, y)) in refs.iter().enumerate() {
            dashed(&canvas, (left, right), py(*y), r.color)?;
            let ly = top + 6 + 20 * (self.series.len() + i) as i32;
            dashed(&canvas, (right + 15, right + 40), ly + 7, r.color)?;
            canvas.text(&r.label, right as f32 + 46.0, ly as f32, 13.0, Align::Left, black)?;
        }
        canvas.finish()
    }
}

/// A horizontal dashed line from x0 to x1 at height y.
fn dashed(canvas: &Canvas, (x0, x1): (i32, i32), y: i32, color: Rgb) -> Result<()> {
    let (dash, gap) = (8, 5);
    let mut x = x0;
    while x < x1 {
        canvas.line(vec![(x, y), ((x + dash).min(x1), y)], color, 2)?;
        x += dash + gap;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        assert_eq!(ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        let t = ticks(-3.7, 12.2, 6);
        assert!(t.iter().all(|v| (-3.7..=12.2).contains(v)) && t.len() >= 3, "{t:?}");
        assert_eq!(fmt_tick(0.5), "0.5");
        assert_eq!(fmt_tick(2000.0), "2000");
        assert_eq!(fmt_tick(1e6), "1e6");
        assert_eq!(fmt_tick(1.5e5), "1.5e5");
        assert_eq!(fmt_tick(-2.5e-4), "-2.5e-4");
    }
}
