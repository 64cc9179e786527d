//! Charts, drawn with plotters into SVG (for the HTML report) and into an in-memory bitmap
//! encoded as PNG (GitHub issues do not display attached SVG).
//!
//! Every chart is one generic drawing function over a plotters `DrawingBackend`, so the SVG and
//! the PNG of a chart are the same drawing. Text is laid out with the DejaVu Sans subset compiled
//! into the binary (`assets/`), registered with plotters' `ab_glyph` renderer: PNGs never depend
//! on the fonts of the machine that renders them, and SVG label placement is deterministic.
//!
//! Charts only draw numbers the analyzer computed. The one transformation applied here is the
//! min/max-per-pixel-column guard ([`crate::downsample`]) that bounds the size of every series.

use crate::colors::{category_color, marks, VRAM_CATEGORIES};
use crate::downsample::minmax_columns;
use crate::util::{clip, fmt_bytes, font_safe, frame_function, per_token, secs, site_label, thousands, ByteUnit, TimeUnit};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::chart::{ChartContext, MeshStyle};
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use std::iter::once;
use std::ops::Range;
use vramtrace_analyzer::{Category, DeviceReport, GrowthReport, Report, TimelinePoint};

/// Default chart size in pixels (SVG viewBox and PNG): wide enough for a legend beside the plot,
/// small enough to fit a laptop screen next to its table.
pub const DEFAULT_WIDTH: u32 = 1100;
pub const DEFAULT_HEIGHT: u32 = 520;

/// Width of the legend column on the right of every chart.
const LEGEND_W: u32 = 250;
/// Height of the title + subtitle band.
const HEADER_H: u32 = 58;
/// Scatter points per growth series are thinned to this many columns (SVG size).
const SCATTER_COLUMNS: usize = 120;
/// Longest call-site label drawn on the top-sites chart.
const SITE_LABEL_CHARS: usize = 54;

/// The kinds of chart a report can have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChartKind {
    /// Live VRAM over time as a stacked area per category, for one GPU.
    Timeline { device: i32 },
    /// Bytes per category at the overall peak, beside the runner's logged sizes.
    PeakComposition,
    /// The largest (call site, rule) contributors at the peak.
    TopSites,
    /// VMM reserved / mapped / in use, pool retention and the BFC metric, for one GPU.
    Fragmentation { device: i32 },
    /// Bytes vs context tokens with fitted lines; `index` into `Report::growth`.
    Growth { index: usize },
    /// Allocations and VMM mappings as rectangles over time × address, for one GPU.
    AddressMap { device: i32 },
}

/// One chart the report has data for: its kind, file stem (`timeline-gpu0`) and title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chart {
    pub kind: ChartKind,
    pub name: String,
    pub title: String,
}

/// `gpu0`, `gpu1`, … ; `gpu-unknown` for calls whose device the shim could not tell (`-1`).
pub fn device_slug(device: i32) -> String {
    if device < 0 {
        "gpu-unknown".into()
    } else {
        format!("gpu{device}")
    }
}

fn device_name(device: i32) -> String {
    if device < 0 {
        "unknown GPU".into()
    } else {
        format!("GPU {device}")
    }
}

/// The charts this report has data for, in reading order.
pub fn charts(r: &Report) -> Vec<Chart> {
    let mut v = Vec::new();
    for d in &r.devices {
        if !d.timeline.is_empty() {
            v.push(Chart {
                kind: ChartKind::Timeline { device: d.device },
                name: format!("timeline-{}", device_slug(d.device)),
                title: format!("Live VRAM over time by category — {}", device_name(d.device)),
            });
        }
    }
    if r.peak.by_category.vram_total() > 0 || r.log_lines.iter().any(|l| l.logged_bytes > 0) {
        v.push(Chart { kind: ChartKind::PeakComposition, name: "peak-composition".into(), title: "VRAM at the peak by category".into() });
    }
    if !r.peak.top_sites.is_empty() {
        v.push(Chart { kind: ChartKind::TopSites, name: "top-sites".into(), title: "Top call sites at the peak".into() });
    }
    for d in &r.devices {
        if has_fragmentation(d) {
            v.push(Chart {
                kind: ChartKind::Fragmentation { device: d.device },
                name: format!("fragmentation-{}", device_slug(d.device)),
                title: format!("Fragmentation over time — {}", device_name(d.device)),
            });
        }
    }
    for d in &r.devices {
        if crate::address_map::has_address_map(d) {
            v.push(Chart {
                kind: ChartKind::AddressMap { device: d.device },
                name: format!("address-map-{}", device_slug(d.device)),
                title: format!("Address space over time — {}", device_name(d.device)),
            });
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (i, g) in r.growth.iter().enumerate() {
        if g.points.len() < 2 {
            continue;
        }
        let mut name = format!("growth-{}", device_slug(g.device));
        if names.contains(&name) {
            name = format!("{name}-{i}");
        }
        names.push(name.clone());
        v.push(Chart {
            kind: ChartKind::Growth { index: i },
            name,
            title: format!("Growth per context token — {}", device_name(g.device)),
        });
    }
    v
}

/// Whether a device has any VMM reservation, pool retention or BFC fragmentation to show.
pub fn has_fragmentation(d: &DeviceReport) -> bool {
    !d.timeline.is_empty()
        && (d.timeline.iter().any(|p| p.vmm_reserved_bytes > 0 || p.pool_retained_bytes > 0 || p.bfc > 0.0)
            || d.fragmentation.vmm_reserved_peak_bytes > 0
            || d.fragmentation.pool_retained_peak_bytes > 0)
}

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
        static REGULAR: &[u8] = include_bytes!("../assets/DejaVuSans-vt.ttf");
        static BOLD: &[u8] = include_bytes!("../assets/DejaVuSans-Bold-vt.ttf");
        // The files are checked by the tests; a failure here would only lose text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, REGULAR);
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, BOLD);
    });
}

/// Renders a chart as an SVG document of `size` pixels.
pub fn chart_svg(r: &Report, chart: &Chart, size: (u32, u32)) -> Result<String, ChartError> {
    ensure_fonts();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        draw(&root, r, chart, Tx { bitmap: false }).map_err(|e| ChartError { chart: chart.name.clone(), message: e.to_string() })?;
        root.present().map_err(|e| ChartError { chart: chart.name.clone(), message: e.to_string() })?;
    }
    Ok(s)
}

/// Renders a chart as a PNG file (bytes) of `size` pixels, RGB.
pub fn chart_png(r: &Report, chart: &Chart, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    render_png(&chart.name, size, |root| draw(root, r, chart, Tx { bitmap: true }))
}

/// Paints into an RGB bitmap (text in the embedded font) and encodes it as PNG.
pub(crate) fn render_png(
    name: &str,
    size: (u32, u32),
    paint: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DResult,
) -> Result<Vec<u8>, ChartError> {
    ensure_fonts();
    let err = |m: String| ChartError { chart: name.to_string(), message: m };
    let mut buf = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
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

fn find(r: &Report, kind: ChartKind) -> Option<Chart> {
    charts(r).into_iter().find(|c| c.kind == kind)
}

fn svg_of(r: &Report, kind: ChartKind) -> Result<Option<String>, ChartError> {
    match find(r, kind) {
        Some(c) => chart_svg(r, &c, (DEFAULT_WIDTH, DEFAULT_HEIGHT)).map(Some),
        None => Ok(None),
    }
}

/// Live VRAM over time on `device` (stacked by category); `None` without a timeline.
pub fn timeline_svg(r: &Report, device: i32) -> Result<Option<String>, ChartError> {
    svg_of(r, ChartKind::Timeline { device })
}

/// Composition at the overall peak; `None` when nothing was live.
pub fn peak_composition_svg(r: &Report) -> Result<Option<String>, ChartError> {
    svg_of(r, ChartKind::PeakComposition)
}

/// Top call sites at the peak; `None` when the report lists none.
pub fn top_sites_svg(r: &Report) -> Result<Option<String>, ChartError> {
    svg_of(r, ChartKind::TopSites)
}

/// Fragmentation over time on `device`; `None` without VMM, pools or BFC data.
pub fn fragmentation_svg(r: &Report, device: i32) -> Result<Option<String>, ChartError> {
    svg_of(r, ChartKind::Fragmentation { device })
}

/// The address-space map of `device`; `None` when the report has no address ranges for it.
pub fn address_map_svg(r: &Report, device: i32) -> Result<Option<String>, ChartError> {
    svg_of(r, ChartKind::AddressMap { device })
}

/// Growth per token on `device`; `None` without at least two growth points.
pub fn growth_svg(r: &Report, device: i32) -> Result<Option<String>, ChartError> {
    match r.growth.iter().position(|g| g.device == device) {
        Some(index) => svg_of(r, ChartKind::Growth { index }),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing

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

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, chart: &Chart, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    match chart.kind {
        ChartKind::Timeline { device } => {
            let d = r.devices.iter().find(|d| d.device == device).ok_or("no such device")?;
            draw_timeline(root, r, d, &chart.title, tx)
        }
        ChartKind::PeakComposition => draw_composition(root, r, &chart.title, tx),
        ChartKind::TopSites => draw_top_sites(root, r, &chart.title, tx),
        ChartKind::Fragmentation { device } => {
            let d = r.devices.iter().find(|d| d.device == device).ok_or("no such device")?;
            draw_fragmentation(root, r, d, &chart.title, tx)
        }
        ChartKind::Growth { index } => {
            let g = r.growth.get(index).ok_or("no such growth report")?;
            draw_growth(root, r, g, &chart.title, tx)
        }
        ChartKind::AddressMap { device } => {
            let d = r.devices.iter().find(|d| d.device == device).ok_or("no such device")?;
            crate::address_map::draw_address_map(root, r, d, &chart.title, tx)
        }
    }
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

// --- live VRAM over time -----------------------------------------------------------------------

fn draw_timeline<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, d: &DeviceReport, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let pts = &d.timeline;
    let span = pts.last().map(|p| p.t_rel_ns).unwrap_or(0).max(r.duration_ns).max(1);
    let tu = TimeUnit::for_span(span);
    let x_end = tu.v(span);
    // Pinned-host failures carry device -1 too; they are host memory, not this VRAM chart.
    let ooms: Vec<_> = r.ooms.iter().filter(|o| o.device == d.device && o.category != Category::HostPinned).collect();
    let data_max = pts
        .iter()
        .map(|p| p.total_bytes)
        .chain(once(d.peak.total_bytes))
        .chain(ooms.iter().map(|o| o.by_category.vram_total()))
        .max()
        .unwrap_or(0) as f64;
    let cap = d.capacity_bytes.map(|c| c as f64);
    // A capacity far above the data would flatten the chart to a line; draw it only when it
    // is in the same range, or when something failed (then the distance to it is the story).
    let show_cap = cap.filter(|&c| c <= 4.0 * data_max.max(1.0) || !ooms.is_empty());
    let ymax = (data_max.max(show_cap.unwrap_or(0.0)) * 1.12).max(1.0);
    let u = ByteUnit::for_max(ymax);
    let cats: Vec<Category> = VRAM_CATEGORIES.iter().copied().filter(|&c| pts.iter().any(|p| p.by_category.get(c) > 0)).collect();

    let subtitle = format!(
        "peak {} at {}{}  ·  {} OOM failure{}",
        fmt_bytes(d.peak.total_bytes),
        secs(d.peak.t_rel_ns),
        match d.capacity_bytes {
            Some(c) => format!("  ·  capacity {} ({})", fmt_bytes(c), d.capacity_source),
            None => "  ·  capacity unknown".into(),
        },
        ooms.len(),
        if ooms.len() == 1 { "" } else { "s" }
    );
    let (plot, legend) = frame(root, title, &subtitle, tx)?;

    let mut chart = xy_chart(&plot, 74, 0f64..x_end, 0f64..u.v(ymax))?;
    grid_mesh(&mut chart.configure_mesh(), 14.0)
        .x_desc(format!("time since trace start ({})", tu.name))
        .y_desc(format!("live VRAM ({})", u.name))
        .x_label_formatter(&|v| axis_num(*v))
        .y_label_formatter(&|v| axis_num(*v))
        .draw()?;

    let xs: Vec<f64> = pts.iter().map(|p| tu.v(p.t_rel_ns)).collect();
    draw_stacked_areas(&mut chart, pts, &xs, &cats, u, x_end)?;

    let right = |x: f64| x > 0.62 * x_end;
    if let Some(c) = show_cap {
        let y = u.v(c);
        chart.draw_series(DashedLineSeries::new(vec![(0.0, y), (x_end, y)], 10, 6, marks::CAPACITY.stroke_width(2)))?;
        chart.draw_series(once(
            EmptyElement::at((0.0, y))
                + Text::new(tx.s(&format!("capacity {}", fmt_bytes(c as u64))), (8, -6), anchored(font(13.0), HPos::Left, VPos::Bottom)),
        ))?;
    }

    // Markers: a tick on the top edge each; with few of them also a line and a label (many
    // lines would hide the areas they cross).
    let label_markers = r.markers.len() <= 10;
    for (i, m) in r.markers.iter().enumerate() {
        let x = tu.v(m.t_rel_ns);
        if x > x_end {
            continue;
        }
        chart.draw_series(once(TriangleMarker::new((x, u.v(ymax)), 5, marks::MARKER.filled())))?;
        if label_markers {
            chart.draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, u.v(ymax))], 4, 4, marks::MARKER.stroke_width(1)))?;
            let text = if m.value != 0 { format!("{}={}", m.label, m.value) } else { m.label.clone() };
            let (h, dx) = if right(x) { (HPos::Right, -6) } else { (HPos::Left, 6) };
            let dy = 8 + 16 * (i as i32 % 3);
            chart.draw_series(once(
                EmptyElement::at((x, u.v(ymax))) + Text::new(tx.s(&clip(&text, 28)), (dx, dy), anchored(font_c(12.0, marks::MARKER), h, VPos::Top)),
            ))?;
        }
    }

    // The peak.
    let (px, py) = (tu.v(d.peak.t_rel_ns), u.v(d.peak.total_bytes as f64));
    let (h, dx) = if right(px) { (HPos::Right, -14) } else { (HPos::Left, 14) };
    chart.draw_series(once(
        EmptyElement::at((px, py))
            + Circle::new((0, 0), 6, marks::PEAK.filled())
            + Circle::new((0, 0), 8, WHITE.stroke_width(2))
            + Text::new(tx.s(&format!("peak {}", fmt_bytes(d.peak.total_bytes))), (dx, -2), anchored(("sans-serif", 14.0).into_font().style(FontStyle::Bold).color(&BLACK), h, VPos::Bottom)),
    ))?;

    // OOM failures: a red bar from what was live up to what the call asked for on top of it.
    for (n, o) in ooms.iter().enumerate() {
        let x = tu.v(o.t_rel_ns);
        let live = o.by_category.vram_total() as f64;
        let top = (live + o.requested_bytes as f64).min(ymax);
        chart.draw_series(once(PathElement::new(vec![(x, u.v(live)), (x, u.v(top))], marks::OOM.stroke_width(3))))?;
        chart.draw_series(once(Cross::new((x, u.v(live)), 7, marks::OOM.stroke_width(3))))?;
        if n < 3 {
            let (h, dx) = if right(x) { (HPos::Right, -10) } else { (HPos::Left, 10) };
            // Labels go along the top edge, under the marker ticks, clear of the peak label.
            let text = format!("OOM: {} {}", o.api, fmt_bytes(o.requested_bytes));
            chart.draw_series(once(
                EmptyElement::at((x, u.v(ymax))) + Text::new(tx.s(&text), (dx, 12 + 16 * n as i32), anchored(font_c(13.0, marks::OOM), h, VPos::Top)),
            ))?;
        }
    }

    let mut items: Vec<Item> = cats
        .iter()
        .rev()
        .map(|&c| item(Swatch::Fill(category_color(c)), c.name(), Some(format!("{} at the peak", fmt_bytes(d.peak.by_category.get(c))))))
        .collect();
    match (d.capacity_bytes, show_cap) {
        (Some(c), Some(_)) => items.push(item(Swatch::Dashed(marks::CAPACITY), format!("capacity {}", fmt_bytes(c)), None)),
        (Some(c), None) => items.push(item(Swatch::Note, format!("capacity {} (off scale)", fmt_bytes(c)), None)),
        _ => {}
    }
    items.push(item(Swatch::Dot(marks::PEAK), format!("peak {}", fmt_bytes(d.peak.total_bytes)), Some(format!("at {}", secs(d.peak.t_rel_ns)))));
    if !ooms.is_empty() {
        items.push(item(Swatch::Cross(marks::OOM), format!("OOM failure ({})", ooms.len()), Some("bar: the size requested".into())));
    }
    if !r.markers.is_empty() {
        items.push(item(Swatch::Line(lighten(marks::MARKER, 0.5)), format!("markers ({})", r.markers.len()), None));
    }
    if r.host.peak_bytes > 0 {
        items.push(item(Swatch::Note, "host_pinned: host RAM, not drawn", None));
    }
    draw_legend(&legend, &items, tx)
}

// --- horizontal bars (composition, top sites) --------------------------------------------------

struct Bar {
    label: String,
    bytes: u64,
    color: RGBColor,
    text: String,
    /// A second, smaller line under the label.
    sub: Option<String>,
    /// The runner's own logged size, drawn as a second, lighter bar.
    logged: Option<u64>,
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

fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &DrawingArea<DB, Shift>, rows: &[Bar], label_w: u32, xdesc: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let n = rows.len().max(1) as f64;
    let maxv = rows.iter().map(|b| b.bytes.max(b.logged.unwrap_or(0))).max().unwrap_or(0).max(1) as f64;
    let u = ByteUnit::for_max(maxv);
    let paired = rows.iter().any(|b| b.logged.is_some());
    let xmax = u.v(maxv) * 1.32; // room for the value labels
    let mut chart = xy_chart(plot, label_w, 0f64..xmax, 0f64..n)?;
    grid_mesh(&mut chart.configure_mesh(), 14.0)
        .disable_y_mesh()
        .x_desc(format!("{xdesc} ({})", u.name))
        .x_label_formatter(&|v| axis_num(*v))
        .y_label_formatter(&|_| String::new())
        .y_labels(0)
        .draw()?;
    for (i, b) in rows.iter().enumerate() {
        let y0 = n - 1.0 - i as f64;
        let (t0, t1) = if paired { (y0 + 0.52, y0 + 0.88) } else { (y0 + 0.18, y0 + 0.82) };
        // At least ~2 px wide, so a small row still shows its colour.
        let v = if b.bytes > 0 { u.v(b.bytes as f64).max(xmax * 0.004) } else { 0.0 };
        chart.draw_series(once(Rectangle::new([(0.0, t0), (v, t1)], b.color.filled())))?;
        chart.draw_series(once(
            EmptyElement::at((v, (t0 + t1) / 2.0)) + Text::new(tx.s(&b.text), (6, 0), anchored(font(13.0), HPos::Left, VPos::Center)),
        ))?;
        if let Some(l) = b.logged {
            let lv = u.v(l as f64);
            chart.draw_series(once(Rectangle::new([(0.0, y0 + 0.12), (lv, y0 + 0.46)], lighten(b.color, 0.55).filled())))?;
            chart.draw_series(once(Rectangle::new([(0.0, y0 + 0.12), (lv, y0 + 0.46)], b.color.stroke_width(1))))?;
            chart.draw_series(once(
                EmptyElement::at((lv, y0 + 0.29))
                    + Text::new(tx.s(&format!("{} logged", fmt_bytes(l))), (6, 0), anchored(font_c(12.0, RGBColor(0x44, 0x44, 0x44)), HPos::Left, VPos::Center)),
            ))?;
        }
        // Row label left of the axis, level with the bar, in backend pixels (the chart's own y
        // labels are numeric).
        draw_row_label(root, chart.backend_coord(&(0.0, (t0 + t1) / 2.0)), &b.label, b.sub.as_deref(), tx)?;
    }
    Ok(())
}

fn draw_composition<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let p = &r.peak;
    let has_logs = !r.log_lines.is_empty();
    let mut logged = [0u64; Category::COUNT];
    for l in &r.log_lines {
        logged[l.category.index()] += l.logged_bytes;
    }
    let total = p.by_category.vram_total();
    let mut rows: Vec<Bar> = VRAM_CATEGORIES
        .iter()
        .filter(|&&c| p.by_category.get(c) > 0 || logged[c.index()] > 0)
        .map(|&c| {
            let b = p.by_category.get(c);
            Bar {
                label: c.name().into(),
                bytes: b,
                color: category_color(c),
                text: format!("{} ({})", fmt_bytes(b), crate::util::pct(b, total)),
                sub: None,
                logged: if has_logs && logged[c.index()] > 0 { Some(logged[c.index()]) } else { None },
            }
        })
        .collect();
    rows.sort_by_key(|b| std::cmp::Reverse(b.bytes));
    let subtitle = format!("{} live at {} (all GPUs, runtime included)", fmt_bytes(total), secs(p.t_rel_ns));
    let (plot, legend) = frame(root, title, &subtitle, tx)?;
    draw_bars(root, &plot, &rows, 150, "bytes live at the peak", tx)?;
    let mut items: Vec<Item> = rows.iter().map(|b| item(Swatch::Fill(b.color), b.label.clone(), None)).collect();
    if has_logs {
        items.push(item(Swatch::Light(RGBColor(0x88, 0x88, 0x88)), "runner's own log lines", Some("lighter bar: sum of logged sizes".into())));
    } else {
        items.push(item(Swatch::Note, "no runner log lines with sizes", None));
    }
    if r.host.peak_bytes > 0 {
        items.push(item(Swatch::Note, format!("host_pinned {}: host RAM", fmt_bytes(r.host.peak_bytes)), None));
    }
    draw_legend(&legend, &items, tx)
}

fn draw_top_sites<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let p = &r.peak;
    let rows: Vec<Bar> = p
        .top_sites
        .iter()
        .take(12)
        .map(|s| Bar {
            label: clip(frame_function(&site_label(r, s.site, &s.rule)), SITE_LABEL_CHARS),
            bytes: s.bytes,
            color: category_color(s.category),
            text: format!("{} ({})", fmt_bytes(s.bytes), crate::util::pct(s.bytes, p.total_bytes)),
            sub: Some(format!("rule {}", clip(&s.rule, SITE_LABEL_CHARS))),
            logged: None,
        })
        .collect();
    let shown: u64 = rows.iter().map(|b| b.bytes).sum();
    let subtitle = format!(
        "{} sites shown hold {} of the {} live at {}",
        rows.len(),
        fmt_bytes(shown),
        fmt_bytes(p.total_bytes),
        secs(p.t_rel_ns)
    );
    let (plot, legend) = frame(root, title, &subtitle, tx)?;
    draw_bars(root, &plot, &rows, 400, "bytes live at the peak", tx)?;
    let mut cats: Vec<Category> = p.top_sites.iter().take(12).map(|s| s.category).collect();
    cats.sort();
    cats.dedup();
    let items: Vec<Item> = cats.iter().map(|&c| item(Swatch::Fill(category_color(c)), c.name(), None)).collect();
    draw_legend(&legend, &items, tx)
}

// --- fragmentation -----------------------------------------------------------------------------

fn draw_fragmentation<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, d: &DeviceReport, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let pts = &d.timeline;
    let f = &d.fragmentation;
    let span = pts.last().map(|p| p.t_rel_ns).unwrap_or(0).max(1);
    let tu = TimeUnit::for_span(span);
    let x_end = tu.v(span);
    let in_use = |p: &vramtrace_analyzer::TimelinePoint| p.total_bytes.saturating_sub(p.by_category.runtime);
    let ymax = pts
        .iter()
        .map(|p| p.vmm_reserved_bytes.max(p.vmm_mapped_bytes).max(in_use(p)).max(p.pool_retained_bytes))
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let u = ByteUnit::for_max(ymax);
    let subtitle = format!(
        "VMM reserved peak {}  ·  mapped peak {}  ·  pool retained peak {}  ·  BFC max {:.2}",
        fmt_bytes(f.vmm_reserved_peak_bytes),
        fmt_bytes(f.vmm_mapped_peak_bytes),
        fmt_bytes(f.pool_retained_peak_bytes),
        f.bfc_max
    );
    let (plot, legend) = frame(root, title, &subtitle, tx)?;
    let mut chart = ChartBuilder::on(&plot)
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(74)
        .right_y_label_area_size(64)
        .build_cartesian_2d(0f64..x_end, 0f64..u.v(ymax))?
        .set_secondary_coord(0f64..x_end, 0f64..1.0);
    grid_mesh(&mut chart.configure_mesh(), 14.0)
        .x_desc(format!("time since trace start ({})", tu.name))
        .y_desc(format!("bytes ({})", u.name))
        .x_label_formatter(&|v| axis_num(*v))
        .y_label_formatter(&|v| axis_num(*v))
        .draw()?;
    chart
        .configure_secondary_axes()
        .label_style(font(14.0))
        .axis_desc_style(font_c(15.0, marks::BFC))
        .y_desc("BFC metric (0–1)")
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()?;

    let cols = chart.plotting_area().dim_in_pixel().0.max(1) as usize;
    let xs: Vec<f64> = pts.iter().map(|p| tu.v(p.t_rel_ns)).collect();
    let series = |get: &dyn Fn(&vramtrace_analyzer::TimelinePoint) -> f64| -> Vec<(f64, f64)> {
        let ys: Vec<f64> = pts.iter().map(get).collect();
        let keep = minmax_columns(&xs, &ys, cols);
        let mut v: Vec<(f64, f64)> = Vec::with_capacity(keep.len() * 2 + 1);
        for &i in &keep {
            if let Some(&(_, py)) = v.last() {
                v.push((xs[i], py)); // step: a state holds until the next point
            }
            v.push((xs[i], ys[i]));
        }
        if let Some(&(lx, ly)) = v.last() {
            if lx < x_end {
                v.push((x_end, ly));
            }
        }
        v
    };
    let by = |s: Vec<(f64, f64)>| s.into_iter().map(|(x, y)| (x, u.v(y))).collect::<Vec<_>>();
    let mut items = Vec::new();
    let any = |g: &dyn Fn(&vramtrace_analyzer::TimelinePoint) -> u64| pts.iter().any(|p| g(p) > 0);
    if any(&|p| p.vmm_reserved_bytes) {
        chart.draw_series(DashedLineSeries::new(by(series(&|p| p.vmm_reserved_bytes as f64)), 8, 4, marks::VMM_RESERVED.stroke_width(2)))?;
        items.push(item(Swatch::Dashed(marks::VMM_RESERVED), "VMM address reserved", Some(format!("peak {}", fmt_bytes(f.vmm_reserved_peak_bytes)))));
    }
    if any(&|p| p.vmm_mapped_bytes) {
        chart.draw_series(LineSeries::new(by(series(&|p| p.vmm_mapped_bytes as f64)), marks::VMM_MAPPED.stroke_width(2)))?;
        items.push(item(Swatch::Line(marks::VMM_MAPPED), "VMM physically mapped", Some(format!("peak {}", fmt_bytes(f.vmm_mapped_peak_bytes)))));
    }
    chart.draw_series(LineSeries::new(by(series(&|p| in_use(p) as f64)), marks::IN_USE.stroke_width(2)))?;
    items.push(item(Swatch::Line(marks::IN_USE), "in use (traced, live)", Some(format!("at the peak {}", fmt_bytes(d.peak.total_bytes.saturating_sub(d.peak.by_category.runtime))))));
    if any(&|p| p.pool_retained_bytes) {
        chart.draw_series(LineSeries::new(by(series(&|p| p.pool_retained_bytes as f64)), marks::POOL_RETAINED.stroke_width(2)))?;
        items.push(item(Swatch::Line(marks::POOL_RETAINED), "pool retained (freed, held)", Some(format!("peak {}", fmt_bytes(f.pool_retained_peak_bytes)))));
    }
    if pts.iter().any(|p| p.bfc > 0.0) {
        let ys: Vec<f64> = pts.iter().map(|p| p.bfc).collect();
        let keep = minmax_columns(&xs, &ys, cols);
        chart.draw_secondary_series(DashedLineSeries::new(keep.iter().map(|&i| (xs[i], ys[i].clamp(0.0, 1.0))).collect::<Vec<_>>(), 3, 3, marks::BFC.stroke_width(2)))?;
        items.push(item(Swatch::Dashed(marks::BFC), "BFC: 1 − largest/total free", Some(format!("max {:.2} at {}", f.bfc_max, secs(f.bfc_max_t_ns.saturating_sub(r.trace_start_ns))))));
    }
    if f.rounding_waste_at_peak_bytes > 0 {
        items.push(item(Swatch::Note, format!("rounding waste at peak {}", fmt_bytes(f.rounding_waste_at_peak_bytes)), None));
    }
    draw_legend(&legend, &items, tx)
}

// --- growth per token --------------------------------------------------------------------------

fn draw_growth<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, g: &GrowthReport, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let _ = r;
    let mut pts: Vec<&vramtrace_analyzer::GrowthPoint> = g.points.iter().collect();
    pts.sort_by_key(|p| p.tokens);
    let tmax = pts.iter().map(|p| p.tokens.max(0)).max().unwrap_or(0).max(1) as f64;
    // Show the predicted OOM length when it is near enough to the data to read both.
    let pred = g.predicted_max_tokens.map(|t| t as f64).filter(|&t| t > 0.0 && t <= 4.0 * tmax);
    let x_end = pred.unwrap_or(0.0).max(tmax) * 1.08;
    let line = |f: &vramtrace_analyzer::Fit, x: f64| (f.intercept_bytes + f.slope_bytes_per_token * x).max(0.0);
    let data_max = pts.iter().map(|p| p.total_bytes).max().unwrap_or(0) as f64;
    let fit_max = g.total_fit.as_ref().map(|f| line(f, x_end)).unwrap_or(0.0);
    let cap = g.capacity_bytes.map(|c| c as f64);
    let show_cap = cap.filter(|&c| pred.is_some() || c <= 3.0 * data_max.max(fit_max).max(1.0));
    let ymax = (data_max.max(fit_max).max(show_cap.unwrap_or(0.0)) * 1.1).max(1.0);
    let u = ByteUnit::for_max(ymax);

    let slope = g.total_fit.as_ref().map(|f| format!("total {} (R² {:.3})", per_token(f.slope_bytes_per_token), f.r2)).unwrap_or_else(|| "no total fit".into());
    let predicted = match g.predicted_max_tokens {
        Some(t) => format!("  ·  runs out at ≈ {} tokens", thousands(t)),
        None => String::new(),
    };
    let (plot, legend) = frame(root, title, &format!("{slope}{predicted}"), tx)?;
    let label = g.labels.first().cloned().unwrap_or_else(|| "tokens".into());
    let mut chart = xy_chart(&plot, 74, 0f64..x_end, 0f64..u.v(ymax))?;
    grid_mesh(&mut chart.configure_mesh(), 14.0)
        .x_desc(format!("context tokens (marker '{label}')"))
        .y_desc(format!("VRAM ({})", u.name))
        .x_label_formatter(&|v| thousands(v.max(0.0).round() as u64))
        .y_label_formatter(&|v| axis_num(*v))
        .draw()?;

    let xs: Vec<f64> = pts.iter().map(|p| p.tokens as f64).collect();
    let tot: Vec<f64> = pts.iter().map(|p| p.total_bytes as f64).collect();
    let keep = minmax_columns(&xs, &tot, SCATTER_COLUMNS);
    let mut items = Vec::new();
    let mut fits: Vec<&vramtrace_analyzer::CategoryFit> = g.fits.iter().filter(|f| f.category != Category::HostPinned).collect();
    fits.sort_by(|a, b| b.fit.slope_bytes_per_token.abs().total_cmp(&a.fit.slope_bytes_per_token.abs()));
    for cf in &fits {
        let c = category_color(cf.category);
        chart.draw_series(keep.iter().map(|&i| Circle::new((xs[i], u.v(pts[i].by_category.get(cf.category) as f64)), 3, c.filled())))?;
        chart.draw_series(LineSeries::new(vec![(0.0, u.v(line(&cf.fit, 0.0))), (x_end, u.v(line(&cf.fit, x_end)))], c.stroke_width(2)))?;
        items.push(item(Swatch::Fill(c), cf.category.name(), Some(format!("{} (R² {:.2})", per_token(cf.fit.slope_bytes_per_token), cf.fit.r2))));
    }
    chart.draw_series(keep.iter().map(|&i| Circle::new((xs[i], u.v(tot[i])), 3, marks::TOTAL.filled())))?;
    if let Some(f) = &g.total_fit {
        chart.draw_series(LineSeries::new(vec![(0.0, u.v(line(f, 0.0))), (x_end, u.v(line(f, x_end)))], marks::TOTAL.stroke_width(2)))?;
        items.push(item(Swatch::Line(marks::TOTAL), "total (dots: steps, line: fit)", Some(per_token(f.slope_bytes_per_token))));
    } else {
        items.push(item(Swatch::Dot(marks::TOTAL), "total", None));
    }
    if let Some(c) = show_cap {
        let y = u.v(c);
        chart.draw_series(DashedLineSeries::new(vec![(0.0, y), (x_end, y)], 10, 6, marks::CAPACITY.stroke_width(2)))?;
        chart.draw_series(once(
            EmptyElement::at((0.0, y)) + Text::new(tx.s(&format!("capacity {}", fmt_bytes(c as u64))), (8, -6), anchored(font(13.0), HPos::Left, VPos::Bottom)),
        ))?;
        items.push(item(Swatch::Dashed(marks::CAPACITY), format!("capacity {}", fmt_bytes(c as u64)), None));
    }
    if let Some(t) = pred {
        chart.draw_series(DashedLineSeries::new(vec![(t, 0.0), (t, u.v(ymax))], 6, 4, marks::OOM.stroke_width(2)))?;
        chart.draw_series(once(
            EmptyElement::at((t, u.v(ymax)))
                + Text::new(tx.s(&format!("predicted OOM ≈ {} tokens", thousands(t as u64))), (-8, 8), anchored(font_c(13.0, marks::OOM), HPos::Right, VPos::Top)),
        ))?;
        items.push(item(Swatch::Dashed(marks::OOM), "predicted out of memory", Some(format!("≈ {} tokens", thousands(t as u64)))));
    } else if let Some(t) = g.predicted_max_tokens {
        items.push(item(Swatch::Note, format!("predicted OOM ≈ {} tokens (off scale)", thousands(t)), None));
    }
    if let Some(o) = &g.oom {
        // The step it failed in; else the last one that completed.
        let at = o.step_tokens.map(|t| (t, "OOM in the step to")).or(o.last_completed_tokens.map(|t| (t, "OOM after")));
        if let Some((t, what)) = at {
            let x = t as f64;
            let text = format!("{what} {} tokens", thousands(t.max(0) as u64));
            chart.draw_series(once(PathElement::new(vec![(x, 0.0), (x, u.v(ymax))], marks::OOM.stroke_width(1))))?;
            // Top edge, second row (the predicted-OOM label has the first), left of the line.
            chart.draw_series(once(EmptyElement::at((x, u.v(ymax))) + Text::new(tx.s(&text), (-6, 28), anchored(font_c(13.0, marks::OOM), HPos::Right, VPos::Top))))?;
            items.push(item(Swatch::Line(marks::OOM), "out-of-memory failure", Some(text)));
        }
    }
    if !g.runtime_included {
        items.push(item(Swatch::Note, "runtime overhead not included", None));
    }
    draw_legend(&legend, &items, tx)
}
