//! Horizontal bars with their row labels left of the plot: the peak composition and the top
//! call sites.

use super::frame::{anchored, axis_num, draw_row_label, font, font_c, grid_mesh, lighten, xy_chart, DResult, Tx};
use crate::util::{fmt_bytes, ByteUnit};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::iter::once;

pub(super) struct Bar {
    pub label: String,
    pub bytes: u64,
    pub color: RGBColor,
    pub text: String,
    /// A second, smaller line under the label.
    pub sub: Option<String>,
    /// The runner's own logged size, drawn as a second, lighter bar.
    pub logged: Option<u64>,
}

pub(super) fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &DrawingArea<DB, Shift>, rows: &[Bar], label_w: u32, xdesc: &str, tx: Tx) -> DResult
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
