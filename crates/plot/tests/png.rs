//! Figures are written as PNGs of the expected size, and text really is rasterised.

use ofql_plot::{LineChart, Panel, ScatterGrid, Series, TextRenderer};

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn text_covers_pixels_inside_its_measured_box() {
    let font = TextRenderer::from_env().unwrap();
    let w = font.width("Checkerboard", 20.0);
    assert!(w > 80.0 && w < 200.0, "{w}");
    let mut pixels = Vec::new();
    font.draw("Checkerboard", 10.0, 5.0, 20.0, |x, y, c| pixels.push((x, y, c)));
    assert!(pixels.len() > 200);
    assert!(pixels.iter().all(|&(x, y, c)| x >= 9
        && (x as f32) <= 11.0 + w
        && (3..30).contains(&y)
        && c > 0.0
        && c <= 1.0));
    let mut none = 0;
    font.draw("   ", 0.0, 0.0, 20.0, |_, _, _| none += 1);
    assert_eq!(none, 0);
}

#[test]
fn missing_font_is_a_clear_error() {
    let err = TextRenderer::from_file(std::path::Path::new("/no/such/font.ttf")).err().unwrap();
    assert!(format!("{err:#}").contains("OFQL_FONT"), "{err:#}");
}

#[test]
fn scatter_grid_and_line_chart_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let font = TextRenderer::from_env().unwrap();
    let points: Vec<[f64; 2]> =
        (0..500).map(|i| [(i as f64 * 0.1).sin(), (i as f64 * 0.13).cos()]).collect();
    let panel = |caption: &str| {
        let mut p = Panel::new(points.clone(), (-1.5, 1.5));
        p.caption = caption.to_string();
        p
    };
    let grid = ScatterGrid {
        title: "test grid".into(),
        column_labels: vec!["a".into(), "b".into()],
        row_labels: vec!["one".into()],
        panels: vec![vec![panel("SW 0.1"), panel("SW 0.2")]],
        cell: 100,
    };
    let path = dir.path().join("grid.png");
    grid.save(&path, &font).unwrap();
    // LABEL_W + 2 (cell + PAD) + PAD, TITLE_H + (HEAD_H + cell + CAPTION_H + PAD) + PAD.
    assert_eq!(png_size(&path), (120 + 2 * 108 + 8, 34 + 150 + 8));

    let bad = ScatterGrid { row_labels: vec![], ..grid };
    assert!(bad.save(&dir.path().join("bad.png"), &font).is_err());

    let chart = LineChart {
        title: "loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: vec![
            Series {
                label: "u".into(),
                points: (1..50).map(|i| (i as f64, 1.0 / i as f64)).collect(),
                color: None,
                band: vec![],
            },
            Series {
                label: "v".into(),
                points: (1..50).map(|i| (i as f64, 2.0 / i as f64)).collect(),
                color: None,
                band: (1..50).map(|i| (i as f64, 1.5 / i as f64, 2.5 / i as f64)).collect(),
            },
        ],
        references: vec![],
        size: (640, 400),
        log_y: true,
    };
    let path = dir.path().join("line.png");
    chart.save(&path, &font).unwrap();
    assert_eq!(png_size(&path), (640, 400));
}
