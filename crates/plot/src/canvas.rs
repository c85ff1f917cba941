//! A bitmap being drawn: plotters for shapes, ab_glyph for text, saved as PNG on `finish`.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::Rgb;
use crate::text::TextRenderer;

pub(crate) struct Canvas<'a> {
    pub area: DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    text: &'a TextRenderer,
}

/// plotters' errors are generic over the backend; flatten them to messages.
pub(crate) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

pub(crate) fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

#[derive(Clone, Copy)]
pub(crate) enum Align {
    Left,
    Centre,
    Right,
}

impl<'a> Canvas<'a> {
    pub fn new(path: &'a Path, size: (u32, u32), text: &'a TextRenderer) -> Result<Canvas<'a>> {
        let area = BitMapBackend::new(path, size).into_drawing_area();
        area.fill(&WHITE).map_err(err)?;
        Ok(Canvas { area, text })
    }

    pub fn text(&self, s: &str, x: f32, y: f32, size: f32, align: Align, color: Rgb) -> Result<()> {
        let w = self.text.width(s, size);
        let x = match align {
            Align::Left => x,
            Align::Centre => x - w / 2.0,
            Align::Right => x - w,
        };
        let mut result = Ok(());
        self.text.draw(s, x, y, size, |px, py, cov| {
            let c = RGBAColor(color.0, color.1, color.2, cov as f64);
            if let Err(e) = self.area.draw_pixel((px, py), &c) {
                result = Err(err(e));
            }
        });
        result
    }

    pub fn rect(&self, x0: i32, y0: i32, x1: i32, y1: i32, color: Rgb, filled: bool) -> Result<()> {
        let style = if filled { rgb(color).filled() } else { rgb(color).stroke_width(1) };
        self.area.draw(&Rectangle::new([(x0, y0), (x1, y1)], style)).map_err(err)
    }

    pub fn line(&self, points: Vec<(i32, i32)>, color: Rgb, width: u32) -> Result<()> {
        self.area.draw(&PathElement::new(points, rgb(color).stroke_width(width))).map_err(err)
    }

    /// A filled polygon with opacity `alpha`.
    pub fn polygon(&self, points: Vec<(i32, i32)>, color: Rgb, alpha: f64) -> Result<()> {
        let c = RGBAColor(color.0, color.1, color.2, alpha);
        self.area.draw(&Polygon::new(points, c.filled())).map_err(err)
    }

    pub fn dot(&self, x: i32, y: i32, color: Rgb, alpha: f64) -> Result<()> {
        let c = RGBAColor(color.0, color.1, color.2, alpha);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            self.area.draw_pixel((x + dx, y + dy), &c).map_err(err)?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        self.area.present().map_err(err)
    }
}
