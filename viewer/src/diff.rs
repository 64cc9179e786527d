//! Renders a [`Diff`] (issue 7): the terminal table, the Markdown summary for an issue, and
//! `-o DIR` — a self-contained `diff.html` with the delta bar charts and the two runs' timelines
//! one above the other on one time axis, `diff.md`, `diff.json`, and every chart as SVG + PNG.
//!
//! Formatting only: every number is in the `Diff`; the reports are read only for the timelines.
//! Colours, fonts, legends, escaping and byte formatting are the report viewer's own, so a
//! category has the same colour here as in every other chart.

use crate::charts::{anchored, axis_num, draw_legend, draw_row_label, draw_stacked_areas, ensure_fonts, font, font_c, frame, grid_mesh, item, lighten, xy_chart, DResult, Item, Swatch, Tx, DEFAULT_HEIGHT, DEFAULT_WIDTH};
use crate::colors::{category_color, marks, VRAM_CATEGORIES};
use crate::html::{cat_cell, inline_svg, verdict_badge, CSS};
use crate::markdown::{cell_code, cell_text, code, swatch as md_swatch};
use crate::render::Error;
use crate::util::{clip, fmt_bytes, frame_function, html_escape as esc, per_token, secs, shell_join, thousands, ByteUnit, TimeUnit};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::fmt::Write;
use std::iter::once;
use std::path::{Path, PathBuf};
use vramtrace_analyzer::diff::{AlignMode, Change, Diff, GrowthChange, OomSide, SiteChange, SlopeChange};
use vramtrace_analyzer::{Category, DeviceReport, Report};

/// Call sites listed per kind (changed, new, vanished) in the terminal and Markdown; the HTML
/// lists up to [`HTML_ROWS`]; diff.json has them all.
const TEXT_ROWS: usize = 12;
const HTML_ROWS: usize = 300;
/// Bars on the call-site delta chart.
const CHART_SITES: usize = 12;
/// Marker lines on the timelines are labelled up to this many anchors.
const LABELLED_ANCHORS: usize = 10;
/// Minimum distance in pixels between two labelled marker lines.
const LABEL_GAP_PX: i32 = 80;

// ---------------------------------------------------------------------------------------------
// Shared text helpers

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
    for (n, what) in [(o.exhausted, "device full"), (o.pool_or_fragmentation, "pool or fragmentation"), (o.not_out_of_memory, "not out of memory")] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    format!("{} ({})", o.count, parts.join(", "))
}

fn dev_name(d: i32) -> String {
    if d < 0 {
        "GPU ?".into()
    } else {
        format!("GPU {d}")
    }
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

// ---------------------------------------------------------------------------------------------
// Terminal

/// The terminal table: runs, peak by category, call sites, growth, allocations, OOMs, runtime,
/// the result and the gate.
pub fn diff_terminal(d: &Diff) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "vramtrace diff");
    let _ = writeln!(o, "  old: {}", side_line(&d.old));
    let _ = writeln!(o, "  new: {}", side_line(&d.new));
    let _ = writeln!(o, "  deltas below {} count as unchanged (noise)\n", fmt_bytes(d.threshold_bytes));

    let _ = writeln!(o, "{:<24} {:>12} {:>12}  delta", "Peak VRAM by category", "old", "new");
    let _ = writeln!(o, "  {:<22} {:>12} {:>12}  {}", "total", fmt_bytes(d.peak.old), fmt_bytes(d.peak.new), delta_text(&d.peak));
    for c in category_rows(d) {
        let name = if c.category == Category::HostPinned { "host_pinned (host)".to_string() } else { c.category.to_string() };
        let _ = writeln!(o, "  {:<22} {:>12} {:>12}  {}", name, fmt_bytes(c.change.old), fmt_bytes(c.change.new), delta_text(&c.change));
    }
    if d.devices.len() > 1 {
        for g in &d.devices {
            let _ = writeln!(o, "  {:<22} {:>12} {:>12}  {}", dev_name(g.device), fmt_bytes(g.peak.old), fmt_bytes(g.peak.new), delta_text(&g.peak));
        }
    }

    let s = &d.sites;
    let _ = writeln!(o, "\nCall sites (matched by symbol): {} changed, {} new, {} vanished, {} unchanged", s.changed.len(), s.new.len(), s.vanished.len(), s.unchanged);
    for (kind, list) in [("changed", &s.changed), ("new", &s.new), ("vanished", &s.vanished)] {
        for x in list.iter().take(TEXT_ROWS) {
            let (ob, nb) = site_bytes(x);
            let _ = writeln!(o, "  {:<8} {:>13}  {:<14} {}  ({} → {})", kind, signed_bytes(x.max_live_delta), x.category.name(), clip(&site_name(x), 70), fmt_bytes(ob), fmt_bytes(nb));
        }
        if list.len() > TEXT_ROWS {
            let _ = writeln!(o, "  … {} more {kind} in diff.json", list.len() - TEXT_ROWS);
        }
    }

    for g in &d.growth {
        growth_terminal(&mut o, g);
    }

    let a = &d.allocations;
    let moved: Vec<String> = a.by_category.iter().filter(|c| c.count.delta != 0).map(|c| format!("{} {} → {}", c.category, thousands(c.count.old), thousands(c.count.new))).collect();
    let _ = writeln!(
        o,
        "\nAllocations: {} → {}{}",
        thousands(a.total.old),
        thousands(a.total.new),
        if moved.is_empty() { String::new() } else { format!(" ({})", moved.join(", ")) }
    );
    let _ = writeln!(o, "Out-of-memory failures: {} → {}", oom_text(&d.ooms.old), oom_text(&d.ooms.new));
    let r = &d.runtime;
    if r.old_readings == 0 || r.new_readings == 0 {
        let which = match (r.old_readings, r.new_readings) {
            (0, 0) => "both runs",
            (0, _) => "the old run",
            _ => "the new run",
        };
        let _ = writeln!(o, "Runtime overhead: unknown in {which} (no driver reading)");
    } else {
        let _ = writeln!(o, "Runtime overhead (max): {} → {}  {}", fmt_bytes(r.max.old), fmt_bytes(r.max.new), delta_text(&r.max));
    }

    let _ = writeln!(o, "\nResult: {}", headline(d));
    if !d.gate.is_empty() {
        match d.gate_failure() {
            Some(f) => {
                let _ = writeln!(o, "Gate: FAILED — {}", f.trim_start_matches("gate failed: "));
            }
            None => {
                let checks: Vec<String> = d.gate.iter().map(|g| format!("{} {} ≤ {}", g.target, signed_bytes(g.delta), g.limit)).collect();
                let _ = writeln!(o, "Gate: passed ({})", checks.join(", "));
            }
        }
    }
    o
}

fn growth_terminal(o: &mut String, g: &GrowthChange) {
    match g.presence.as_str() {
        "both" => {}
        p => {
            let _ = writeln!(o, "\nGrowth per token, {}: only the {} run has token markers; not compared", dev_name(g.device), if p == "old_only" { "old" } else { "new" });
            return;
        }
    }
    let _ = writeln!(o, "\nGrowth per token, {} (up to {} tokens):", dev_name(g.device), thousands(g.tokens.max(0) as u64));
    let line = |o: &mut String, name: &str, s: &SlopeChange| {
        let change = if s.delta_bytes_per_token == 0.0 {
            "=".to_string()
        } else if !s.changed {
            format!("{} (noise)", signed_per_token(s.delta_bytes_per_token))
        } else {
            format!("{} ({} at {} tokens)", signed_per_token(s.delta_bytes_per_token), signed_bytes(s.delta_bytes_at_tokens.round() as i64), thousands(g.tokens.max(0) as u64))
        };
        let _ = writeln!(o, "  {:<22} {:>16} → {:<16}  {}", name, per_token(s.old_bytes_per_token), per_token(s.new_bytes_per_token), change);
    };
    for s in g.slopes.iter().filter(|s| s.slope.old_bytes_per_token != 0.0 || s.slope.new_bytes_per_token != 0.0) {
        line(o, s.category.name(), &s.slope);
    }
    if let Some(t) = &g.total {
        line(o, "total", t);
    }
    if g.old_predicted_max_tokens.is_some() || g.new_predicted_max_tokens.is_some() {
        let p = |t: Option<u64>| t.map(thousands).unwrap_or_else(|| "–".into());
        let _ = writeln!(o, "  predicted maximum context: {} → {} tokens", p(g.old_predicted_max_tokens), p(g.new_predicted_max_tokens));
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// The Markdown summary (`diff.md`) to paste into an issue. `pngs`: (title, file name) of the
/// charts to attach, listed at the end. Deterministic: no dates, no local paths beyond the
/// names the runs were given.
pub fn diff_markdown(d: &Diff, pngs: &[(String, String)]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "### vramtrace diff: peak {} → {} ({})\n", fmt_bytes(d.peak.old), fmt_bytes(d.peak.new), delta_text(&d.peak));
    let _ = writeln!(o, "**Result:** {}\n", cell_text(&headline(d)));
    o.push_str("| | old | new |\n|---|---|---|\n");
    let _ = writeln!(o, "| run | {} | {} |", cell_code(&d.old.name), cell_code(&d.new.name));
    if !d.old.cmdline.is_empty() || !d.new.cmdline.is_empty() {
        let _ = writeln!(o, "| command | {} | {} |", cell_code(&clip(&shell_join(&d.old.cmdline), 200)), cell_code(&clip(&shell_join(&d.new.cmdline), 200)));
    }
    let _ = writeln!(o, "| processes | {} | {} |", d.old.processes, d.new.processes);
    let _ = writeln!(o, "| duration | {} | {} |", secs(d.old.duration_ns), secs(d.new.duration_ns));
    let _ = writeln!(o, "| vramtrace | {} | {} |", cell_text(&d.old.vramtrace_version), cell_text(&d.new.vramtrace_version));

    o.push_str("\n#### Peak VRAM by category\n\n| category | old | new | delta |\n|---|---:|---:|---:|\n");
    let _ = writeln!(o, "| **total** | {} | {} | {} |", fmt_bytes(d.peak.old), fmt_bytes(d.peak.new), md_delta(&d.peak));
    for c in category_rows(d) {
        let note = if c.category == Category::HostPinned { " (host RAM)" } else { "" };
        let _ = writeln!(o, "| {} {}{note} | {} | {} | {} |", md_swatch(c.category), c.category, fmt_bytes(c.change.old), fmt_bytes(c.change.new), md_delta(&c.change));
    }
    let _ = writeln!(o, "\nDeltas below {} count as unchanged.", fmt_bytes(d.threshold_bytes));

    let s = &d.sites;
    let _ = writeln!(o, "\n#### Call sites (matched by symbol): {} changed, {} new, {} vanished, {} unchanged", s.changed.len(), s.new.len(), s.vanished.len(), s.unchanged);
    if !s.changed.is_empty() || !s.new.is_empty() || !s.vanished.is_empty() {
        o.push_str("\n| | site | category | old | new | delta |\n|---|---|---|---:|---:|---:|\n");
        for (kind, list) in [("changed", &s.changed), ("new", &s.new), ("vanished", &s.vanished)] {
            for x in list.iter().take(TEXT_ROWS) {
                let (ob, nb) = site_bytes(x);
                let _ = writeln!(o, "| {kind} | {} | {} | {} | {} | {} |", cell_code(&clip(&site_name(x), 120)), x.category, fmt_bytes(ob), fmt_bytes(nb), signed_bytes(x.max_live_delta));
            }
            if list.len() > TEXT_ROWS {
                let _ = writeln!(o, "| {kind} | … {} more in diff.json | | | | |", list.len() - TEXT_ROWS);
            }
        }
        o.push_str("\nBytes are the most each site held at any time.\n");
    }

    for g in &d.growth {
        let _ = writeln!(o, "\n#### Growth per token — {}\n", dev_name(g.device));
        if g.presence != "both" {
            let _ = writeln!(o, "Only the {} run has token markers; not compared.", if g.presence == "old_only" { "old" } else { "new" });
            continue;
        }
        o.push_str("| category | old | new | delta |\n|---|---:|---:|---:|\n");
        let row = |o: &mut String, name: String, s: &SlopeChange| {
            let delta = if s.delta_bytes_per_token == 0.0 {
                "=".to_string()
            } else if s.changed {
                format!("**{}**", signed_per_token(s.delta_bytes_per_token))
            } else {
                format!("{} (noise)", signed_per_token(s.delta_bytes_per_token))
            };
            let _ = writeln!(o, "| {name} | {} | {} | {delta} |", per_token(s.old_bytes_per_token), per_token(s.new_bytes_per_token));
        };
        for s in g.slopes.iter().filter(|s| s.slope.old_bytes_per_token != 0.0 || s.slope.new_bytes_per_token != 0.0) {
            row(&mut o, format!("{} {}", md_swatch(s.category), s.category), &s.slope);
        }
        if let Some(t) = &g.total {
            row(&mut o, "**total**".into(), t);
        }
        if g.old_predicted_max_tokens.is_some() || g.new_predicted_max_tokens.is_some() {
            let p = |t: Option<u64>| t.map(thousands).unwrap_or_else(|| "–".into());
            let _ = writeln!(o, "\nPredicted maximum context: {} → {} tokens.", p(g.old_predicted_max_tokens), p(g.new_predicted_max_tokens));
        }
    }

    o.push_str("\n#### Also compared\n\n");
    let _ = writeln!(o, "- Allocations: {} → {}", thousands(d.allocations.total.old), thousands(d.allocations.total.new));
    let _ = writeln!(o, "- Out-of-memory failures: {} → {}", oom_text(&d.ooms.old), oom_text(&d.ooms.new));
    let r = &d.runtime;
    if r.old_readings > 0 && r.new_readings > 0 {
        let _ = writeln!(o, "- Runtime overhead (max): {} → {} ({})", fmt_bytes(r.max.old), fmt_bytes(r.max.new), delta_text(&r.max));
    } else {
        o.push_str("- Runtime overhead: unknown (no driver reading in one run)\n");
    }
    if !d.gate.is_empty() {
        match d.gate_failure() {
            Some(f) => {
                let _ = writeln!(o, "- **Gate failed:** {}", cell_text(f.trim_start_matches("gate failed: ")));
            }
            None => o.push_str("- Gate: passed\n"),
        }
    }
    if !pngs.is_empty() {
        o.push_str("\n#### Charts (attach the PNG files)\n\n");
        for (title, file) in pngs {
            let _ = writeln!(o, "- {}: {}", cell_text(title), code(file));
        }
    }
    o
}

fn md_delta(c: &Change) -> String {
    if c.changed {
        format!("**{}**", delta_text(c))
    } else {
        delta_text(c)
    }
}

// ---------------------------------------------------------------------------------------------
// Charts

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

/// One chart: kind, file stem (`diff-timeline-gpu0`) and title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffChart {
    pub kind: DiffChartKind,
    pub name: String,
    pub title: String,
}

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
            name: format!("diff-timeline-{}", crate::charts::device_slug(dev)),
            title: format!("Live VRAM over time, old and new — {}", dev_name(dev)),
        });
    }
    if !d.sites.changed.is_empty() || !d.sites.new.is_empty() || !d.sites.vanished.is_empty() {
        v.push(DiffChart { kind: DiffChartKind::Sites, name: "diff-sites".into(), title: "Largest call-site changes (new − old)".into() });
    }
    v
}

/// Renders a diff chart as an SVG document of `size` pixels.
pub fn diff_chart_svg(inp: DiffInput<'_>, chart: &DiffChart, size: (u32, u32)) -> Result<String, crate::charts::ChartError> {
    ensure_fonts();
    let err = |m: String| crate::charts::ChartError { chart: chart.name.clone(), message: m };
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        draw(&root, inp, chart, Tx { bitmap: false }).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(s)
}

/// Renders a diff chart as a PNG file (bytes), with the embedded font.
pub fn diff_chart_png(inp: DiffInput<'_>, chart: &DiffChart, size: (u32, u32)) -> Result<Vec<u8>, crate::charts::ChartError> {
    crate::charts::render_png(&chart.name, size, |root| draw(root, inp, chart, Tx { bitmap: true }))
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, inp: DiffInput<'_>, chart: &DiffChart, tx: Tx) -> DResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    match chart.kind {
        DiffChartKind::Categories => draw_categories(root, inp.diff, &chart.title, tx),
        DiffChartKind::Sites => draw_sites(root, inp.diff, &chart.title, tx),
        DiffChartKind::Timeline { device } => draw_timelines(root, inp, device, &chart.title, tx),
    }
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
            root.draw(&Text::new(tx.s(&format!("no timeline for {} in this run", dev_name(device))), (lx + 8, ly + 26), font_c(13.0, RGBColor(0x55, 0x55, 0x55))))?;
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

// ---------------------------------------------------------------------------------------------
// HTML

/// A chart rendered in memory.
#[derive(Clone, Debug)]
pub struct RenderedDiffChart {
    pub chart: DiffChart,
    pub svg: String,
    pub png: Option<Vec<u8>>,
}

const DIFF_CSS: &str = ".up{color:var(--bad)}.down{color:var(--ok)}.noise{color:var(--muted)}td.k{font-weight:600;white-space:nowrap}";

fn delta_cell(c: &Change) -> String {
    let class = match (c.changed, c.delta.signum()) {
        (true, 1) => "up",
        (true, -1) => "down",
        _ => "noise",
    };
    format!("<td class=\"n {class}\">{}</td><td class=\"n {class}\">{}</td>", esc(&delta_text_short(c)), esc(&signed_pct(c.delta_pct.filter(|_| c.delta != 0))))
}

fn delta_text_short(c: &Change) -> String {
    match (c.delta, c.changed) {
        (0, _) => "=".into(),
        (d, false) => format!("{} (noise)", signed_bytes(d)),
        (d, true) => signed_bytes(d),
    }
}

/// The self-contained diff page (inline SVG and CSS, no script, no network).
pub fn diff_html(d: &Diff, charts: &[RenderedDiffChart]) -> String {
    let mut o = String::with_capacity(128 * 1024);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // No network, as report.html.
    o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n");
    let _ = writeln!(o, "<title>vramtrace diff — {} vs {}</title>", esc(&d.old.name), esc(&d.new.name));
    let _ = writeln!(o, "<style>{CSS}{DIFF_CSS}</style>\n</head>\n<body>\n<main>");
    let _ = writeln!(o, "<h1>vramtrace diff: <code>{}</code> → <code>{}</code></h1>", esc(&d.old.name), esc(&d.new.name));
    let badge = if d.changed { "<span class=\"badge b-warn\">changed</span>" } else { "<span class=\"badge b-ok\">no change</span>" };
    let _ = writeln!(o, "<p>{badge} {}</p>", esc(&headline(d)));
    if !d.gate.is_empty() {
        match d.gate_failure() {
            Some(f) => {
                let _ = writeln!(o, "<p><span class=\"badge b-bad\">gate failed</span> {}</p>", esc(f.trim_start_matches("gate failed: ")));
            }
            None => o.push_str("<p><span class=\"badge b-ok\">gate passed</span></p>\n"),
        }
    }
    o.push_str("<nav><a href=\"#runs\">Runs</a>\n<a href=\"#categories\">Peak by category</a>\n<a href=\"#timelines\">Timelines</a>\n<a href=\"#sites\">Call sites</a>\n<a href=\"#growth\">Growth per token</a>\n<a href=\"#other\">Allocations, OOMs, runtime</a>\n</nav>\n");

    // Cards: the numbers a reviewer looks for first.
    o.push_str("<div class=\"cards\">\n");
    let card = |o: &mut String, k: &str, v: String, sub: String| {
        let _ = writeln!(o, "<div class=\"card\"><div class=\"k\">{k}</div><div class=\"v\">{v}</div><div class=\"muted\">{sub}</div></div>");
    };
    card(&mut o, "Peak VRAM", esc(&delta_text_short(&d.peak)), format!("{} → {}", fmt_bytes(d.peak.old), fmt_bytes(d.peak.new)));
    if let Some(c) = d.categories.iter().filter(|c| c.change.changed).max_by_key(|c| c.change.delta.unsigned_abs()) {
        card(&mut o, "Largest category change", format!("{} {}", cat_cell(c.category), esc(&signed_bytes(c.change.delta))), format!("{} → {}", fmt_bytes(c.change.old), fmt_bytes(c.change.new)));
    }
    let s = &d.sites;
    card(&mut o, "Call sites", format!("{} / {} / {}", s.changed.len(), s.new.len(), s.vanished.len()), format!("changed / new / vanished; {} unchanged", s.unchanged));
    card(&mut o, "OOM failures", format!("{} → {}", d.ooms.old.count, d.ooms.new.count), if d.ooms.changed { "status changed".into() } else { "same status".into() });
    o.push_str("</div>\n");

    // Runs.
    o.push_str("<h2 id=\"runs\">Runs</h2>\n<div class=\"scroll\"><table class=\"kv\"><thead><tr><th></th><th>old</th><th>new</th></tr></thead><tbody>\n");
    let row = |o: &mut String, k: &str, a: String, b: String| {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{a}</td><td>{b}</td></tr>");
    };
    row(&mut o, "input", format!("<code>{}</code>", esc(&d.old.name)), format!("<code>{}</code>", esc(&d.new.name)));
    row(&mut o, "command", format!("<code>{}</code>", esc(&clip(&shell_join(&d.old.cmdline), 400))), format!("<code>{}</code>", esc(&clip(&shell_join(&d.new.cmdline), 400))));
    row(&mut o, "processes", d.old.processes.to_string(), d.new.processes.to_string());
    row(&mut o, "events", thousands(d.old.events), thousands(d.new.events));
    row(&mut o, "duration", secs(d.old.duration_ns), secs(d.new.duration_ns));
    row(&mut o, "markers", d.old.markers.to_string(), d.new.markers.to_string());
    row(&mut o, "vramtrace", esc(&d.old.vramtrace_version), esc(&d.new.vramtrace_version));
    if d.old.warnings + d.new.warnings > 0 {
        row(&mut o, "warnings", d.old.warnings.to_string(), d.new.warnings.to_string());
    }
    o.push_str("</tbody></table></div>\n");

    // Categories.
    o.push_str("<h2 id=\"categories\">Peak VRAM by category</h2>\n");
    let _ = writeln!(o, "<p>Bytes live at each run's overall peak (all GPUs, runtime overhead included). Changes below <strong>{}</strong> are noise (shown, not counted).</p>", fmt_bytes(d.threshold_bytes));
    o.push_str("<div class=\"scroll\"><table><thead><tr><th>category</th><th class=\"n\">old</th><th class=\"n\">new</th><th class=\"n\">change</th><th class=\"n\">%</th></tr></thead><tbody>\n");
    let _ = writeln!(o, "<tr><td class=\"k\">total VRAM</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{}</tr>", fmt_bytes(d.peak.old), fmt_bytes(d.peak.new), delta_cell(&d.peak));
    for c in category_rows(d) {
        let name = if c.category == Category::HostPinned { format!("{} <span class=\"muted\">(host RAM, its own peak)</span>", cat_cell(c.category)) } else { cat_cell(c.category) };
        let _ = writeln!(o, "<tr><td>{name}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{}</tr>", fmt_bytes(c.change.old), fmt_bytes(c.change.new), delta_cell(&c.change));
    }
    if d.devices.len() > 1 {
        for g in &d.devices {
            let _ = writeln!(o, "<tr><td class=\"k\">{} peak</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{}</tr>", dev_name(g.device), fmt_bytes(g.peak.old), fmt_bytes(g.peak.new), delta_cell(&g.peak));
        }
    }
    o.push_str("</tbody></table></div>\n");
    figures(&mut o, charts, |k| matches!(k, DiffChartKind::Categories));

    o.push_str("<h2 id=\"timelines\">Live VRAM over time</h2>\n");
    let _ = writeln!(
        o,
        "<p class=\"muted\">{}</p>",
        match d.alignment.mode {
            AlignMode::Markers => format!("Old above new, same scale. The x axis is the old run's clock; the new run is stretched piecewise between {} pairs of matching markers (the n-th marker of a label in one run with the n-th in the other).", d.alignment.anchors.len()),
            AlignMode::Normalized => "Old above new, same scale. The runs have no markers in common, so each is drawn over 0–100% of its own duration.".into(),
        }
    );
    figures(&mut o, charts, |k| matches!(k, DiffChartKind::Timeline { .. }));

    // Sites.
    o.push_str("<h2 id=\"sites\">Call sites</h2>\n");
    let _ = writeln!(
        o,
        "<p>Matched by symbol (the function names of the stack), so a rebuild that moves every address still matches. {} matched, {} unchanged. Bytes are the most each site held at any time; changes below the noise threshold are counted as unchanged, new and vanished sites are always listed.</p>",
        s.matched, s.unchanged
    );
    figures(&mut o, charts, |k| matches!(k, DiffChartKind::Sites));
    for (kind, title, list) in [("changed", "Changed", &s.changed), ("new", "New (only in the new run)", &s.new), ("vanished", "Vanished (only in the old run)", &s.vanished)] {
        let _ = writeln!(o, "<h3 id=\"sites-{kind}\">{title}: {}</h3>", list.len());
        if list.is_empty() {
            continue;
        }
        o.push_str("<div class=\"scroll\"><table><thead><tr><th>site</th><th>category</th><th>rule</th><th class=\"n\">old max</th><th class=\"n\">new max</th><th class=\"n\">change</th><th class=\"n\">at peak change</th><th class=\"n\">allocations</th></tr></thead><tbody>\n");
        for x in list.iter().take(HTML_ROWS) {
            let (ob, nb) = site_bytes(x);
            let rule = x.new.as_ref().or(x.old.as_ref()).map(|s| s.rule.as_str()).unwrap_or("");
            let allocs = |s: &Option<vramtrace_analyzer::diff::SiteSide>| s.as_ref().map(|s| thousands(s.allocations)).unwrap_or_else(|| "–".into());
            let cat = match (&x.old, &x.new) {
                (Some(a), Some(b)) if a.category != b.category => format!("{} → {}", cat_cell(a.category), cat_cell(b.category)),
                _ => cat_cell(x.category),
            };
            let class = if x.max_live_delta > 0 { "up" } else if x.max_live_delta < 0 { "down" } else { "noise" };
            let frames: String = x.key.split(" <- ").map(|f| format!("<li>{}</li>", esc(f))).collect();
            let _ = writeln!(
                o,
                "<tr><td><code>{}</code><details><summary>stack (key)</summary><ol class=\"frames\">{frames}</ol></details></td><td>{cat}</td><td><code class=\"nw\">{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n {class}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{} → {}</td></tr>",
                esc(&clip(&site_name(x), 160)),
                esc(rule),
                fmt_bytes(ob),
                fmt_bytes(nb),
                esc(&signed_bytes(x.max_live_delta)),
                esc(&signed_bytes(x.at_peak_delta)),
                allocs(&x.old),
                allocs(&x.new)
            );
        }
        o.push_str("</tbody></table></div>\n");
        if list.len() > HTML_ROWS {
            let _ = writeln!(o, "<p class=\"muted\">{} more in diff.json.</p>", thousands((list.len() - HTML_ROWS) as u64));
        }
    }

    // Growth.
    o.push_str("<h2 id=\"growth\">Growth per token</h2>\n");
    if d.growth.is_empty() {
        o.push_str("<p class=\"muted\">Neither run has token markers.</p>\n");
    }
    for g in &d.growth {
        let _ = writeln!(o, "<h3>{}</h3>", dev_name(g.device));
        if g.presence != "both" {
            let _ = writeln!(o, "<p class=\"muted\">Only the {} run has token markers; slopes are not compared.</p>", if g.presence == "old_only" { "old" } else { "new" });
            continue;
        }
        let _ = writeln!(o, "<p>Fitted bytes per token of context; a change counts when it amounts to at least the noise threshold at {} tokens (the largest context either run reached).</p>", thousands(g.tokens.max(0) as u64));
        o.push_str("<div class=\"scroll\"><table><thead><tr><th>category</th><th class=\"n\">old</th><th class=\"n\">new</th><th class=\"n\">change</th><th class=\"n\">at the largest context</th><th class=\"n\">R² old / new</th></tr></thead><tbody>\n");
        let line = |o: &mut String, name: String, s: &SlopeChange| {
            let class = if !s.changed { "noise" } else if s.delta_bytes_per_token > 0.0 { "up" } else { "down" };
            let r2 = |r: Option<f64>| r.map(|r| format!("{r:.3}")).unwrap_or_else(|| "–".into());
            let _ = writeln!(
                o,
                "<tr><td>{name}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n {class}\">{}</td><td class=\"n {class}\">{}</td><td class=\"n\">{} / {}</td></tr>",
                esc(&per_token(s.old_bytes_per_token)),
                esc(&per_token(s.new_bytes_per_token)),
                if s.delta_bytes_per_token == 0.0 { "=".to_string() } else { esc(&signed_per_token(s.delta_bytes_per_token)) },
                esc(&signed_bytes(s.delta_bytes_at_tokens.round() as i64)),
                r2(s.old_r2),
                r2(s.new_r2)
            );
        };
        for s in &g.slopes {
            line(&mut o, cat_cell(s.category), &s.slope);
        }
        if let Some(t) = &g.total {
            line(&mut o, "<strong>total</strong>".into(), t);
        }
        o.push_str("</tbody></table></div>\n");
        let p = |t: Option<u64>| t.map(thousands).unwrap_or_else(|| "–".into());
        let _ = writeln!(o, "<p>Predicted maximum context: {} → {} tokens.</p>", p(g.old_predicted_max_tokens), p(g.new_predicted_max_tokens));
    }

    // Other.
    o.push_str("<h2 id=\"other\">Allocations, out-of-memory failures, runtime overhead</h2>\n");
    o.push_str("<div class=\"scroll\"><table><thead><tr><th>allocations</th><th class=\"n\">old</th><th class=\"n\">new</th><th class=\"n\">change</th></tr></thead><tbody>\n");
    for c in &d.allocations.by_category {
        let _ = writeln!(o, "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:+}</td></tr>", cat_cell(c.category), thousands(c.count.old), thousands(c.count.new), c.count.delta);
    }
    let a = &d.allocations.total;
    let _ = writeln!(o, "<tr><td class=\"k\">total</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:+}</td></tr>", thousands(a.old), thousands(a.new), a.delta);
    o.push_str("</tbody></table></div>\n");
    for (side, oo) in [("old", &d.ooms.old), ("new", &d.ooms.new)] {
        let first = match &oo.first {
            Some(f) => format!(
                "; first: <code>{}</code> of {} on {} at {} {}",
                esc(&f.api),
                fmt_bytes(f.requested_bytes),
                dev_name(f.device),
                secs(f.t_rel_ns),
                verdict_badge(f.verdict)
            ),
            None => String::new(),
        };
        let _ = writeln!(o, "<p>Out-of-memory failures, {side} run: {}{first}</p>", esc(&oom_text(oo)));
    }
    let r = &d.runtime;
    if r.old_readings > 0 && r.new_readings > 0 {
        let _ = writeln!(o, "<p>Runtime overhead (driver-reported used − traced, the most any reading showed): {} → {} ({}).</p>", fmt_bytes(r.max.old), fmt_bytes(r.max.new), esc(&delta_text(&r.max)));
    } else {
        let _ = writeln!(o, "<p class=\"muted\">Runtime overhead: unknown (driver readings: {} old, {} new).</p>", r.old_readings, r.new_readings);
    }
    if !d.gate.is_empty() {
        o.push_str("<h3>Gate</h3>\n<div class=\"scroll\"><table><thead><tr><th>what</th><th class=\"n\">change</th><th class=\"n\">limit</th><th>result</th></tr></thead><tbody>\n");
        for g in &d.gate {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&g.target),
                esc(&signed_bytes(g.delta)),
                esc(&g.limit),
                if g.passed { "<span class=\"badge b-ok\">passed</span>".to_string() } else { format!("<span class=\"badge b-bad\">failed</span> {}", esc(&g.message)) }
            );
        }
        o.push_str("</tbody></table></div>\n");
    }
    let _ = writeln!(o, "<footer>Generated by vramtrace {} (diff schema {}). Every figure is in diff.json beside this file.</footer>", esc(&d.vramtrace_version), d.schema_version);
    o.push_str("</main>\n</body>\n</html>\n");
    o
}

fn figures(o: &mut String, charts: &[RenderedDiffChart], which: impl Fn(&DiffChartKind) -> bool) {
    for rc in charts.iter().filter(|c| which(&c.chart.kind)) {
        let _ = writeln!(o, "<figure id=\"chart-{}\">", esc(&rc.chart.name));
        o.push_str(&inline_svg(&rc.svg, &rc.chart.title));
        let _ = writeln!(o, "<figcaption>{} — also as {}.svg / {}.png</figcaption>\n</figure>", esc(&rc.chart.title), esc(&rc.chart.name), esc(&rc.chart.name));
    }
}

// ---------------------------------------------------------------------------------------------
// Output directory

/// What [`render_diff`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffWritten {
    pub dir: PathBuf,
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    /// (svg, png) per chart.
    pub charts: Vec<(PathBuf, PathBuf)>,
}

impl DiffWritten {
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.html.clone(), self.markdown.clone(), self.json.clone()];
        for (s, p) in &self.charts {
            v.push(s.clone());
            v.push(p.clone());
        }
        v
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// Writes diff.html, diff.md, diff.json and every chart as `<name>.svg` + `<name>.png` into
/// `out_dir` (created if missing; files of the same names are replaced).
pub fn render_diff(inp: DiffInput<'_>, out_dir: &Path) -> Result<DiffWritten, Error> {
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io { path: out_dir.to_path_buf(), source })?;
    let size = (DEFAULT_WIDTH, DEFAULT_HEIGHT);
    let mut rendered = Vec::new();
    let mut written = Vec::new();
    for c in diff_charts(inp) {
        // The two-panel timeline needs the height of two charts to stay readable.
        let sz = if matches!(c.kind, DiffChartKind::Timeline { .. }) { (size.0, size.1 * 3 / 2) } else { size };
        let svg = diff_chart_svg(inp, &c, sz)?;
        let png = diff_chart_png(inp, &c, sz)?;
        let (sp, pp) = (out_dir.join(format!("{}.svg", c.name)), out_dir.join(format!("{}.png", c.name)));
        write(&sp, svg.as_bytes())?;
        write(&pp, &png)?;
        written.push((sp, pp));
        rendered.push(RenderedDiffChart { chart: c, svg, png: Some(png) });
    }
    let html = out_dir.join("diff.html");
    write(&html, diff_html(inp.diff, &rendered).as_bytes())?;
    let markdown = out_dir.join("diff.md");
    let pngs: Vec<(String, String)> = rendered.iter().map(|r| (r.chart.title.clone(), format!("{}.png", r.chart.name))).collect();
    write(&markdown, diff_markdown(inp.diff, &pngs).as_bytes())?;
    let json = out_dir.join("diff.json");
    let mut js = serde_json::to_string_pretty(inp.diff).map_err(|e| Error::Io { path: json.clone(), source: std::io::Error::other(e) })?;
    js.push('\n');
    write(&json, js.as_bytes())?;
    Ok(DiffWritten { dir: out_dir.to_path_buf(), html, markdown, json, charts: written })
}

#[cfg(test)]
mod tests {
    use super::*;
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
