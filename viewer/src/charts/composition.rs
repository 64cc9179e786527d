//! Bytes per category at the overall peak, beside the sizes the runner's own log lines gave.

use super::bars::{draw_bars, Bar};
use super::frame::{draw_legend, frame, item, DResult, Item, Swatch, Tx};
use crate::colors::{category_color, VRAM_CATEGORIES};
use crate::util::{fmt_bytes, pct, secs};
use plotters::coord::Shift;
use plotters::prelude::*;
use vramtrace_analyzer::Report;

pub(super) fn draw_composition<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let p = &r.peak;
    let has_logs = !r.log_lines.is_empty();
    let logged = &r.summary.logged_by_category;
    let total = p.by_category.vram_total();
    let mut rows: Vec<Bar> = VRAM_CATEGORIES
        .iter()
        .filter(|&&c| p.by_category.get(c) > 0 || logged.get(c) > 0)
        .map(|&c| {
            let b = p.by_category.get(c);
            Bar {
                label: c.name().into(),
                bytes: b,
                color: category_color(c),
                text: format!("{} ({})", fmt_bytes(b), pct(p.by_category.share_pct(b))),
                sub: None,
                logged: Some(logged.get(c)).filter(|&l| has_logs && l > 0),
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
