//! What every chart (report and diff) is drawn with: the embedded fonts, the SVG and PNG
//! backends, the title band and legend column, text and axis styles, and the stacked-area
//! helper of the timelines. One frame, so all charts look alike.

use crate::colors::{category_color, marks};
use crate::downsample::minmax_columns;
use crate::util::{clip, font_safe, ByteUnit};
use plotters::chart::{ChartContext, MeshStyle};
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::iter::once;
use std::ops::Range;
use vramtrace_analyzer::{Category, TimelinePoint};

/// Width of the legend column on the right of every chart.
const LEGEND_W: u32 = 250;
/// Height of the title + subtitle band.
const HEADER_H: u32 = 58;

/// Chart rendering failed (a plotters error; not expected with the embedded font).
#[derive(Debug, thiserror::Error)]
#[error("chart {chart}: {message}")]
pub struct ChartError {
    pub chart: String,
    pub message: String,
}

/// Registers the embedded fonts with plotters once per process. Every drawing needs it: with
/// the `ab_glyph` feature plotters has no font at all until one is registered.
pub fn ensure_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        static REGULAR: &[u8] = include_bytes!("../../assets/DejaVuSans-vt.ttf");
        static BOLD: &[u8] = include_bytes!("../../assets/DejaVuSans-Bold-vt.ttf");
        // The files are checked by the tests; a failure here would only lose text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, REGULAR);
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, BOLD);
    });
}

/// Paints on a white SVG canvas of `size` pixels and returns the document.
pub(crate) fn render_svg(name: &str, size: (u32, u32), paint: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DResult) -> Result<String, ChartError> {
    ensure_fonts();
    let err = |m: String| ChartError { chart: name.to_string(), message: m };
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        paint(&root).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(s)
}

/// Paints into a white RGB bitmap (text in the embedded font) and encodes it as PNG.
pub(crate) fn render_png(name: &str, size: (u32, u32), paint: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DResult) -> Result<Vec<u8>, ChartError> {
    ensure_fonts();
    let err = |m: String| ChartError { chart: name.to_string(), message: m };
    let mut buf = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        paint(&root).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| err(e.to_string()))?;
        w.write_image_data(&buf).map_err(|e| err(e.to_string()))?;
    }
    Ok(out)
}

pub(crate) type DResult = Result<(), Box<dyn std::error::Error>>;
type Areas<DB> = (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>);

/// Text policy: bitmap text goes through the embedded font, so characters it lacks become `?`.
#[derive(Clone, Copy)]
pub(crate) struct Tx {
    pub(crate) bitmap: bool,
}

impl Tx {
    pub(crate) fn s(&self, s: &str) -> String {
        if self.bitmap {
            font_safe(s)
        } else {
            s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
        }
    }
}

pub(crate) fn font(size: f64) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

pub(crate) fn font_c(size: f64, c: RGBColor) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&c)
}

pub(crate) fn anchored(t: TextStyle<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    t.pos(Pos::new(h, v))
}

/// `c` mixed with white: the "runner's log" bars, lighter than the traced ones.
pub(crate) fn lighten(c: RGBColor, f: f64) -> RGBColor {
    let m = |x: u8| (x as f64 + (255.0 - x as f64) * f).round() as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}

/// Axis numbers: at most two decimals, no trailing zeros.
pub(crate) fn axis_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub(crate) type XyChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// An x × y chart on `plot` with the margin and axis-label room of the report and diff charts
/// (`y_label_w` pixels for the y labels).
pub(crate) fn xy_chart<'a, DB: DrawingBackend>(plot: &DrawingArea<DB, Shift>, y_label_w: u32, x: Range<f64>, y: Range<f64>) -> Result<XyChart<'a, DB>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    Ok(ChartBuilder::on(plot).margin(14).x_label_area_size(46).y_label_area_size(y_label_w).build_cartesian_2d(x, y)?)
}

/// The grid and text style every chart's mesh shares: labels in `text` px, axis names a pixel larger.
pub(crate) fn grid_mesh<'m, 'a, 'b, X: Ranged, Y: Ranged, DB: DrawingBackend>(mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>, text: f64) -> &'m mut MeshStyle<'a, 'b, X, Y, DB> {
    mesh.light_line_style(marks::GRID_LIGHT).bold_line_style(marks::GRID).max_light_lines(2).label_style(font(text)).axis_desc_style(font(text + 1.0))
}

/// Stacked areas of `cats` (the first at the bottom) over the timeline `pts` placed at `xs`:
/// min/max per pixel column over the total keeps every spike, and the category split of the
/// kept points stays exact because whole points are kept, not per-series extremes. Each point
/// is the state from its time until the next one (the last until `x_end`): drawn as steps while
/// they are wider than a pixel; beyond that a step and a slope look the same and cost twice the
/// size.
pub(crate) fn draw_stacked_areas<DB: DrawingBackend>(chart: &mut XyChart<'_, DB>, pts: &[TimelinePoint], xs: &[f64], cats: &[Category], u: ByteUnit, x_end: f64) -> DResult
where
    DB::ErrorType: 'static,
{
    let cols = chart.plotting_area().dim_in_pixel().0.max(1) as usize;
    let tot: Vec<f64> = pts.iter().map(|p| p.total_bytes as f64).collect();
    let keep = minmax_columns(xs, &tot, cols);
    let step = keep.len() * 2 <= cols;
    for k in (0..cats.len()).rev() {
        let mut poly: Vec<(f64, f64)> = Vec::with_capacity(keep.len() * 2 + 3);
        for &i in &keep {
            let y = u.v(cats[..=k].iter().map(|&c| pts[i].by_category.get(c)).sum::<u64>() as f64);
            if step {
                if let Some(&(_, py)) = poly.last() {
                    poly.push((xs[i], py));
                }
            }
            poly.push((xs[i], y));
        }
        let Some(&(lx, ly)) = poly.last() else { continue };
        if lx < x_end {
            poly.push((x_end, ly)); // the last state holds until the trace ends
        }
        let x0 = poly[0].0;
        poly.push((x_end.max(lx), 0.0));
        poly.push((x0, 0.0));
        chart.draw_series(once(Polygon::new(poly, category_color(cats[k]).filled())))?;
    }
    Ok(())
}


/// Title and subtitle band; returns (plot area, legend column).
pub(crate) fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    tx: Tx,
) -> Result<Areas<DB>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let (head, body) = root.split_vertically(HEADER_H);
    head.draw(&Text::new(tx.s(title), (18, 10), ("sans-serif", 22).into_font().style(FontStyle::Bold).color(&BLACK)))?;
    head.draw(&Text::new(tx.s(subtitle), (18, 38), font_c(14.0, RGBColor(0x44, 0x44, 0x44))))?;
    let (w, _) = body.dim_in_pixel();
    let (plot, legend) = body.split_horizontally(w.saturating_sub(LEGEND_W));
    Ok((plot, legend))
}

pub(crate) enum Swatch {
    Fill(RGBColor),
    /// Light fill with a border: the runner's logged sizes.
    Light(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
    Cross(RGBColor),
    Dot(RGBColor),
    /// Text only (a note under the legend).
    Note,
}

pub(crate) struct Item {
    sw: Swatch,
    label: String,
    sub: Option<String>,
}

pub(crate) fn item(sw: Swatch, label: impl Into<String>, sub: Option<String>) -> Item {
    Item { sw, label: label.into(), sub }
}

/// The legend column. Drawn by hand (not plotters' series legend) so it sits outside the plot
/// and can carry a second line with the number behind each entry.
pub(crate) fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[Item], tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let mut y = 22;
    let (_, h) = area.dim_in_pixel();
    for it in items {
        if y > h as i32 - 16 {
            break;
        }
        let (x0, x1) = (6, 26);
        match it.sw {
            Swatch::Fill(c) => area.draw(&Rectangle::new([(x0, y - 6), (x1, y + 6)], c.filled()))?,
            Swatch::Light(c) => {
                area.draw(&Rectangle::new([(x0, y - 6), (x1, y + 6)], lighten(c, 0.55).filled()))?;
                area.draw(&Rectangle::new([(x0, y - 6), (x1, y + 6)], c.stroke_width(1)))?;
            }
            Swatch::Line(c) => area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(3)))?,
            Swatch::Dashed(c) => {
                area.draw(&PathElement::new(vec![(x0, y), (x0 + 7, y)], c.stroke_width(2)))?;
                area.draw(&PathElement::new(vec![(x1 - 7, y), (x1, y)], c.stroke_width(2)))?;
            }
            Swatch::Cross(c) => area.draw(&Cross::new((16, y), 5, c.stroke_width(3)))?,
            Swatch::Dot(c) => area.draw(&Circle::new((16, y), 5, c.filled()))?,
            Swatch::Note => {}
        }
        let tx0 = if matches!(it.sw, Swatch::Note) { 6 } else { 34 };
        let style = if matches!(it.sw, Swatch::Note) { font_c(12.0, RGBColor(0x55, 0x55, 0x55)) } else { font(14.0) };
        let n = if matches!(it.sw, Swatch::Note) { 40 } else { 30 };
        area.draw(&Text::new(tx.s(&clip(&it.label, n)), (tx0, y), anchored(style, HPos::Left, VPos::Center)))?;
        y += 22;
        if let Some(sub) = &it.sub {
            area.draw(&Text::new(tx.s(&clip(sub, 34)), (tx0, y - 6), anchored(font_c(12.0, RGBColor(0x55, 0x55, 0x55)), HPos::Left, VPos::Center)))?;
            y += 16;
        }
    }
    Ok(())
}

/// A bar row's label (and its smaller second line), right-aligned just left of backend pixel `at`.
pub(crate) fn draw_row_label<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, (px, py): (i32, i32), label: &str, sub: Option<&str>, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    match sub {
        None => root.draw(&Text::new(tx.s(label), (px - 10, py), anchored(font(14.0), HPos::Right, VPos::Center)))?,
        Some(sub) => {
            root.draw(&Text::new(tx.s(label), (px - 10, py - 1), anchored(font(14.0), HPos::Right, VPos::Bottom)))?;
            root.draw(&Text::new(tx.s(sub), (px - 10, py + 2), anchored(font_c(12.0, RGBColor(0x55, 0x55, 0x55)), HPos::Right, VPos::Top)))?;
        }
    }
    Ok(())
}
