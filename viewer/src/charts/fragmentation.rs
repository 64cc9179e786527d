//! Fragmentation over time on one GPU: VMM address space reserved and mapped, bytes in use,
//! pool retention, and the BFC metric on a second axis.

use super::frame::{axis_num, draw_legend, font, font_c, frame, grid_mesh, item, DResult, Swatch, Tx};
use crate::colors::marks;
use crate::downsample::minmax_columns;
use crate::util::{fmt_bytes, secs, ByteUnit, TimeUnit};
use plotters::coord::Shift;
use plotters::prelude::*;
use vramtrace_analyzer::{DeviceReport, Report, TimelinePoint};

/// Whether a device has any VMM reservation, pool retention or BFC fragmentation to show.
pub fn has_fragmentation(d: &DeviceReport) -> bool {
    !d.timeline.is_empty()
        && (d.timeline.iter().any(|p| p.vmm_reserved_bytes > 0 || p.pool_retained_bytes > 0 || p.bfc > 0.0)
            || d.fragmentation.vmm_reserved_peak_bytes > 0
            || d.fragmentation.pool_retained_peak_bytes > 0)
}

pub(super) fn draw_fragmentation<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, d: &DeviceReport, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let pts = &d.timeline;
    let f = &d.fragmentation;
    let span = pts.last().map(|p| p.t_rel_ns).unwrap_or(0).max(1);
    let tu = TimeUnit::for_span(span);
    let x_end = tu.v(span);
    let in_use = |p: &TimelinePoint| p.total_bytes.saturating_sub(p.by_category.runtime);
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
    let series = |get: &dyn Fn(&TimelinePoint) -> f64| -> Vec<(f64, f64)> {
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
    let any = |g: &dyn Fn(&TimelinePoint) -> u64| pts.iter().any(|p| g(p) > 0);
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
