//! The diff's terminal table: runs, peak by category, call sites, growth, allocations, OOMs,
//! runtime, the result and the gate.

use super::{category_rows, only_run, delta_text, headline, oom_text, side_line, signed_bytes, signed_per_token, site_bytes, site_name, TEXT_ROWS};
use crate::util::{clip, fmt_bytes, per_token, thousands};
use std::fmt::Write;
use vramtrace_analyzer::device_label;
use vramtrace_analyzer::diff::{Diff, GrowthChange, SlopeChange};
use vramtrace_analyzer::Category;

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
            let _ = writeln!(o, "  {:<22} {:>12} {:>12}  {}", device_label(g.device), fmt_bytes(g.peak.old), fmt_bytes(g.peak.new), delta_text(&g.peak));
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
    if let Some(run) = only_run(g) {
        let _ = writeln!(o, "\nGrowth per token, {}: only the {run} run has token markers; not compared", device_label(g.device));
        return;
    }
    let _ = writeln!(o, "\nGrowth per token, {} (up to {} tokens):", device_label(g.device), thousands(g.tokens.max(0) as u64));
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
