//! The largest (call site, rule) contributors at the peak.

use super::bars::{draw_bars, Bar};
use super::frame::{draw_legend, frame, item, DResult, Item, Swatch, Tx};
use crate::colors::category_color;
use crate::util::{clip, distinguishing_frames, fmt_bytes, frame_function, pct, secs, site_label};
use plotters::coord::Shift;
use plotters::prelude::*;
use vramtrace_analyzer::{Category, Report};

/// Bars drawn at most.
const MAX_SITES: usize = 12;
/// Longest call-site label drawn.
const SITE_LABEL_CHARS: usize = 54;

pub(super) fn draw_top_sites<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report, title: &str, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    let p = &r.peak;
    let shown: Vec<_> = p.top_sites.iter().take(MAX_SITES).collect();
    let via = distinguishing_frames(r, &shown.iter().map(|s| (s.site, s.rule.as_str())).collect::<Vec<_>>());
    let rows: Vec<Bar> = shown
        .iter()
        .zip(via)
        .map(|(s, via)| Bar {
            label: clip(frame_function(&site_label(r, s.site, &s.rule)), SITE_LABEL_CHARS),
            bytes: s.bytes,
            color: category_color(s.category),
            text: format!("{} ({})", fmt_bytes(s.bytes), pct(p.by_category.share_pct(s.bytes))),
            sub: Some(match via {
                Some(v) => clip(&format!("via {v}"), SITE_LABEL_CHARS),
                None => format!("rule {}", clip(&s.rule, SITE_LABEL_CHARS)),
            }),
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
    let mut cats: Vec<Category> = p.top_sites.iter().take(MAX_SITES).map(|s| s.category).collect();
    cats.sort();
    cats.dedup();
    let items: Vec<Item> = cats.iter().map(|&c| item(Swatch::Fill(category_color(c)), c.name(), None)).collect();
    draw_legend(&legend, &items, tx)
}
