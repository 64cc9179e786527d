//! The terminal summary printed by `vramtrace run` and `vramtrace report`: what filled the GPU
//! (peak by category), why allocations failed (one line per OOM), who allocated (top call
//! sites), growth per token, and how many anomalies. Formatting only: every number comes from
//! the report.

use std::fmt::Write;
use vramtrace_analyzer::{fmt_bytes, Category, Report, Verdict};

const WIDTH: usize = 140;

fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

fn bar(part: u64, whole: u64, width: usize) -> String {
    if whole == 0 {
        return String::new();
    }
    let n = ((part as f64 / whole as f64) * width as f64).round() as usize;
    "█".repeat(n.min(width))
}

/// A short description of a call site: the frame that decided its category when there is one,
/// else its innermost frame.
fn site_label(r: &Report, site: usize, rule: &str) -> String {
    let decided = r.attribution.iter().find(|a| a.site == site && a.rule == rule).and_then(|a| a.frame.clone());
    let s = r.sites.get(site);
    decided
        .or_else(|| s.and_then(|s| s.frames.first().cloned()))
        .or_else(|| s.map(|s| s.key.clone()))
        .unwrap_or_else(|| format!("site {site}"))
}

/// The summary as plain text (UTF-8, no colours), lines at most ~140 columns except OOM reasons.
pub fn terminal_summary(r: &Report) -> String {
    let mut o = String::new();
    let gpus = r.devices.iter().filter(|d| d.peak.total_bytes > 0 || d.capacity_bytes.is_some()).count();
    let _ = writeln!(
        o,
        "vramtrace {} — {} process(es), {} GPU(s), {} events over {}",
        r.vramtrace_version,
        r.processes.len(),
        gpus,
        r.events,
        secs(r.duration_ns)
    );
    for p in &r.processes {
        let status = if p.clean_exit { "exited" } else { "crashed or killed" };
        let cut = if p.truncated { ", trace cut short" } else { "" };
        let cmd = if p.cmdline.is_empty() { p.exe.clone() } else { p.cmdline.join(" ") };
        let _ = writeln!(o, "  pid {} {} ({status}{cut}): {}", p.pid, clip(&cmd, 60), fmt_bytes(p.peak_bytes));
    }

    for d in r.devices.iter().filter(|d| d.peak.total_bytes > 0 || d.capacity_bytes.is_some()) {
        let cap = d.capacity_bytes.map(|c| format!(" of {} ({})", fmt_bytes(c), pct(d.peak.total_bytes, c))).unwrap_or_default();
        let _ = writeln!(o, "\nGPU {}: peak {}{} at +{}", d.device, fmt_bytes(d.peak.total_bytes), cap, secs(d.peak.t_rel_ns));
        for (c, b) in d.peak.by_category.sorted() {
            if c == Category::HostPinned {
                continue;
            }
            let _ = writeln!(o, "  {:<16} {:>12} {:>6}  {}", c.name(), fmt_bytes(b), pct(b, d.peak.total_bytes), bar(b, d.peak.total_bytes, 30));
        }
        let f = &d.fragmentation;
        if f.vmm_reserved_peak_bytes > 0 || f.pool_retained_peak_bytes > 0 {
            let _ = writeln!(
                o,
                "  VMM reserved {} / mapped {} (peak), pools retained up to {}, BFC fragmentation max {:.2}",
                fmt_bytes(f.vmm_reserved_peak_bytes),
                fmt_bytes(f.vmm_mapped_peak_bytes),
                fmt_bytes(f.pool_retained_peak_bytes),
                f.bfc_max
            );
        }
    }
    if gpus > 1 {
        let _ = writeln!(o, "\nAll GPUs: peak {} at +{}", fmt_bytes(r.peak.total_bytes), secs(r.peak.t_rel_ns));
    }
    if r.host.peak_bytes > 0 {
        let _ = writeln!(o, "Pinned host memory: peak {} (not VRAM)", fmt_bytes(r.host.peak_bytes));
    }

    if !r.peak.top_sites.is_empty() {
        let _ = writeln!(o, "\nTop call sites at the peak:");
        for s in r.peak.top_sites.iter().take(8) {
            let label = site_label(r, s.site, &s.rule);
            let line = format!("  {:>12}  {:<15} [{}] {}", fmt_bytes(s.bytes), s.category.name(), s.rule, label);
            let _ = writeln!(o, "{}", clip(&line, WIDTH));
        }
    }

    if !r.ooms.is_empty() {
        let _ = writeln!(o, "\nFailed allocations: {}", r.ooms.len());
        for x in r.ooms.iter().take(10) {
            let verdict = match x.verdict {
                Verdict::Exhausted => "EXHAUSTED",
                Verdict::PoolOrFragmentation => "POOL/FRAGMENTATION",
                Verdict::NotOutOfMemory => "OTHER ERROR",
            };
            let dev = if x.device >= 0 { format!("GPU {}", x.device) } else { "host".into() };
            let line = format!(
                "  +{} pid {} {dev} {} {}: {verdict} — {}",
                secs(x.t_rel_ns),
                x.pid,
                x.api,
                fmt_bytes(x.requested_bytes),
                x.reason
            );
            let _ = writeln!(o, "{line}");
        }
        if r.ooms.len() > 10 {
            let _ = writeln!(o, "  … and {} more", r.ooms.len() - 10);
        }
    }

    for g in &r.growth {
        let mut parts: Vec<String> = g
            .fits
            .iter()
            .filter(|f| f.fit.slope_bytes_per_token.abs() >= 1.0)
            .map(|f| format!("{} {}/token (R² {:.3})", f.category.name(), fmt_bytes(f.fit.slope_bytes_per_token.round().max(0.0) as u64), f.fit.r2))
            .collect();
        if parts.is_empty() {
            parts.push("no growth".into());
        }
        let _ = writeln!(o, "\nGrowth per token, GPU {} ({} samples): {}", g.device, g.points.len(), parts.join(", "));
        if let Some(t) = &g.total_fit {
            let pred = match (g.predicted_max_tokens, g.capacity_bytes) {
                (Some(n), Some(c)) => format!("; this GPU ({}) runs out at ~{n} tokens", fmt_bytes(c)),
                _ => String::new(),
            };
            let rt = if g.runtime_included { "" } else { " (runtime overhead unknown: no cuMemGetInfo)" };
            let _ = writeln!(o, "  total {:.0} bytes/token{pred}{rt}", t.slope_bytes_per_token);
        }
        if let Some(oom) = &g.oom {
            let step = oom.step_tokens.map_or("outside any token step".to_string(), |t| format!("in the {t} token step"));
            let done = oom.last_completed_tokens.map_or(String::new(), |t| format!(" (last step completed: {t} tokens)"));
            let _ = writeln!(o, "  out of memory at +{} {step}{done}", secs(oom.t_rel_ns));
        }
    }

    if !r.leaks.is_empty() {
        let total: u64 = r.leaks.iter().map(|l| l.bytes).sum();
        let sites: std::collections::BTreeSet<usize> = r.leaks.iter().map(|l| l.site).collect();
        let _ = writeln!(o, "\nNever freed by the program: {} from {} call site(s)", fmt_bytes(total), sites.len());
    }

    let n: u64 = r.anomalies.iter().map(|a| a.count).sum();
    if n > 0 {
        let kinds: Vec<String> = r.anomalies.iter().map(|a| format!("{} {}", a.kind, a.count)).collect();
        let _ = writeln!(o, "\nAnomalies: {n} ({})", kinds.join(", "));
    } else {
        let _ = writeln!(o, "\nAnomalies: 0");
    }
    for w in r.warnings.iter().take(5) {
        let _ = writeln!(o, "warning: {}", clip(w, WIDTH));
    }
    if r.warnings.len() > 5 {
        let _ = writeln!(o, "warning: … and {} more", r.warnings.len() - 5);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use vramtrace_analyzer::*;

    fn sample() -> Report {
        let gib = 1u64 << 30;
        let cats = Categories { weights: 6 * gib, kv_cache: gib, runtime: gib / 2, ..Categories::default() };
        let peak = Peak { t_rel_ns: 1_500_000_000, total_bytes: cats.vram_total(), by_category: cats, top_sites: vec![SiteBytes { site: 0, rule: "builtin:llama.model_load_tensors".into(), category: Category::Weights, bytes: 6 * gib }], ..Peak::default() };
        Report {
            vramtrace_version: "0.1.0".into(),
            events: 1234,
            duration_ns: 2_000_000_000,
            processes: vec![ProcessReport { pid: 7, cmdline: vec!["llama-server".into(), "-m".into(), "m.gguf".into()], clean_exit: false, peak_bytes: 7 * gib, ..ProcessReport::default() }],
            devices: vec![DeviceReport { device: 0, capacity_bytes: Some(8 * gib), peak: peak.clone(), ..DeviceReport::default() }],
            peak,
            sites: vec![Site { id: 0, key: "llama_model::load_tensors".into(), frames: vec!["ggml_cuda_device_malloc (ggml-cuda.cu:100) [libggml-cuda.so+0x1234]".into()] }],
            attribution: vec![AttributionRow {
                site: 0,
                rule: "builtin:llama.model_load_tensors".into(),
                source: RuleSource::Builtin,
                category: Category::Weights,
                frame: Some("llama_model::load_tensors(llama_model_loader&)".into()),
                allocations: 1,
                bytes_allocated: 6 * gib,
                max_live_bytes: 6 * gib,
                bytes_at_peak: 6 * gib,
                bytes_leaked: 0,
            }],
            ooms: vec![Oom {
                t_ns: 0,
                t_rel_ns: 1_900_000_000,
                pid: 7,
                device: 0,
                api: "cuMemCreate".into(),
                result: 2,
                requested_bytes: gib,
                driver_free_bytes: Some(gib / 4),
                driver_total_bytes: Some(8 * gib),
                free_source: "driver".into(),
                by_category: cats,
                traced_bytes: 7 * gib,
                pool_retained_bytes: 0,
                framework_cache_bytes: 0,
                grew_most: None,
                verdict: Verdict::Exhausted,
                reason: "the device was full".into(),
                site: None,
                category: Category::ScratchPool,
                rule: "builtin:ggml.cuda_pool_vmm".into(),
            }],
            growth: vec![GrowthReport {
                device: 0,
                points: vec![GrowthPoint::default(); 3],
                fits: vec![CategoryFit { category: Category::ScratchPool, fit: Fit { intercept_bytes: 0.0, slope_bytes_per_token: 32768.0, r2: 1.0 } }],
                total_fit: Some(Fit { intercept_bytes: 7.0 * gib as f64, slope_bytes_per_token: 32768.0, r2: 1.0 }),
                capacity_bytes: Some(8 * gib),
                predicted_max_tokens: Some(32768),
                runtime_included: true,
                ..GrowthReport::default()
            }],
            anomalies: vec![Anomaly { kind: "double_free".into(), count: 2, examples: vec![] }],
            ..Report::default()
        }
    }

    #[test]
    fn summary_has_peak_ooms_sites_growth_anomalies() {
        let s = terminal_summary(&sample());
        assert!(s.contains("GPU 0: peak 7.50 GiB of 8.00 GiB (93.8%)"), "{s}");
        assert!(s.contains("weights"), "{s}");
        assert!(s.contains("weights              6.00 GiB  80.0%"), "{s}");
        assert!(s.contains("llama_model::load_tensors(llama_model_loader&)"), "{s}");
        assert!(s.contains("cuMemCreate 1.00 GiB: EXHAUSTED — the device was full"), "{s}");
        assert!(s.contains("scratch_pool 32.00 KiB/token (R² 1.000)"), "{s}");
        assert!(s.contains("runs out at ~32768 tokens"), "{s}");
        assert!(s.contains("Anomalies: 2 (double_free 2)"), "{s}");
        assert!(s.contains("crashed or killed"), "{s}");
        assert!(s.lines().all(|l| l.chars().count() <= 200));
    }

    #[test]
    fn empty_report_does_not_panic() {
        let s = terminal_summary(&Report::default());
        assert!(s.contains("Anomalies: 0"));
    }
}
