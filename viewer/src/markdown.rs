//! The Markdown summary (`summary.md`), written to be pasted into a GitHub issue: environment,
//! peak composition, OOM verdicts, growth slope, how to reproduce, and the PNG files to attach.
//!
//! Deterministic (no dates, no paths of the machine that rendered it) so it can be tested
//! against a golden file. Strings from the trace only appear inside code spans or escaped.

use crate::charts::charts;
use crate::colors::{category_hex, VRAM_CATEGORIES};
use crate::util::{fmt_bytes, pct, per_token, root_process, secs, shell_join, thousands};
use std::fmt::Write;
use vramtrace_analyzer::{Category, Report, Verdict};

/// OOM failures listed one by one; more are counted.
const MAX_OOMS: usize = 5;

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
    let n_oom = r.ooms.len();

    // Title line: the two facts a maintainer looks for first.
    let _ = writeln!(
        o,
        "### vramtrace: peak {} VRAM{}",
        fmt_bytes(r.peak.total_bytes),
        match n_oom {
            0 => String::new(),
            1 => ", 1 out-of-memory failure".into(),
            n => format!(", {n} out-of-memory failures"),
        }
    );
    o.push('\n');
    let _ = writeln!(o, "**Reproduce:**\n\n{}", code_block(&repro));
    o.push('\n');

    // Environment.
    o.push_str("#### Environment\n\n| | |\n|---|---|\n");
    if let Some(p) = root_process(r) {
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
            .map(|p| {
                let state = if !p.clean_exit {
                    "crashed or killed"
                } else if p.truncated {
                    "exited, trace truncated"
                } else {
                    "exited cleanly"
                };
                format!("pid {} ({state})", p.pid)
            })
            .collect();
        let _ = writeln!(o, "| process{} | {} |", if r.processes.len() > 1 { "es" } else { "" }, cell_text(&procs.join(", ")));
    }
    for d in &r.devices {
        let name = if d.device < 0 { "GPU ?".to_string() } else { format!("GPU {}", d.device) };
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
    let host = r.processes.first().map(|p| p.hostname.as_str()).unwrap_or("");
    if !host.is_empty() {
        let _ = writeln!(o, "| host | {} |", cell_code(host));
    }
    let _ = writeln!(o, "| vramtrace | {} |", cell_code(if r.vramtrace_version.is_empty() { "unknown" } else { &r.vramtrace_version }));
    let _ = writeln!(o, "| trace | {}, {} events |", secs(r.duration_ns), thousands(r.events));
    o.push('\n');

    // Peak composition.
    let p = &r.peak;
    let total = p.by_category.vram_total();
    let _ = writeln!(o, "#### Peak VRAM: {} at {} (all GPUs)\n", fmt_bytes(total), secs(p.t_rel_ns));
    let mut logged = [0u64; Category::COUNT];
    for l in &r.log_lines {
        logged[l.category.index()] += l.logged_bytes;
    }
    let with_log = !r.log_lines.is_empty();
    if with_log {
        o.push_str("| category | at the peak | share | runner's log |\n|---|---:|---:|---:|\n");
    } else {
        o.push_str("| category | at the peak | share |\n|---|---:|---:|\n");
    }
    let mut rows: Vec<Category> = VRAM_CATEGORIES.iter().copied().filter(|&c| p.by_category.get(c) > 0 || logged[c.index()] > 0).collect();
    rows.sort_by_key(|&c| std::cmp::Reverse(p.by_category.get(c)));
    for c in rows {
        let b = p.by_category.get(c);
        let _ = write!(o, "| {} {} | {} | {} |", swatch(c), c.name(), fmt_bytes(b), pct(b, total));
        if with_log {
            let l = logged[c.index()];
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

    // OOM verdicts.
    if n_oom == 0 {
        o.push_str("#### Out-of-memory failures: none\n\n");
    } else {
        let _ = writeln!(o, "#### Out-of-memory failures: {n_oom}\n");
        for f in r.ooms.iter().take(MAX_OOMS) {
            let verdict = match f.verdict {
                Verdict::Exhausted => "device full",
                Verdict::PoolOrFragmentation => "pool or fragmentation",
                Verdict::NotOutOfMemory => "not out of memory",
            };
            let dev = if f.device < 0 { "GPU ?".to_string() } else { format!("GPU {}", f.device) };
            let _ = write!(o, "- **{verdict}**: {} of {} failed at {} (pid {}, {dev}, result {}).", code(&f.api), fmt_bytes(f.requested_bytes), secs(f.t_rel_ns), f.pid, f.result);
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

    // Growth slope.
    o.push_str("#### Growth per token\n\n");
    let fitted: Vec<_> = r.growth.iter().filter(|g| g.total_fit.is_some() || !g.fits.is_empty()).collect();
    if fitted.is_empty() {
        o.push_str("Not measured (no token-count markers in the trace).\n\n");
    } else {
        for g in fitted {
            let dev = if g.device < 0 { "GPU ?".to_string() } else { format!("GPU {}", g.device) };
            let _ = write!(o, "- {dev}:");
            if let Some(f) = &g.total_fit {
                let _ = write!(o, " **{}** total (R² {:.3}, {} points)", per_token(f.slope_bytes_per_token), f.r2, g.points.len());
            }
            let mut fits: Vec<_> = g.fits.iter().filter(|f| f.fit.slope_bytes_per_token.abs() >= 1.0 && f.category != Category::HostPinned).collect();
            fits.sort_by(|a, b| b.fit.slope_bytes_per_token.abs().total_cmp(&a.fit.slope_bytes_per_token.abs()));
            if !fits.is_empty() {
                let parts: Vec<String> = fits.iter().take(4).map(|f| format!("{} {}", f.category.name(), per_token(f.fit.slope_bytes_per_token))).collect();
                let _ = write!(o, "; {}", parts.join(", "));
            }
            o.push('.');
            match (g.predicted_max_tokens, g.capacity_bytes) {
                (Some(t), Some(c)) => {
                    let _ = write!(o, " Predicted out of memory at ≈ {} tokens (capacity {}).", thousands(t), fmt_bytes(c));
                }
                (Some(t), None) => {
                    let _ = write!(o, " Predicted out of memory at ≈ {} tokens.", thousands(t));
                }
                _ => {}
            }
            if let Some(oo) = &g.oom {
                let s = crate::html::oom_step(oo);
                let mut c = s.chars();
                let s: String = c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default();
                let _ = write!(o, " {s}.");
            }
            o.push('\n');
        }
        o.push('\n');
    }

    // Leaks and anomalies: one line each, details in the HTML.
    let leaked: u64 = r.leaks.iter().filter(|l| l.device.is_some()).map(|l| l.bytes).sum();
    let anomalies: u64 = r.anomalies.iter().map(|a| a.count).sum();
    if leaked > 0 || anomalies > 0 {
        let _ = writeln!(o, "Also: {} of VRAM never freed by the program ({} sites); {} anomal{} in the trace.\n", fmt_bytes(leaked), r.leaks.iter().filter(|l| l.device.is_some()).count(), thousands(anomalies), if anomalies == 1 { "y" } else { "ies" });
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

/// A coloured square in the category's colour (GitHub renders `$…$` math; `\color` takes the
/// same hex as the charts).
pub(crate) fn swatch(c: Category) -> String {
    format!("$\\color{{{}}}\\blacksquare$", category_hex(c))
}

/// An inline code span holding `s` verbatim (fence longer than any backtick run inside).
pub(crate) fn code(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut run = 0;
    let mut longest = 0;
    for ch in s.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    if s.starts_with('`') || s.ends_with('`') || longest > 0 {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// A fenced `sh` block holding one line verbatim (fence longer than any backtick run in it).
fn code_block(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}sh\n{s}\n{fence}")
}

/// A code span inside a table cell: GFM splits cells on `|` even inside code, so it is escaped.
pub(crate) fn cell_code(s: &str) -> String {
    code(s).replace('|', "\\|")
}

pub(crate) fn cell_text(s: &str) -> String {
    text(s).replace('|', "\\|")
}

/// Plain text with Markdown and HTML metacharacters escaped.
fn text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '$' | '~' => {
                o.push('\\');
                o.push(ch);
            }
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_backticks_and_pipes() {
        assert_eq!(code("ls -l"), "`ls -l`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(cell_code("a|b"), "`a\\|b`");
        assert_eq!(text("a*b_<x>"), "a\\*b\\_\\<x\\>");
        assert_eq!(code_block("run -- a"), "```sh\nrun -- a\n```");
        assert_eq!(code_block("x ```` y"), "`````sh\nx ```` y\n`````");
    }
}
