//! PNG figures: grids of scatter plots and line charts, with text.
//!
//! plotters 0.3.7 draws text only through system fonts (font-kit), which are not enabled; text
//! here is rasterised with ab_glyph from the TTF named by `OFQL_FONT` (at run time, else the
//! path known at build time) and blended into the bitmap pixel by pixel.

mod canvas;
mod line;
mod scatter;
mod text;

pub use line::{LineChart, Reference, Series};
pub use scatter::{Panel, ScatterGrid};
pub use text::TextRenderer;

/// A colour as (r, g, b).
pub type Rgb = (u8, u8, u8);

/// Distinct colours for series (Tableau 10).
pub const PALETTE: [Rgb; 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];
