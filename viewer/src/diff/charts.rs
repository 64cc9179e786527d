//! The diff's charts — one list ([`diff_charts`]), drawn with the report charts' frame: the delta
//! per category, the largest call-site deltas, and the two runs' timelines of one GPU, old above
//! new on one aligned time axis.

use super::{delta_text, signed_bytes, site_name};
use crate::charts::frame::{anchored, axis_num, draw_legend, draw_row_label, draw_stacked_areas, font, font_c, frame, grid_mesh, item, lighten, xy_chart, DResult, Item, Swatch, Tx};
use crate::charts::{device_slug, source_png, source_svg, Chart, ChartError, ChartSource};
use crate::colors::{category_color, marks, VRAM_CATEGORIES};
use crate::util::{clip, fmt_bytes, ByteUnit, TimeUnit};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::iter::once;
use vramtrace_analyzer::diff::{AlignMode, Change, Diff, SiteChange};
use vramtrace_analyzer::{device_label, Category, DeviceReport, Report};

/// Bars on the call-site delta chart.
const CHART_SITES: usize = 12;
/// Marker lines on the timelines are labelled up to this many anchors.
const LABELLED_ANCHORS: usize = 10;
/// Minimum distance in pixels between two labelled marker lines.
const LABEL_GAP_PX: i32 = 80;

/// The charts of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffChartKind {
    /// Delta per category at the peak (and the total), as diverging bars.
    Categories,
    /// The two runs' live VRAM on one GPU, old above new, on one (aligned) time axis.
    Timeline { device: i32 },
    /// The largest call-site deltas (changed, new, vanished).
    Sites,
}

/// One diff chart: kind, file stem (`diff-timeline-gpu0`) and title.
pub type DiffChart = Chart<DiffChartKind>;

/// What a diff chart draws from: the diff, and the reports for their timelines.
#[derive(Clone, Copy)]
pub struct DiffInput<'a> {
    pub diff: &'a Diff,
    pub old: &'a Report,
    pub new: &'a Report,
}

/// The charts this diff has data for, in reading order.
pub fn diff_charts(inp: DiffInput<'_>) -> Vec<DiffChart> {
    let d = inp.diff;
    let mut v = vec![DiffChart { kind: DiffChartKind::Categories, name: "diff-categories".into(), title: "Change at the peak by category (new − old)".into() }];
    let mut devs: Vec<i32> = inp.old.devices.iter().chain(&inp.new.devices).filter(|x| !x.timeline.is_empty()).map(|x| x.device).collect();
    devs.sort_unstable();
    devs.dedup();
    for dev in devs {
        v.push(DiffChart {
            kind: DiffChartKind::Timeline { device: dev },
            name: format!("diff-timeline-{}", device_slug(dev)),
            title: format!("Live VRAM over time, old and new — {}", device_label(dev)),
        });
    }
    if !d.sites.changed.is_empty() || !d.sites.new.is_empty() || !d.sites.vanished.is_empty() {
        v.push(DiffChart { kind: DiffChartKind::Sites, name: "diff-sites".into(), title: "Largest call-site changes (new − old)".into() });
    }
    v
}

impl ChartSource for DiffInput<'_> {
    type Kind = DiffChartKind;

    fn charts(&self) -> Vec<DiffChart> {
        diff_charts(*self)
    }

    /// The two-panel timeline needs the height of two charts to stay readable.
    fn size(&self, chart: &DiffChart, (w, h): (u32, u32)) -> (u32, u32) {
        if matches!(chart.kind, DiffChartKind::Timeline { .. }) {
            (w, h * 3 / 2)
        } else {
            (w, h)
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, chart: &DiffChart, tx: Tx) -> DResult
    where
        DB::ErrorType: 'static,
    {
        match chart.kind {
            DiffChartKind::Categories => draw_categories(root, self.diff, &chart.title, tx),
            DiffChartKind::Sites => draw_sites(root, self.diff, &chart.title, tx),
            DiffChartKind::Timeline { device } => draw_timelines(root, *self, device, &chart.title, tx),
        }
    }
}

/// Renders a diff chart as an SVG document of `size` pixels.
pub fn diff_chart_svg(inp: DiffInput<'_>, chart: &DiffChart, size: (u32, u32)) -> Result<String, ChartError> {
    source_svg(&inp, chart, size)
}

/// Renders a diff chart as a PNG file (bytes), with the embedded font.
pub fn diff_chart_png(inp: DiffInput<'_>, chart: &DiffChart, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    source_png(&inp, chart, size)
}

struct DeltaBar {
    label: String,
    sub: Option<String>,
    delta: i64,
    color: RGBColor,
    /// Below the noise threshold: drawn light.
    folded: bool,
    text: String,
}

/// Horizontal bars from zero, right for growth, left for shrinking; row labels left of the plot.
fn draw_delta_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &DrawingArea<DB, Shift>, rows: &[DeltaBar], label_w: u32, xdesc: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let n = rows.len().max(1) as f64;
    let maxabs = rows.iter().map(|b| b.delta.unsigned_abs()).max().unwrap_or(0).max(1) as f64;
    let u = ByteUnit::for_max(maxabs);
    let m = u.v(maxabs);
    let (pos, neg) = (rows.iter().any(|b| b.delta > 0), rows.iter().any(|b| b.delta < 0));
    // Room beyond the longest bar for its value label.
    let (x0, x1) = match (pos, neg) {
        (true, true) => (-m * 1.7, m * 1.7),
        (false, true) => (-m * 1.6, m * 0.2),
        _ => (-m * 0.2, m * 1.6),
    };
    let mut chart = xy_chart(plot, label_w, x0..x1, 0f64..n)?;
    grid_mesh(&mut chart.configure_mesh(), 14.0)
        .disable_y_mesh()
        .x_desc(format!("{xdesc} ({})", u.name))
        .x_label_formatter(&|v| if *v > 0.0 { format!("+{}", axis_num(*v)) } else { axis_num(*v) })
        .y_label_formatter(&|_| String::new())
        .y_labels(0)
        .draw()?;
    chart.draw_series(once(PathElement::new(vec![(0.0, 0.0), (0.0, n)], marks::TOTAL.stroke_width(1))))?;
    for (i, b) in rows.iter().enumerate() {
        let y0 = n - 1.0 - i as f64;
        let (t0, t1) = (y0 + 0.18, y0 + 0.82);
        let v = u.v(b.delta as f64);
        // At least ~2 px, so a small change still shows its colour.
        let v = if b.delta != 0 && v.abs() < (x1 - x0) * 0.003 { (x1 - x0) * 0.003 * v.signum() } else { v };
        let c = if b.folded { lighten(b.color, 0.6) } else { b.color };
        if b.delta != 0 {
            chart.draw_series(once(Rectangle::new([(0.0, t0), (v, t1)], c.filled())))?;
        }
        let (h, dx) = if b.delta < 0 { (HPos::Right, -6) } else { (HPos::Left, 6) };
        chart.draw_series(once(EmptyElement::at((v, (t0 + t1) / 2.0)) + Text::new(tx.s(&b.text), (dx, 0), anchored(font(13.0), h, VPos::Center))))?;
        draw_row_label(root, chart.backend_coord(&(x0, (t0 + t1) / 2.0)), &b.label, b.sub.as_deref(), tx)?;
    }
    Ok(())
}

fn bar_text(c: &Change) -> String {
    match (c.delta, c.changed) {
        (0, _) => "unchanged".into(),
        (_, false) => format!("{} (noise)", signed_bytes(c.delta)),
        _ => delta_text(c),
    }
}

fn draw_categories<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &Diff, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let mut rows = vec![DeltaBar { label: "total".into(), sub: None, delta: d.peak.delta, color: marks::TOTAL, folded: !d.peak.changed, text: bar_text(&d.peak) }];
    // VRAM categories only, in the timelines' stacking order; host_pinned is host memory.
    for &c in VRAM_CATEGORIES.iter() {
        if let Some(x) = d.category(c).filter(|x| x.change.old > 0 || x.change.new > 0) {
            rows.push(DeltaBar { label: c.name().into(), sub: None, delta: x.change.delta, color: category_color(c), folded: !x.change.changed, text: bar_text(&x.change) });
        }
    }
    let subtitle = format!("peak {} → {}  ·  changes below {} are noise (light bars)", fmt_bytes(d.peak.old), fmt_bytes(d.peak.new), fmt_bytes(d.threshold_bytes));
    let (plot, legend) = frame(root, title, &subtitle, tx)?;
    draw_delta_bars(root, &plot, &rows, 150, "change at the peak", tx)?;
    let mut items: Vec<Item> = rows.iter().skip(1).map(|b| item(Swatch::Fill(b.color), b.label.clone(), None)).collect();
    items.insert(0, item(Swatch::Fill(marks::TOTAL), "total VRAM", Some("runtime included".into())));
    items.push(item(Swatch::Light(RGBColor(0x88, 0x88, 0x88)), "below the noise threshold", Some(format!("|change| < {}", fmt_bytes(d.threshold_bytes)))));
    if let Some(h) = d.category(Category::HostPinned).filter(|h| h.change.delta != 0) {
        items.push(item(Swatch::Note, format!("host_pinned {}: host RAM", signed_bytes(h.change.delta)), None));
    }
    draw_legend(&legend, &items, tx)
}

fn draw_sites<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, d: &Diff, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let s = &d.sites;
    let mut all: Vec<(&str, &SiteChange)> =
        s.changed.iter().map(|x| ("changed", x)).chain(s.new.iter().map(|x| ("new", x))).chain(s.vanished.iter().map(|x| ("vanished", x))).collect();
    all.sort_by_key(|(_, x)| std::cmp::Reverse(x.max_live_delta.unsigned_abs()));
    let rows: Vec<DeltaBar> = all
        .iter()
        .take(CHART_SITES)
        .map(|(kind, x)| DeltaBar {
            label: clip(&site_name(x), 54),
            sub: Some(format!("{kind} · {}", x.category)),
            delta: x.max_live_delta,
            color: category_color(x.category),
            folded: false,
            text: signed_bytes(x.max_live_delta),
        })
        .collect();
    let subtitle = format!("most bytes each site held at any time  ·  {} changed, {} new, {} vanished", s.changed.len(), s.new.len(), s.vanished.len());
    let (plot, legend) = frame(root, title, &subtitle, tx)?;
    draw_delta_bars(root, &plot, &rows, 400, "change of the site's maximum", tx)?;
    let mut cats: Vec<Category> = all.iter().take(CHART_SITES).map(|(_, x)| x.category).collect();
    cats.sort();
    cats.dedup();
    let items: Vec<Item> = cats.iter().map(|&c| item(Swatch::Fill(category_color(c)), c.name(), None)).collect();
    draw_legend(&legend, &items, tx)
}

/// One half of the timeline chart: a run, its GPU and how its time maps onto the common axis.
struct Panel<'a, DB: DrawingBackend> {
    area: &'a DrawingArea<DB, Shift>,
    side: &'a str,
    name: &'a str,
    dev: Option<&'a DeviceReport>,
    rep: &'a Report,
    xmap: &'a dyn Fn(u64) -> f64,
    is_old: bool,
}

/// The two runs' timelines of one GPU, old above new, same y scale, x aligned (see
/// `Alignment`): in marker mode the x axis is the old run's clock and the new run is stretched
/// piecewise between matching markers; otherwise both run from 0 to 100% of their duration.
fn draw_timelines<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, inp: DiffInput<'_>, device: i32, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let a = &inp.diff.alignment;
    let od = inp.old.devices.iter().find(|x| x.device == device);
    let nd = inp.new.devices.iter().find(|x| x.device == device);
    let (xdiv, xdesc) = match a.mode {
        AlignMode::Markers => {
            let tu = TimeUnit::for_span(a.old_duration_ns.max(1));
            (tu.div, format!("time ({}): old run's clock, new run aligned at matching markers", tu.name))
        }
        AlignMode::Normalized => (0.01, "share of each run's duration (%): no common markers".to_string()),
    };
    let x_end = a.x_end() / xdiv;
    let data_max = [od, nd]
        .iter()
        .flatten()
        .flat_map(|x| x.timeline.iter().map(|p| p.total_bytes).chain(once(x.peak.total_bytes)))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let ymax = data_max * 1.15;
    let u = ByteUnit::for_max(ymax);
    let cats: Vec<Category> =
        VRAM_CATEGORIES.iter().copied().filter(|&c| [od, nd].iter().flatten().any(|x| x.timeline.iter().any(|p| p.by_category.get(c) > 0))).collect();
    let peak = |x: Option<&DeviceReport>| x.map(|x| fmt_bytes(x.peak.total_bytes)).unwrap_or_else(|| "–".into());
    let subtitle = format!("peak {} → {}  ·  {}", peak(od), peak(nd), if a.mode == AlignMode::Markers { format!("{} matching markers", a.anchors.len()) } else { "normalized time".into() });
    let (plot, legend) = frame(root, title, &subtitle, tx)?;
    let (_, h) = plot.dim_in_pixel();
    let (top, bottom) = plot.split_vertically(h / 2);
    let old_x = |t: u64| a.x_old(t) / xdiv;
    let new_x = |t: u64| a.x_new(t) / xdiv;
    let panels = [
        Panel { area: &top, side: "old", name: &inp.diff.old.name, dev: od, rep: inp.old, xmap: &old_x, is_old: true },
        Panel { area: &bottom, side: "new", name: &inp.diff.new.name, dev: nd, rep: inp.new, xmap: &new_x, is_old: false },
    ];
    for Panel { area, side, name, dev, rep, xmap, is_old } in panels {
        let mut chart = ChartBuilder::on(area).margin(10).x_label_area_size(if is_old { 26 } else { 44 }).y_label_area_size(74).build_cartesian_2d(0f64..x_end, 0f64..u.v(ymax))?;
        let mut mesh = chart.configure_mesh();
        grid_mesh(&mut mesh, 13.0)
            .y_desc(format!("VRAM ({})", u.name))
            .x_label_formatter(&|v| axis_num(*v))
            .y_label_formatter(&|v| axis_num(*v));
        if !is_old {
            mesh.x_desc(xdesc.clone());
        }
        mesh.draw()?;
        let label = format!("{side}: {}", clip(name, 60));
        let (lx, ly) = chart.backend_coord(&(0.0, u.v(ymax)));
        // Backend coordinates: drawn on the root, as the bar charts' row labels.
        root.draw(&Text::new(tx.s(&label), (lx + 8, ly + 4), ("sans-serif", 14.0).into_font().style(FontStyle::Bold).color(&BLACK)))?;
        let Some(dev) = dev.filter(|x| !x.timeline.is_empty()) else {
            root.draw(&Text::new(tx.s(&format!("no timeline for {} in this run", device_label(device))), (lx + 8, ly + 26), font_c(13.0, RGBColor(0x55, 0x55, 0x55))))?;
            continue;
        };
        let xs: Vec<f64> = dev.timeline.iter().map(|p| xmap(p.t_rel_ns).clamp(0.0, x_end)).collect();
        draw_stacked_areas(&mut chart, &dev.timeline, &xs, &cats, u, x_end)?;
        // Matching markers: the same x in both panels, by construction of the alignment.
        // Labels only where there is room: a few markers, at least LABEL_GAP_PX apart.
        let labelled = a.anchors.len() <= LABELLED_ANCHORS;
        let mut last_px: Option<i32> = None;
        for an in &a.anchors {
            let x = a.x_old(an.old_t_rel_ns) / xdiv;
            chart.draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, u.v(ymax))], 4, 4, marks::MARKER.stroke_width(1)))?;
            let px = chart.backend_coord(&(x, 0.0)).0;
            if labelled && last_px.is_none_or(|l| px.saturating_sub(l) >= LABEL_GAP_PX) {
                last_px = Some(px);
                let v = if is_old { an.old_value } else { an.new_value };
                let text = if v != 0 { format!("{}={v}", an.label) } else { an.label.clone() };
                chart.draw_series(once(EmptyElement::at((x, u.v(ymax))) + Text::new(tx.s(&clip(&text, 24)), (4, 22), anchored(font_c(11.0, marks::MARKER), HPos::Left, VPos::Top))))?;
            }
        }
        let (px, py) = (xmap(dev.peak.t_rel_ns).clamp(0.0, x_end), u.v(dev.peak.total_bytes as f64));
        let (hp, dx) = if px > 0.62 * x_end { (HPos::Right, -12) } else { (HPos::Left, 12) };
        chart.draw_series(once(
            EmptyElement::at((px, py))
                + Circle::new((0, 0), 5, marks::PEAK.filled())
                + Circle::new((0, 0), 7, WHITE.stroke_width(2))
                + Text::new(tx.s(&format!("peak {}", fmt_bytes(dev.peak.total_bytes))), (dx, -2), anchored(font(13.0), hp, VPos::Bottom)),
        ))?;
        for o in rep.ooms.iter().filter(|o| o.device == device && o.category != Category::HostPinned) {
            let x = xmap(o.t_rel_ns).clamp(0.0, x_end);
            chart.draw_series(once(Cross::new((x, u.v(o.by_category.vram_total() as f64)), 6, marks::OOM.stroke_width(3))))?;
        }
    }
    let dev_peak = |x: Option<&DeviceReport>, c: Category| x.map(|x| x.peak.by_category.get(c)).unwrap_or(0);
    let mut items: Vec<Item> = cats
        .iter()
        .rev()
        .map(|&c| item(Swatch::Fill(category_color(c)), c.name(), Some(format!("{} → {}", fmt_bytes(dev_peak(od, c)), fmt_bytes(dev_peak(nd, c))))))
        .collect();
    items.push(item(Swatch::Dot(marks::PEAK), "peak", None));
    items.push(item(Swatch::Note, "category: old → new at each run's peak", None));
    if !a.anchors.is_empty() {
        items.push(item(Swatch::Dashed(marks::MARKER), format!("matching markers ({})", a.anchors.len()), None));
    }
    if inp.old.ooms.iter().chain(&inp.new.ooms).any(|o| o.device == device && o.category != Category::HostPinned) {
        items.push(item(Swatch::Cross(marks::OOM), "OOM failure", None));
    }
    draw_legend(&legend, &items, tx)
}
