//! Charts, drawn with plotters into SVG (for the HTML pages) and into an in-memory bitmap
//! encoded as PNG (GitHub issues do not display attached SVG).
//!
//! Every kind of output has one list of charts (a `ChartSource`: [`charts`] for a report, the
//! diff's own for a diff) and every chart is one generic drawing function over a plotters
//! `DrawingBackend`, so the SVG and the PNG of a chart are the same drawing. Text is laid out
//! with the DejaVu Sans subset compiled into the binary (`assets/`), registered with plotters'
//! `ab_glyph` renderer: PNGs never depend on the fonts of the machine that renders them, and SVG
//! label placement is deterministic.
//!
//! Charts only draw numbers the analyzer computed. The one transformation applied here is the
//! min/max-per-pixel-column guard ([`crate::downsample`]) that bounds the size of every series.
//!
//! One file per report chart; `frame` holds what they all share (fonts, title band, legend,
//! axes), and the diff's charts draw with it too.

mod address_map;
mod bars;
mod composition;
mod fragmentation;
pub(crate) mod frame;
mod growth;
mod sites;
mod timeline;

pub use address_map::has_address_map;
pub use fragmentation::has_fragmentation;
pub use frame::{ensure_fonts, ChartError};

use frame::{render_png, render_svg, DResult, Tx};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend};
use vramtrace_analyzer::{device_label, Report};

/// Default chart size in pixels (SVG viewBox and PNG): wide enough for a legend beside the plot,
/// small enough to fit a laptop screen next to its table.
pub const DEFAULT_WIDTH: u32 = 1100;
pub const DEFAULT_HEIGHT: u32 = 520;

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

/// One chart an output has data for: its kind, file stem (`timeline-gpu0`) and title. `K` is
/// the kind of its output: [`ChartKind`] for a report, `DiffChartKind` for a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chart<K = ChartKind> {
    pub kind: K,
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

/// What an output's charts come from: its one list of charts, and how each is drawn.
pub(crate) trait ChartSource {
    type Kind: Clone;
    /// The charts this source has data for, in reading order.
    fn charts(&self) -> Vec<Chart<Self::Kind>>;
    /// The size of `chart` when charts are `base` pixels (a chart may need more room).
    fn size(&self, _chart: &Chart<Self::Kind>, base: (u32, u32)) -> (u32, u32) {
        base
    }
    /// Draws `chart` on a white `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, chart: &Chart<Self::Kind>, tx: Tx) -> DResult
    where
        DB::ErrorType: 'static;
}

/// `chart` of `src` as an SVG document of `size` pixels.
pub(crate) fn source_svg<S: ChartSource>(src: &S, chart: &Chart<S::Kind>, size: (u32, u32)) -> Result<String, ChartError> {
    render_svg(&chart.name, size, |root| src.draw(root, chart, Tx { bitmap: false }))
}

/// `chart` of `src` as a PNG file (bytes) of `size` pixels, RGB.
pub(crate) fn source_png<S: ChartSource>(src: &S, chart: &Chart<S::Kind>, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    render_png(&chart.name, size, |root| src.draw(root, chart, Tx { bitmap: true }))
}

/// The charts a report has data for, in reading order.
pub fn charts(r: &Report) -> Vec<Chart> {
    let charted = charted_devices(r);
    let per_device = |v: &mut Vec<Chart>, has: &dyn Fn(&vramtrace_analyzer::DeviceReport) -> bool, kind: fn(i32) -> ChartKind, stem: &str, title: &str| {
        for d in r.devices.iter().filter(|d| charted.contains(&d.device) && has(d)) {
            v.push(Chart { kind: kind(d.device), name: format!("{stem}-{}", device_slug(d.device)), title: format!("{title} — {}", device_label(d.device)) });
        }
    };
    let mut v = Vec::new();
    per_device(&mut v, &|d| !d.timeline.is_empty(), |device| ChartKind::Timeline { device }, "timeline", "Live VRAM over time by category");
    if r.peak.by_category.vram_total() > 0 || r.log_lines.iter().any(|l| l.logged_bytes > 0) {
        v.push(Chart { kind: ChartKind::PeakComposition, name: "peak-composition".into(), title: "VRAM at the peak by category".into() });
    }
    if !r.peak.top_sites.is_empty() {
        v.push(Chart { kind: ChartKind::TopSites, name: "top-sites".into(), title: "Top call sites at the peak".into() });
    }
    per_device(&mut v, &has_fragmentation, |device| ChartKind::Fragmentation { device }, "fragmentation", "Fragmentation over time");
    per_device(&mut v, &has_address_map, |device| ChartKind::AddressMap { device }, "address-map", "Address space over time");
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
        v.push(Chart { kind: ChartKind::Growth { index: i }, name, title: format!("Growth per context token — {}", device_label(g.device)) });
    }
    v
}

/// Devices charted one by one: at most [`MAX_CHARTED_DEVICES`], those with the highest peaks
/// (every device stays in the tables and in report.json).
pub const MAX_CHARTED_DEVICES: usize = 16;

pub fn charted_devices(r: &Report) -> Vec<i32> {
    let mut by_peak: Vec<&vramtrace_analyzer::DeviceReport> = r.devices.iter().collect();
    by_peak.sort_by(|a, b| b.peak.total_bytes.cmp(&a.peak.total_bytes).then(a.device.cmp(&b.device)));
    by_peak.iter().take(MAX_CHARTED_DEVICES).map(|d| d.device).collect()
}

impl ChartSource for Report {
    type Kind = ChartKind;

    fn charts(&self) -> Vec<Chart> {
        charts(self)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, chart: &Chart, tx: Tx) -> DResult
    where
        DB::ErrorType: 'static,
    {
        let device = |n: i32| self.devices.iter().find(|d| d.device == n).ok_or("no such device");
        match chart.kind {
            ChartKind::Timeline { device: n } => timeline::draw_timeline(root, self, device(n)?, &chart.title, tx),
            ChartKind::PeakComposition => composition::draw_composition(root, self, &chart.title, tx),
            ChartKind::TopSites => sites::draw_top_sites(root, self, &chart.title, tx),
            ChartKind::Fragmentation { device: n } => fragmentation::draw_fragmentation(root, self, device(n)?, &chart.title, tx),
            ChartKind::Growth { index } => growth::draw_growth(root, self.growth.get(index).ok_or("no such growth report")?, &chart.title, tx),
            ChartKind::AddressMap { device: n } => address_map::draw_address_map(root, self, device(n)?, &chart.title, tx),
        }
    }
}

/// Renders a report chart as an SVG document of `size` pixels.
pub fn chart_svg(r: &Report, chart: &Chart, size: (u32, u32)) -> Result<String, ChartError> {
    source_svg(r, chart, size)
}

/// Renders a report chart as a PNG file (bytes) of `size` pixels, RGB.
pub fn chart_png(r: &Report, chart: &Chart, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    source_png(r, chart, size)
}

/// The chart of `kind` at the default size, `None` when the report has no data for it.
fn svg_of(r: &Report, kind: ChartKind) -> Result<Option<String>, ChartError> {
    match charts(r).into_iter().find(|c| c.kind == kind) {
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

#[cfg(test)]
mod device_cap_tests {
    use super::*;
    use vramtrace_analyzer::{DeviceReport, Peak, TimelinePoint};

    #[test]
    fn per_device_charts_are_bounded_to_the_highest_peaks() {
        let mut r = Report::default();
        for d in 0..40 {
            r.devices.push(DeviceReport { device: d, peak: Peak { total_bytes: d as u64, ..Peak::default() }, timeline: vec![TimelinePoint::default()], ..DeviceReport::default() });
        }
        let timelines: Vec<String> = charts(&r).into_iter().filter(|c| matches!(c.kind, ChartKind::Timeline { .. })).map(|c| c.name).collect();
        assert_eq!(timelines.len(), MAX_CHARTED_DEVICES);
        assert!(timelines.contains(&"timeline-gpu39".to_string()) && !timelines.contains(&"timeline-gpu0".to_string()));
    }
}
