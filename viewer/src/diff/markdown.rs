//! The diff's Markdown summary (`diff.md`), to paste into an issue.

use super::{category_rows, only_run, delta_text, headline, oom_text, signed_bytes, signed_per_token, site_bytes, site_name, TEXT_ROWS};
use crate::markup::{cell_code, cell_text, code, md_swatch};
use crate::util::{clip, fmt_bytes, per_token, secs, shell_join, thousands};
use std::fmt::Write;
use vramtrace_analyzer::device_label;
use vramtrace_analyzer::diff::{Change, Diff, SlopeChange};
use vramtrace_analyzer::Category;

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
        let _ = writeln!(o, "\n#### Growth per token — {}\n", device_label(g.device));
        if let Some(run) = only_run(g) {
            let _ = writeln!(o, "Only the {run} run has token markers; not compared.");
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
