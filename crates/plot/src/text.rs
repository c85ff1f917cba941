//! Text rasterised with ab_glyph.

use std::path::PathBuf;

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use anyhow::{Context, Result};

/// A loaded font that draws strings through a pixel callback.
pub struct TextRenderer {
    font: FontVec,
}

impl TextRenderer {
    /// The font at `OFQL_FONT`, else the one `cargo xtask setup` provided at build time.
    pub fn from_env() -> Result<TextRenderer> {
        let path = std::env::var_os("OFQL_FONT")
            .map(PathBuf::from)
            .or_else(|| option_env!("OFQL_FONT").map(PathBuf::from))
            .context(
                "no font: set OFQL_FONT to a .ttf file (cargo xtask setup provides DejaVuSans.ttf)",
            )?;
        TextRenderer::from_file(&path)
    }

    pub fn from_file(path: &std::path::Path) -> Result<TextRenderer> {
        let bytes = std::fs::read(path).with_context(|| {
            format!("reading font {} (set OFQL_FONT to a .ttf file)", path.display())
        })?;
        let font = FontVec::try_from_vec(bytes)
            .with_context(|| format!("{} is not a TrueType/OpenType font", path.display()))?;
        Ok(TextRenderer { font })
    }

    /// Width in pixels of `text` at height `size`.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        let scaled = self.font.as_scaled(PxScale::from(size));
        let mut prev = None;
        let mut w = 0.0;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                w += scaled.kern(p, id);
            }
            w += scaled.h_advance(id);
            prev = Some(id);
        }
        w
    }

    /// Draw `text` with its top-left corner at (x, y); `pixel(x, y, coverage)` receives each
    /// covered pixel with coverage in (0, 1].
    pub fn draw(
        &self,
        text: &str,
        x: f32,
        y: f32,
        size: f32,
        mut pixel: impl FnMut(i32, i32, f32),
    ) {
        let scaled = self.font.as_scaled(PxScale::from(size));
        let baseline = y + scaled.ascent();
        let mut caret = x;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(size, point(caret, baseline));
            caret += scaled.h_advance(id);
            prev = Some(id);
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    if cov > 0.0 {
                        pixel(b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32, cov.min(1.0));
                    }
                });
            }
        }
    }
}
