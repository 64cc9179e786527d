//! One wording per figure: the phrases the terminal summary, report.html, summary.md and the
//! charts share, so a reader finds the same words and numbers in each. Labels without numbers
//! (devices, verdicts, process exits) are the analyzer's own (`device_label`, `Verdict::label`,
//! `ProcessReport::exit_label`).

use crate::util::{fmt_bytes, per_token, secs, thousands};
use vramtrace_analyzer::{Categories, Category, Fit, GrowthOom, GrowthReport, NeverFreed, Oom};

/// What every output says when no driver reading gave the runtime overhead, and why.
pub const RUNTIME_NOT_INCLUDED: &str = "runtime overhead not included";
pub const NO_DRIVER_READING: &str = "no driver reading";

/// `runtime overhead not included (no driver reading)`.
pub fn runtime_not_included() -> String {
    format!("{RUNTIME_NOT_INCLUDED} ({NO_DRIVER_READING})")
}

/// `1 call site`, `5 call sites`.
pub fn count(n: u64, what: &str) -> String {
    format!("{} {what}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// `5.55 GiB of VRAM from 5 call sites; 16.00 MiB of pinned host memory from 1 call site` (each
/// part only when there is something); `None` when everything was freed.
pub fn never_freed(n: &NeverFreed) -> Option<String> {
    let mut parts = Vec::new();
    if n.vram_bytes > 0 {
        parts.push(format!("{} of VRAM from {}", fmt_bytes(n.vram_bytes), count(n.vram_sites, "call site")));
    }
    if n.host_pinned_bytes > 0 {
        parts.push(format!("{} of pinned host memory from {}", fmt_bytes(n.host_pinned_bytes), count(n.host_pinned_sites, "call site")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// A fitted slope with its quality: `34.0 KiB/token (R² 0.999)`.
pub fn slope(f: &Fit) -> String {
    format!("{} (R² {:.3})", per_token(f.slope_bytes_per_token), f.r2)
}

/// One failed allocation: `+1.900 s pid 7 GPU 0 cuMemCreate 1.00 GiB: device full — reason`.
pub fn oom(x: &Oom) -> String {
    format!("+{} pid {} {} {} {}: {} — {}", secs(x.t_rel_ns), x.pid, x.memory_label(), x.api, fmt_bytes(x.requested_bytes), x.verdict.label(), x.reason)
}

/// The growing categories of a growth report, steepest first: `kv_cache 32.0 KiB/token (R²
/// 1.000), compute …`, or `no growth`.
pub fn growth_fits(g: &GrowthReport) -> String {
    let parts: Vec<String> = g.fits.iter().filter(|f| f.fit.grows()).map(|f| format!("{} {}", f.category.name(), slope(&f.fit))).collect();
    if parts.is_empty() {
        "no growth".into()
    } else {
        parts.join(", ")
    }
}

/// The total's fit: `total 34.0 KiB/token (R² 0.999); predicted out of memory at ≈ N tokens
/// (capacity 8.00 GiB)`, with the runtime caveat when no driver reading gave it.
pub fn growth_total(g: &GrowthReport) -> Option<String> {
    let t = g.total_fit.as_ref()?;
    let mut line = format!("total {}", slope(t));
    if let Some(n) = g.predicted_max_tokens {
        line.push_str(&format!("; {}", predicted_oom(n)));
        if let Some(c) = g.capacity_bytes {
            line.push_str(&format!(" (capacity {})", fmt_bytes(c)));
        }
    }
    if !g.runtime_included {
        line.push_str(&format!("; {}", runtime_not_included()));
    }
    Some(line)
}

/// What a GPU has in use now: `3.50 GiB of 8.00 GiB (43.8%) in use`, or `3.50 GiB in use
/// (capacity unknown)`.
pub fn in_use(used: u64, capacity: Option<u64>, pct: Option<f64>) -> String {
    match capacity {
        Some(c) => format!("{} of {} ({}) in use", fmt_bytes(used), fmt_bytes(c), crate::util::pct(pct)),
        None => format!("{} in use (capacity unknown)", fmt_bytes(used)),
    }
}

/// `predicted out of memory at ≈ 51,681 tokens`; at 0 tokens, that nothing fits at all.
pub fn predicted_oom(tokens: u64) -> String {
    if tokens == 0 {
        return NO_CONTEXT_FITS.to_string();
    }
    format!("predicted out of memory at ≈ {} tokens", thousands(tokens))
}

/// A capacity below the memory that does not grow with the context.
pub const NO_CONTEXT_FITS: &str = "does not fit at all: the memory that does not grow with the context already exceeds the capacity";

/// "an allocation failed in the step to N tokens (last completed step: M tokens)".
pub fn growth_oom(o: &GrowthOom) -> String {
    let mut s = match o.step_tokens {
        Some(t) => format!("an allocation failed in the step to {} tokens", thousands(t.max(0) as u64)),
        None => format!("an allocation failed outside any step, at {}", secs(o.t_rel_ns)),
    };
    if let Some(t) = o.last_completed_tokens {
        s.push_str(&format!(" (last completed step: {} tokens)", thousands(t.max(0) as u64)));
    }
    s
}

/// One category of a composition, as the terminal shows it: name, bytes, share of the VRAM
/// total, and a bar of that share.
pub fn category_row(c: Category, bytes: u64, of: &Categories) -> String {
    format!("  {:<16} {:>12} {:>6}  {}", c.name(), fmt_bytes(bytes), crate::util::pct(of.share_pct(bytes)), bar(bytes, of.vram_total(), 30))
}

fn bar(part: u64, whole: u64, width: usize) -> String {
    if whole == 0 {
        return String::new();
    }
    let n = ((part as f64 / whole as f64) * width as f64).round() as usize;
    "█".repeat(n.min(width))
}

/// `s` with its first letter upper-cased (a phrase above at the start of a sentence).
pub fn sentence(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases() {
        assert_eq!(count(1, "call site"), "1 call site");
        assert_eq!(count(1200, "call site"), "1,200 call sites");
        assert_eq!(never_freed(&NeverFreed::default()), None);
        let n = NeverFreed { vram_bytes: 3 << 30, vram_sites: 5, host_pinned_bytes: 16 << 20, host_pinned_sites: 1 };
        assert_eq!(never_freed(&n).unwrap(), "3.00 GiB of VRAM from 5 call sites; 16.00 MiB of pinned host memory from 1 call site");
        assert_eq!(slope(&Fit { intercept_bytes: 0.0, slope_bytes_per_token: 32768.0, r2: 1.0 }), "32.0 KiB/token (R² 1.000)");
        let o = GrowthOom { t_ns: 0, t_rel_ns: 0, step_tokens: Some(33792), last_completed_tokens: Some(32768) };
        assert_eq!(sentence(&growth_oom(&o)), "An allocation failed in the step to 33,792 tokens (last completed step: 32,768 tokens)");
    }
}
