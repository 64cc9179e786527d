//! Growth per context token on one GPU: the steps' bytes per category and in total against the
//! token count, the fitted lines, the capacity, the predicted and the actual out-of-memory point.

use super::frame::{anchored, axis_num, draw_legend, font, font_c, frame, grid_mesh, item, xy_chart, DResult, Swatch, Tx};
use crate::colors::{category_color, marks};
use crate::downsample::minmax_columns;
use crate::util::{fmt_bytes, per_token, thousands, ByteUnit};
use crate::words;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::iter::once;
use vramtrace_analyzer::{Fit, GrowthPoint, GrowthReport};

/// Scatter points per growth series are thinned to this many columns (SVG size).
const SCATTER_COLUMNS: usize = 120;

pub(super) fn draw_growth<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, g: &GrowthReport, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let mut pts: Vec<&GrowthPoint> = g.points.iter().collect();
    pts.sort_by_key(|p| p.tokens);
    let tmax = pts.iter().map(|p| p.tokens.max(0)).max().unwrap_or(0).max(1) as f64;
    // Show the predicted OOM length when it is near enough to the data to read both.
    let pred = g.predicted_max_tokens.map(|t| t as f64).filter(|&t| t > 0.0 && t <= 4.0 * tmax);
    let x_end = pred.unwrap_or(0.0).max(tmax) * 1.08;
    let line = |f: &Fit, x: f64| (f.intercept_bytes + f.slope_bytes_per_token * x).max(0.0);
    let data_max = pts.iter().map(|p| p.total_bytes).max().unwrap_or(0) as f64;
    let fit_max = g.total_fit.as_ref().map(|f| line(f, x_end)).unwrap_or(0.0);
    let cap = g.capacity_bytes.map(|c| c as f64);
    let show_cap = cap.filter(|&c| pred.is_some() || c <= 3.0 * data_max.max(fit_max).max(1.0));
    let ymax = (data_max.max(fit_max).max(show_cap.unwrap_or(0.0)) * 1.1).max(1.0);
    let u = ByteUnit::for_max(ymax);

    let slope = g.total_fit.as_ref().map(|f| format!("total {}", words::slope(f))).unwrap_or_else(|| "no total fit".into());
    let predicted = g.predicted_max_tokens.map(|t| format!("  ·  {}", words::predicted_oom(t))).unwrap_or_default();
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
    // The analyzer's order (steepest first): the legend lists the categories that grow at the top.
    for cf in &g.fits {
        let c = category_color(cf.category);
        chart.draw_series(keep.iter().map(|&i| Circle::new((xs[i], u.v(pts[i].by_category.get(cf.category) as f64)), 3, c.filled())))?;
        chart.draw_series(LineSeries::new(vec![(0.0, u.v(line(&cf.fit, 0.0))), (x_end, u.v(line(&cf.fit, x_end)))], c.stroke_width(2)))?;
        items.push(item(Swatch::Fill(c), cf.category.name(), Some(words::slope(&cf.fit))));
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
        items.push(item(Swatch::Note, words::RUNTIME_NOT_INCLUDED, Some(words::NO_DRIVER_READING.into())));
    }
    draw_legend(&legend, &items, tx)
}
