//! The address-space map: every kept allocation and VMM mapping as a rectangle over time ×
//! address, coloured by category (like a heap map). Device address space is mostly empty —
//! a 32 GiB VMM reservation next to 64-bit allocation pointers — so the address axis is
//! compressed: each run of occupied addresses keeps its true extent, and the empty space between
//! runs is cut down to a thin separator. Layout only; every number comes from the report.

use super::frame::{axis_num, draw_legend, font, frame, item, DResult, Swatch, Tx};
use crate::colors::{category_color, marks};
use crate::util::{fmt_bytes, TimeUnit};
use plotters::coord::Shift;
use plotters::prelude::*;
use vramtrace_analyzer::{AddressSpan, Category, DeviceReport, Report};

/// Runs of occupied addresses: (start, end, y offset of start on the compressed axis, scale).
pub(crate) struct Layout {
    runs: Vec<(u64, u64, f64, f64)>,
    pub(crate) height: f64,
}

impl Layout {
    pub(crate) fn new(ranges: impl Iterator<Item = (u64, u64)>) -> Layout {
        let mut r: Vec<(u64, u64)> = ranges.filter(|(s, e)| e > s).collect();
        r.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in r {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let total: u64 = merged.iter().map(|(s, e)| e - s).sum();
        // A separator is 1.5% of the occupied total: visible, never dominant. A run is drawn at
        // least 4% tall, so a 4 MiB pool beside gigabytes of weights can still be seen (and
        // labelled); inside a run, addresses stay proportional.
        let gap = total as f64 * 0.015;
        let min_h = total as f64 * 0.04;
        let mut y = 0.0;
        let mut runs = Vec::with_capacity(merged.len());
        for (i, (s, e)) in merged.into_iter().enumerate() {
            if i > 0 {
                y += gap;
            }
            let h = ((e - s) as f64).max(min_h);
            runs.push((s, e, y, h / (e - s) as f64));
            y += h;
        }
        Layout { runs, height: y.max(1.0) }
    }

    /// Compressed position of an address inside a run.
    pub(crate) fn y(&self, addr: u64) -> f64 {
        let i = self.runs.partition_point(|r| r.0 <= addr).saturating_sub(1);
        self.runs.get(i).map_or(0.0, |&(s, _, y, k)| y + addr.saturating_sub(s) as f64 * k)
    }
}

/// Whether the device has spans to draw.
pub fn has_address_map(d: &DeviceReport) -> bool {
    !d.address_map.spans.is_empty()
}

pub(super) fn draw_address_map<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, d: &DeviceReport, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let spans = &d.address_map.spans;
    let end = r.duration_ns.max(spans.iter().map(|s| s.end_rel_ns.unwrap_or(s.start_rel_ns)).max().unwrap_or(0)).max(1);
    let tu = TimeUnit::for_span(end);
    let layout = Layout::new(spans.iter().map(|s| (s.ptr, s.ptr.saturating_add(s.size))));
    let mapped = spans.iter().filter(|s| s.vmm).count();
    let subtitle = format!(
        "{} address ranges ({} VMM mappings){}  ·  address axis compressed: empty space between ranges removed",
        spans.len(),
        mapped,
        if d.address_map.dropped > 0 { format!(", {} smaller ones not drawn", d.address_map.dropped) } else { String::new() }
    );
    let (plot, legend) = frame(root, title, &subtitle, tx)?;
    let mut chart = ChartBuilder::on(&plot)
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(40)
        .build_cartesian_2d(0f64..tu.v(end), 0f64..layout.height)?;
    // The address axis has no uniform scale: its labels are the real addresses where each run
    // of occupied space starts, drawn below.
    chart
        .configure_mesh()
        .disable_y_mesh()
        .max_light_lines(2)
        .light_line_style(marks::GRID_LIGHT)
        .bold_line_style(marks::GRID)
        .y_labels(0)
        .label_style(font(14.0))
        .axis_desc_style(font(15.0))
        .x_desc(format!("time since trace start ({})", tu.name))
        .y_desc("device address (runs of used space)")
        .x_label_formatter(&|v| axis_num(*v))
        .draw()?;
    let x_end = tu.v(end);
    let rect = |s: &AddressSpan| {
        let x0 = tu.v(s.start_rel_ns);
        let x1 = s.end_rel_ns.map_or(x_end, |e| tu.v(e)).max(x0);
        let (y0, y1) = (layout.y(s.ptr), layout.y(s.ptr.saturating_add(s.size).saturating_sub(1)));
        ([(x0, y0), (x1, y1.max(y0))], category_color(s.category))
    };
    chart.draw_series(spans.iter().filter(|s| !s.vmm).map(|s| {
        let (p, c) = rect(s);
        Rectangle::new(p, c.mix(0.85).filled())
    }))?;
    // VMM mappings: the same colours, with an outline so a pool's granules stay distinct.
    chart.draw_series(spans.iter().filter(|s| s.vmm).map(|s| {
        let (p, c) = rect(s);
        Rectangle::new(p, c.mix(0.55).filled())
    }))?;
    chart.draw_series(spans.iter().filter(|s| s.vmm).map(|s| {
        let (p, c) = rect(s);
        Rectangle::new(p, c.stroke_width(1))
    }))?;
    // Each run's start: a separator line and its address; the largest runs first, at most 12,
    // so small neighbours do not pile their labels on top of each other.
    let mut runs: Vec<&(u64, u64, f64, f64)> = layout.runs.iter().collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.1 - r.0));
    let mut labelled: Vec<f64> = Vec::new();
    for &&(start, _, y, _) in runs.iter().take(12) {
        if labelled.iter().any(|&l| (l - y).abs() < layout.height * 0.035) {
            continue;
        }
        labelled.push(y);
        chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, y), (x_end, y)], marks::GRID.stroke_width(1))))?;
        let text = tx.s(&format!("{start:#x}"));
        chart.draw_series(std::iter::once(Text::new(text, (x_end * 0.005, y + layout.height * 0.005), font(12.0))))?;
    }
    let mut items = Vec::new();
    for cat in Category::ALL {
        let bytes: u64 = spans.iter().filter(|s| s.category == cat).map(|s| s.size).sum();
        if bytes > 0 {
            items.push(item(Swatch::Fill(category_color(cat)), cat.name(), Some(format!("{} drawn", fmt_bytes(bytes)))));
        }
    }
    if mapped > 0 {
        items.push(item(Swatch::Light(category_color(Category::ScratchPool)), "outlined: VMM mapping", None));
    }
    items.push(item(Swatch::Note, "x: alive from allocation to free", None));
    draw_legend(&legend, &items, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_space_between_ranges_is_cut_to_a_separator() {
        let gib = 1u64 << 30;
        let l = Layout::new([(0x7f00_0000_0000, 0x7f00_0000_0000 + gib), (0x1000, 0x1000 + gib)].into_iter());
        assert_eq!(l.runs.len(), 2);
        assert_eq!(l.y(0x1000), 0.0);
        let sep = 2.0 * gib as f64 * 0.015;
        assert!((l.y(0x7f00_0000_0000) - (gib as f64 + sep)).abs() < 1.0);
        assert!((l.height - (2.0 * gib as f64 + sep)).abs() < 1.0);
        // Overlapping and touching ranges merge into one run.
        let l = Layout::new([(0, 10), (5, 20), (20, 30)].into_iter());
        assert_eq!((l.runs.len(), l.height), (1, 30.0));
        // A tiny run beside a huge one is drawn 4% of the total tall, proportionally inside.
        let l = Layout::new([(0, 1000), (1 << 40, (1 << 40) + 1_000_000)].into_iter());
        let min_h = 1_001_000.0 * 0.04;
        assert!((l.y(1000 - 1) - min_h * 0.999).abs() < 1.0);
        assert!((l.y(1 << 40) - (min_h + 1_001_000.0 * 0.015)).abs() < 1.0);
    }
}
