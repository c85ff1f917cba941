//! A grid of 2-D scatter plots with a title, column headings, row labels and captions.

use std::path::Path;

use anyhow::{Result, bail};

use crate::canvas::{Align, Canvas};
use crate::text::TextRenderer;
use crate::{PALETTE, Rgb};

/// One scatter plot: points inside the square [range.0, range.1]^2 (others are not drawn).
pub struct Panel {
    pub points: Vec<[f64; 2]>,
    pub range: (f64, f64),
    /// A line under the panel, e.g. its metrics.
    pub caption: String,
    pub color: Rgb,
}

impl Panel {
    pub fn new(points: Vec<[f64; 2]>, range: (f64, f64)) -> Panel {
        Panel { points, range, caption: String::new(), color: PALETTE[0] }
    }
}

pub struct ScatterGrid {
    pub title: String,
    pub column_labels: Vec<String>,
    pub row_labels: Vec<String>,
    /// rows x columns.
    pub panels: Vec<Vec<Panel>>,
    /// Side of one panel in pixels.
    pub cell: u32,
}

const PAD: u32 = 8;
const TITLE_H: u32 = 34;
const HEAD_H: u32 = 22;
const CAPTION_H: u32 = 20;
const LABEL_W: u32 = 120;

impl ScatterGrid {
    pub fn save(&self, path: &Path, font: &TextRenderer) -> Result<()> {
        let rows = self.panels.len();
        let cols = self.column_labels.len();
        if rows != self.row_labels.len() || self.panels.iter().any(|r| r.len() != cols) {
            bail!(
                "scatter grid: {rows} rows of panels for {} row labels and {cols} columns",
                self.row_labels.len()
            );
        }
        let cell_w = self.cell + PAD;
        let cell_h = HEAD_H + self.cell + CAPTION_H + PAD;
        let size = (LABEL_W + cols as u32 * cell_w + PAD, TITLE_H + rows as u32 * cell_h + PAD);
        let canvas = Canvas::new(path, size, font)?;
        let black = (0, 0, 0);
        canvas.text(&self.title, size.0 as f32 / 2.0, 8.0, 18.0, Align::Centre, black)?;
        for (i, row) in self.panels.iter().enumerate() {
            let y0 = (TITLE_H + i as u32 * cell_h) as i32;
            let mid = y0 as f32 + (HEAD_H + self.cell / 2) as f32 - 8.0;
            canvas.text(
                &self.row_labels[i],
                LABEL_W as f32 - 10.0,
                mid,
                15.0,
                Align::Right,
                black,
            )?;
            for (j, panel) in row.iter().enumerate() {
                let x0 = (LABEL_W + j as u32 * cell_w) as i32;
                let centre = x0 as f32 + self.cell as f32 / 2.0;
                canvas.text(
                    &self.column_labels[j],
                    centre,
                    y0 as f32 + 3.0,
                    13.0,
                    Align::Centre,
                    black,
                )?;
                let top = y0 + HEAD_H as i32;
                self.draw_panel(&canvas, panel, x0, top)?;
                let cap_y = (top + self.cell as i32 + 3) as f32;
                canvas.text(&panel.caption, centre, cap_y, 12.0, Align::Centre, (60, 60, 60))?;
            }
        }
        canvas.finish()
    }

    fn draw_panel(&self, canvas: &Canvas, panel: &Panel, x0: i32, y0: i32) -> Result<()> {
        let side = self.cell as i32;
        canvas.rect(x0, y0, x0 + side, y0 + side, (250, 250, 250), true)?;
        canvas.rect(x0, y0, x0 + side, y0 + side, (150, 150, 150), false)?;
        let (lo, hi) = panel.range;
        let scale = (side - 2) as f64 / (hi - lo);
        // Many thousands of points: translucent, so density shows.
        for p in &panel.points {
            if p.iter().all(|c| c.is_finite() && *c >= lo && *c < hi) {
                let x = x0 + 1 + ((p[0] - lo) * scale) as i32;
                let y = y0 + side - 2 - ((p[1] - lo) * scale) as i32;
                canvas.dot(x, y, panel.color, 0.35)?;
            }
        }
        Ok(())
    }
}
