//! The Markdown summary (`summary.md`), written to be pasted into a GitHub issue: environment,
//! peak composition, OOM verdicts, growth slope, how to reproduce, and the PNG files to attach.
//!
//! Deterministic (no dates, no paths of the machine that rendered it) so it can be tested
//! against a golden file. Strings from the trace only appear inside code spans or escaped.

use crate::charts::charts;
use crate::colors::VRAM_CATEGORIES;
use crate::markup::{cell_code, cell_text, code, code_block, md_swatch, text};
use crate::util::{fmt_bytes, pct, per_token, secs, shell_join, thousands};
use crate::words;
use std::fmt::Write;
use vramtrace_analyzer::{device_label, Category, Report};

/// OOM failures listed one by one; more are counted.
const MAX_OOMS: usize = 5;
/// Growing categories named per GPU.
const MAX_FITS: usize = 4;

/// The Markdown summary; `repro` is the reproduce line (empty: `vramtrace run -- <command>` from
/// the traced root process). Links the PNG of every chart by its file name.
pub fn markdown_summary(report: &Report, repro: &str) -> String {
    let files: Vec<(String, String)> = charts(report).into_iter().map(|c| (c.title, format!("{}.png", c.name))).collect();
    markdown_with_charts(report, repro, &files)
}

/// As [`markdown_summary`], with the chart files given as (title, file name).
pub(crate) fn markdown_with_charts(r: &Report, repro: &str, files: &[(String, String)]) -> String {
    let mut o = String::new();
    let repro = if repro.trim().is_empty() { crate::util::default_repro(r) } else { repro.trim().to_string() };
    // Title line: the two facts a maintainer looks for first.
    let _ = writeln!(
        o,
        "### vramtrace: peak {} VRAM{}",
        fmt_bytes(r.peak.total_bytes),
        match r.ooms.len() {
            0 => String::new(),
            1 => ", 1 out-of-memory failure".into(),
            n => format!(", {n} out-of-memory failures"),
        }
    );
    o.push('\n');
    let _ = writeln!(o, "**Reproduce:**\n\n{}", code_block(&repro));
    o.push('\n');
    environment(&mut o, r);
    peak(&mut o, r);
    ooms(&mut o, r);
    growth(&mut o, r);
    // Leaks and anomalies: one line each, details in the HTML.
    if let Some(n) = words::never_freed(&r.summary.never_freed) {
        let _ = writeln!(o, "Never freed by the program: {n}.\n");
    }
    if r.summary.anomaly_count > 0 {
        let _ = writeln!(o, "Anomalies in the trace: {} (see report.html).\n", thousands(r.summary.anomaly_count));
    }

    if !files.is_empty() {
        o.push_str("#### Charts\n\nAttach these files from the report directory (GitHub shows PNG, not SVG):\n\n");
        for (title, file) in files {
            let _ = writeln!(o, "- [{}]({})", text(title), file);
        }
        o.push('\n');
    }
    let _ = writeln!(o, "<sub>vramtrace {} · report schema {} · full report: report.html, report.json</sub>", text(&r.vramtrace_version), r.schema_version);
    o
}

fn environment(o: &mut String, r: &Report) {
    o.push_str("#### Environment\n\n| | |\n|---|---|\n");
    if let Some(p) = r.root_process() {
        if !p.cmdline.is_empty() {
            let _ = writeln!(o, "| command | {} |", cell_code(&shell_join(&p.cmdline)));
        }
        if !p.exe.is_empty() {
            let _ = writeln!(o, "| executable | {} |", cell_code(&p.exe));
        }
    }
    if !r.processes.is_empty() {
        let procs: Vec<String> = r
            .processes
            .iter()
            .map(|p| format!("pid {} ({})", p.pid, p.exit_label()))
            .collect();
        let _ = writeln!(o, "| process{} | {} |", if r.processes.len() > 1 { "es" } else { "" }, cell_text(&procs.join(", ")));
    }
    for d in &r.devices {
        let name = device_label(d.device);
        let cap = match d.capacity_bytes {
            Some(c) => format!("capacity {} ({})", fmt_bytes(c), d.capacity_source),
            None => "capacity unknown".into(),
        };
        let model = match (&d.name, &d.driver_version) {
            (Some(n), Some(v)) => format!("{n}, CUDA driver {v}, "),
            (Some(n), None) => format!("{n}, "),
            (None, Some(v)) => format!("CUDA driver {v}, "),
            (None, None) => String::new(),
        };
        let _ = writeln!(o, "| {name} | {}{}, peak {} |", cell_text(&model), cell_text(&cap), fmt_bytes(d.peak.total_bytes));
    }
    let host = r.root_process().map(|p| p.hostname.as_str()).unwrap_or("");
    if !host.is_empty() {
        let _ = writeln!(o, "| host | {} |", cell_code(host));
    }
    let _ = writeln!(o, "| vramtrace | {} |", cell_code(if r.vramtrace_version.is_empty() { "unknown" } else { &r.vramtrace_version }));
    let _ = writeln!(o, "| trace | {}, {} events |", secs(r.duration_ns), thousands(r.events));
    o.push('\n');
}

fn peak(o: &mut String, r: &Report) {
    let p = &r.peak;
    let total = p.total_bytes;
    let _ = writeln!(o, "#### Peak VRAM: {} at {} (all GPUs)\n", fmt_bytes(total), secs(p.t_rel_ns));
    let logged = &r.summary.logged_by_category;
    let with_log = !r.log_lines.is_empty();
    if with_log {
        o.push_str("| category | at the peak | share | runner's log |\n|---|---:|---:|---:|\n");
    } else {
        o.push_str("| category | at the peak | share |\n|---|---:|---:|\n");
    }
    let mut rows: Vec<Category> = VRAM_CATEGORIES.iter().copied().filter(|&c| p.by_category.get(c) > 0 || logged.get(c) > 0).collect();
    rows.sort_by_key(|&c| std::cmp::Reverse(p.by_category.get(c)));
    for c in rows {
        let b = p.by_category.get(c);
        let _ = write!(o, "| {} {} | {} | {} |", md_swatch(c), c.name(), fmt_bytes(b), pct(p.by_category.share_pct(b)));
        if with_log {
            let l = logged.get(c);
            let _ = write!(o, " {} |", if l > 0 { fmt_bytes(l) } else { String::new() });
        }
        o.push('\n');
    }
    let _ = write!(o, "| **total** | **{}** | 100% |", fmt_bytes(total));
    o.push_str(if with_log { " |\n" } else { "\n" });
    if r.host.peak_bytes > 0 {
        let _ = writeln!(o, "\nPinned host memory (not VRAM): peak {}.", fmt_bytes(r.host.peak_bytes));
    }
    o.push('\n');
}

fn ooms(o: &mut String, r: &Report) {
    let n_oom = r.ooms.len();
    if n_oom == 0 {
        o.push_str("#### Out-of-memory failures: none\n\n");
    } else {
        let _ = writeln!(o, "#### Out-of-memory failures: {n_oom}\n");
        for f in r.ooms.iter().take(MAX_OOMS) {
            let _ = write!(o, "- **{}**: {} of {} failed at {} (pid {}, {}, result {}).", f.verdict.label(), code(&f.api), fmt_bytes(f.requested_bytes), secs(f.t_rel_ns), f.pid, f.memory_label(), f.result);
            match (f.driver_free_bytes, f.driver_total_bytes) {
                (Some(fr), Some(t)) => {
                    let _ = write!(o, " Free {} of {} ({}).", fmt_bytes(fr), fmt_bytes(t), text(&f.free_source));
                }
                (Some(fr), None) => {
                    let _ = write!(o, " Free {} ({}).", fmt_bytes(fr), text(&f.free_source));
                }
                _ => {}
            }
            let _ = write!(o, " Live {}, pools held {}", fmt_bytes(f.by_category.vram_total()), fmt_bytes(f.pool_retained_bytes));
            if f.framework_cache_bytes > 0 {
                let _ = write!(o, ", framework cache {}", fmt_bytes(f.framework_cache_bytes));
            }
            o.push('.');
            if let Some(g) = &f.grew_most {
                let _ = write!(o, " {} grew most (+{} in the {} before).", g.category.name(), fmt_bytes(g.bytes), secs(g.window_ns));
            }
            if !f.reason.is_empty() {
                let end = if f.reason.ends_with(['.', '!', '?']) { "" } else { "." };
                let _ = write!(o, " {}{end}", text(&f.reason));
            }
            o.push('\n');
        }
        if n_oom > MAX_OOMS {
            let _ = writeln!(o, "- … and {} more (see report.html).", n_oom - MAX_OOMS);
        }
        o.push('\n');
    }
}

fn growth(o: &mut String, r: &Report) {
    o.push_str("#### Growth per token\n\n");
    let fitted: Vec<_> = r.growth.iter().filter(|g| g.total_fit.is_some() || !g.fits.is_empty()).collect();
    if fitted.is_empty() {
        o.push_str("Not measured (no token-count markers in the trace).\n\n");
    } else {
        for g in fitted {
            let _ = write!(o, "- {} ({} points):", device_label(g.device), g.points.len());
            let mut parts: Vec<String> = g.total_fit.iter().map(|f| format!("total **{}** (R² {:.3})", per_token(f.slope_bytes_per_token), f.r2)).collect();
            // The analyzer's order: steepest first.
            parts.extend(g.fits.iter().filter(|f| f.fit.grows()).take(MAX_FITS).map(|f| format!("{} {}", f.category.name(), words::slope(&f.fit))));
            let _ = write!(o, " {}.", parts.join("; "));
            if let Some(t) = g.predicted_max_tokens {
                let _ = write!(o, " {}", words::sentence(&words::predicted_oom(t)));
                if let Some(c) = g.capacity_bytes {
                    let _ = write!(o, " (capacity {})", fmt_bytes(c));
                }
                o.push('.');
            }
            if !g.runtime_included {
                let _ = write!(o, " {}.", words::sentence(&words::runtime_not_included()));
            }
            if let Some(oo) = &g.oom {
                let _ = write!(o, " {}.", words::sentence(&words::growth_oom(oo)));
            }
            o.push('\n');
        }
        o.push('\n');
    }
}
