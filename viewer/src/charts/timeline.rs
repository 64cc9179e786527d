//! Live VRAM over time on one GPU: stacked areas per category, the capacity, the peak, failed
//! allocations (with the size they asked for) and the markers.

use super::frame::{anchored, axis_num, draw_legend, draw_stacked_areas, font, font_c, frame, grid_mesh, item, lighten, xy_chart, DResult, Item, Swatch, Tx};
use crate::colors::{category_color, marks, VRAM_CATEGORIES};
use crate::util::{clip, fmt_bytes, secs, ByteUnit, TimeUnit};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::iter::once;
use vramtrace_analyzer::{Category, DeviceReport, Report};

pub(super) fn draw_timeline<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, d: &DeviceReport, title: &str, tx: Tx) -> DResult
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

    let items = legend_items(r, d, &cats, show_cap.is_some(), ooms.len());
    draw_legend(&legend, &items, tx)
}

/// The legend: categories (top of the stack first) with their bytes at the peak, the capacity,
/// the peak, failures and markers.
fn legend_items(r: &Report, d: &DeviceReport, cats: &[Category], cap_shown: bool, n_ooms: usize) -> Vec<Item> {
    let mut items: Vec<Item> = cats
        .iter()
        .rev()
        .map(|&c| item(Swatch::Fill(category_color(c)), c.name(), Some(format!("{} at the peak", fmt_bytes(d.peak.by_category.get(c))))))
        .collect();
    match (d.capacity_bytes, cap_shown) {
        (Some(c), true) => items.push(item(Swatch::Dashed(marks::CAPACITY), format!("capacity {}", fmt_bytes(c)), None)),
        (Some(c), false) => items.push(item(Swatch::Note, format!("capacity {} (off scale)", fmt_bytes(c)), None)),
        _ => {}
    }
    items.push(item(Swatch::Dot(marks::PEAK), format!("peak {}", fmt_bytes(d.peak.total_bytes)), Some(format!("at {}", secs(d.peak.t_rel_ns)))));
    if n_ooms > 0 {
        items.push(item(Swatch::Cross(marks::OOM), format!("OOM failure ({n_ooms})"), Some("bar: the size requested".into())));
    }
    if !r.markers.is_empty() {
        items.push(item(Swatch::Line(lighten(marks::MARKER, 0.5)), format!("markers ({})", r.markers.len()), None));
    }
    if r.host.peak_bytes > 0 {
        items.push(item(Swatch::Note, "host_pinned: host RAM, not drawn", None));
    }
    items
}
