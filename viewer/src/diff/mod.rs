//! Renders a [`Diff`]: the terminal table ([`text`]), the Markdown summary for an issue
//! ([`markdown`]), and `-o DIR` — a self-contained `diff.html` ([`html`]) with the delta bar
//! charts and the two runs' timelines one above the other on one time axis ([`charts`]),
//! `diff.md`, `diff.json`, and every chart as SVG + PNG — written by the same bundle writer as a
//! report.
//!
//! Formatting only: every number is in the `Diff`; the reports are read only for the timelines.
//! Colours, fonts, legends, escaping and byte formatting are the report viewer's own, so a
//! category has the same colour here as in every other chart.

pub mod charts;
pub mod html;
pub mod markdown;
pub mod text;

pub use charts::{diff_chart_png, diff_chart_svg, diff_charts, DiffChart, DiffChartKind, DiffInput};
pub use html::diff_html;
pub use markdown::diff_markdown;
pub use text::diff_terminal;

use crate::bundle::{png_files, pretty_json, render_source, write_bundle, Documents, Error, RenderOptions, RenderedChart, Written};
use crate::util::{fmt_bytes, frame_function, per_token, secs, thousands};
use std::path::Path;
use vramtrace_analyzer::diff::{Change, Diff, GrowthChange, OomSide, SiteChange};
use vramtrace_analyzer::Verdict;

/// Call sites listed per kind (changed, new, vanished) in the terminal and Markdown; the HTML
/// lists up to [`HTML_ROWS`]; diff.json has them all.
const TEXT_ROWS: usize = 12;
const HTML_ROWS: usize = 300;

/// A diff chart rendered in memory.
pub type RenderedDiffChart = RenderedChart<DiffChartKind>;
/// What [`render_diff`] wrote.
pub type DiffWritten = Written<DiffChartKind>;


/// `+256.00 MiB`, `-4.00 MiB`, `0 B`.
pub fn signed_bytes(d: i64) -> String {
    match d.signum() {
        0 => "0 B".into(),
        1 => format!("+{}", fmt_bytes(d.unsigned_abs())),
        _ => format!("-{}", fmt_bytes(d.unsigned_abs())),
    }
}

fn signed_pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p:+.1}%")).unwrap_or_default()
}

fn signed_per_token(d: f64) -> String {
    if d > 0.0 {
        format!("+{}", per_token(d))
    } else {
        per_token(d)
    }
}

/// The delta column of a [`Change`]: `=` when equal, `+X (noise)` when folded, else `+X +P%`.
fn delta_text(c: &Change) -> String {
    if c.delta == 0 {
        "=".into()
    } else if !c.changed {
        format!("{} (noise)", signed_bytes(c.delta))
    } else {
        format!("{} {}", signed_bytes(c.delta), signed_pct(c.delta_pct)).trim_end().to_string()
    }
}

/// A readable name for a call site: the function that decided its category, else its key.
pub fn site_name(s: &SiteChange) -> String {
    match &s.frame {
        Some(f) if !f.is_empty() => frame_function(f).to_string(),
        _ => s.key.clone(),
    }
}

fn site_bytes(s: &SiteChange) -> (u64, u64) {
    (s.old.as_ref().map(|x| x.max_live_bytes).unwrap_or(0), s.new.as_ref().map(|x| x.max_live_bytes).unwrap_or(0))
}

fn oom_text(o: &OomSide) -> String {
    if o.count == 0 {
        return "none".into();
    }
    let mut parts = Vec::new();
    for (n, v) in [(o.exhausted, Verdict::Exhausted), (o.pool_or_fragmentation, Verdict::PoolOrFragmentation), (o.not_out_of_memory, Verdict::NotOutOfMemory)] {
        let what = v.label();
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    format!("{} ({})", o.count, parts.join(", "))
}

fn side_line(s: &vramtrace_analyzer::diff::SideInfo) -> String {
    let exe = s.exe.rsplit('/').next().unwrap_or(&s.exe);
    format!(
        "{}{} — {} process(es), {} events over {}, peak {}",
        s.name,
        if exe.is_empty() { String::new() } else { format!(" ({exe})") },
        s.processes,
        thousands(s.events),
        secs(s.duration_ns),
        fmt_bytes(s.peak_bytes)
    )
}

/// The one run with token markers (`old` or `new`) when only one has them: slopes are then
/// not compared.
fn only_run(g: &GrowthChange) -> Option<&'static str> {
    match g.presence.as_str() {
        "both" => None,
        "old_only" => Some("old"),
        _ => Some("new"),
    }
}

/// Categories worth a row: bytes on either side.
fn category_rows(d: &Diff) -> Vec<&vramtrace_analyzer::diff::CategoryChange> {
    d.categories.iter().filter(|c| c.change.old > 0 || c.change.new > 0).collect()
}

fn headline(d: &Diff) -> String {
    if d.changed {
        let mut what = Vec::new();
        if d.peak.changed {
            what.push(format!("peak {}", delta_text(&d.peak)));
        }
        let cats: Vec<String> = d.categories.iter().filter(|c| c.change.changed).map(|c| format!("{} {}", c.category, signed_bytes(c.change.delta))).collect();
        what.extend(cats);
        let s = &d.sites;
        if !s.changed.is_empty() || !s.new.is_empty() || !s.vanished.is_empty() {
            what.push(format!("call sites: {} changed, {} new, {} vanished", s.changed.len(), s.new.len(), s.vanished.len()));
        }
        if d.growth.iter().any(|g| g.changed) {
            what.push("growth per token changed".into());
        }
        if d.ooms.changed {
            what.push(format!("OOM failures {} → {}", d.ooms.old.count, d.ooms.new.count));
        }
        if d.runtime.max.changed {
            what.push(format!("runtime overhead {}", signed_bytes(d.runtime.max.delta)));
        }
        format!("changed: {}", what.join("; "))
    } else {
        format!("no change (every delta below {})", fmt_bytes(d.threshold_bytes))
    }
}


/// Writes diff.html, diff.md, diff.json and every chart as `<name>.svg` + `<name>.png` into
/// `out_dir` (created if missing; files of the same names are replaced).
pub fn render_diff(inp: DiffInput<'_>, out_dir: &Path) -> Result<DiffWritten, Error> {
    let charts = render_source(&inp, &RenderOptions::default())?;
    let docs = Documents {
        html: ("diff.html", diff_html(inp.diff, &charts)),
        markdown: ("diff.md", diff_markdown(inp.diff, &png_files(&charts))),
        json: ("diff.json", pretty_json("diff.json", inp.diff)?),
    };
    write_bundle(out_dir, &charts, docs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charts::{DEFAULT_HEIGHT, DEFAULT_WIDTH};
    use vramtrace_analyzer::{Category, DeviceReport, Report};
    use vramtrace_analyzer::diff::{diff, Amount, DiffOptions};
    use vramtrace_analyzer::{AttributionRow, RuleSource, Site};

    fn report(kv: u64) -> Report {
        let mut r = Report { duration_ns: 1_000_000, ..Default::default() };
        r.peak.by_category.kv_cache = kv;
        r.peak.by_category.weights = 1 << 30;
        r.peak.total_bytes = r.peak.by_category.vram_total();
        r.sites.push(Site { id: 0, key: "cudaMalloc <- a|b `x` <- main".into(), frames: vec![] });
        r.attribution.push(AttributionRow {
            site: 0,
            rule: "builtin:kv".into(),
            source: RuleSource::Builtin,
            category: Category::KvCache,
            frame: Some("kv_ctor(int) (kv.cc:3) [bin+0x10]".into()),
            allocations: 1,
            bytes_allocated: kv,
            max_live_bytes: kv,
            bytes_at_peak: kv,
            bytes_leaked: 0,
        });
        r
    }

    #[test]
    fn signed_formats() {
        assert_eq!(signed_bytes(0), "0 B");
        assert_eq!(signed_bytes(256 << 20), "+256.00 MiB");
        assert_eq!(signed_bytes(-(4 << 20)), "-4.00 MiB");
        assert_eq!(signed_per_token(32768.0), "+32.0 KiB/token");
    }

    #[test]
    fn terminal_says_no_change_or_names_the_change_and_the_gate() {
        let same = diff(&report(1 << 28), &report(1 << 28), &DiffOptions::default());
        let t = diff_terminal(&same);
        assert!(t.contains("Result: no change"), "{t}");
        assert!(!t.contains("Gate:"), "no gate given");
        let opts = DiffOptions { max_increase: vec![(Category::KvCache, Amount::Bytes(0))], ..Default::default() };
        let d = diff(&report(1 << 28), &report(1 << 29), &opts);
        let t = diff_terminal(&d);
        assert!(t.contains("kv_cache") && t.contains("+256.00 MiB +100.0%"), "{t}");
        assert!(t.contains("  changed    +256.00 MiB  kv_cache       kv_ctor(int)  (256.00 MiB → 512.00 MiB)"), "{t}");
        assert!(t.contains("Gate: FAILED — kv_cache grew by 256.00 MiB (limit 0 B)"), "{t}");
    }

    #[test]
    fn markdown_keeps_table_cells_intact() {
        let mut old = report(1 << 28);
        old.attribution[0].frame = None;
        let d = diff(&old, &report(1 << 29), &DiffOptions::default());
        let mut new = report(1 << 29);
        new.attribution[0].frame = None;
        let d2 = diff(&old, &new, &DiffOptions::default());
        assert_eq!(d.sites.changed.len(), 1);
        let md = diff_markdown(&d2, &[]);
        // The key has a pipe and backticks: inside a code span, the pipe escaped.
        assert!(md.contains("| changed | `` cudaMalloc <- a\\|b `x` <- main `` | kv_cache |"), "{md}");
        assert!(md.contains("| **total** | 1.25 GiB | 1.50 GiB | **+256.00 MiB +20.0%** |"), "{md}");
    }

    #[test]
    fn empty_reports_render_every_output() {
        let (old, new) = (Report::default(), Report::default());
        let d = diff(&old, &new, &DiffOptions::default());
        let inp = DiffInput { diff: &d, old: &old, new: &new };
        let charts = diff_charts(inp);
        assert_eq!(charts.len(), 1, "categories only: no timelines, no site changes");
        let svg = diff_chart_svg(inp, &charts[0], (DEFAULT_WIDTH, DEFAULT_HEIGHT)).unwrap();
        assert!(svg.contains("total"));
        assert!(diff_chart_png(inp, &charts[0], (400, 300)).unwrap().starts_with(b"\x89PNG"));
        let html = diff_html(&d, &[]);
        assert!(html.contains("no change") && html.ends_with("</html>\n"));
        assert!(diff_terminal(&d).contains("Result: no change"));
    }

    #[test]
    fn timeline_chart_draws_both_runs_and_a_missing_gpu() {
        let mut old = report(1 << 28);
        let mut dev = DeviceReport { device: 0, ..Default::default() };
        for (t, kv) in [(0u64, 0u64), (500_000, 1 << 28), (1_000_000, 0)] {
            let mut p = vramtrace_analyzer::TimelinePoint { t_ns: t, t_rel_ns: t, ..Default::default() };
            p.by_category.kv_cache = kv;
            p.total_bytes = kv;
            dev.timeline.push(p);
        }
        dev.peak.total_bytes = 1 << 28;
        old.devices.push(dev);
        let new = report(1 << 29);
        let d = diff(&old, &new, &DiffOptions::default());
        let inp = DiffInput { diff: &d, old: &old, new: &new };
        let c = diff_charts(inp).into_iter().find(|c| c.kind == DiffChartKind::Timeline { device: 0 }).expect("timeline chart");
        assert_eq!(c.name, "diff-timeline-gpu0");
        let svg = diff_chart_svg(inp, &c, (DEFAULT_WIDTH, DEFAULT_HEIGHT * 3 / 2)).unwrap();
        assert!(svg.contains(&crate::colors::category_hex(Category::KvCache)), "kv band in its colour");
        assert!(svg.contains("no timeline for GPU 0 in this run"), "the new run has no device 0");
        assert!(svg.contains("old: old") && svg.contains("new: new"));
    }
}

