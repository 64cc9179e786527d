//! The terminal summary printed by `vramtrace run` and `vramtrace report`: what filled the GPU
//! (peak by category), why allocations failed (one line per OOM), who allocated (top call
//! sites), growth per token, what was never freed, and how many anomalies. Formatting only:
//! every number comes from the report, in the words the other outputs use ([`crate::words`]).
//! The report's warnings are not repeated here: the command prints them on stderr, once.

use crate::util::{clip, distinguishing_frames, fmt_bytes, pct, secs, shell_join, short_frame, site_label, thousands};
use crate::words;
use std::fmt::Write;
use vramtrace_analyzer::{device_label, Category, DeviceReport, Report};

const WIDTH: usize = 140;
/// Rows listed per section; the rest are counted.
const TOP_SITES: usize = 8;
const OOMS: usize = 10;

/// Devices worth a section: some bytes, or a known capacity.
fn shown(d: &DeviceReport) -> bool {
    d.peak.total_bytes > 0 || d.capacity_bytes.is_some()
}

/// The summary as plain text (UTF-8, no colours), lines at most ~140 columns except OOM reasons.
pub fn terminal_summary(r: &Report) -> String {
    let mut o = String::new();
    header(&mut o, r);
    devices(&mut o, r);
    top_sites(&mut o, r);
    ooms(&mut o, r);
    growth(&mut o, r);
    if let Some(n) = words::never_freed(&r.summary.never_freed) {
        let _ = writeln!(o, "\nNever freed by the program: {n}");
    }
    if r.summary.anomaly_count > 0 {
        let kinds: Vec<String> = r.anomalies.iter().map(|a| format!("{} {}", a.kind, thousands(a.count))).collect();
        let _ = writeln!(o, "\nAnomalies: {} ({})", thousands(r.summary.anomaly_count), kinds.join(", "));
    } else {
        let _ = writeln!(o, "\nAnomalies: 0");
    }
    o
}

fn header(o: &mut String, r: &Report) {
    let gpus = r.devices.iter().filter(|d| shown(d)).count();
    let _ = writeln!(o, "vramtrace {} — {} process(es), {} GPU(s), {} events over {}", r.vramtrace_version, r.processes.len(), gpus, r.events, secs(r.duration_ns));
    for p in &r.processes {
        let cmd = if p.cmdline.is_empty() { p.exe.clone() } else { shell_join(&p.cmdline) };
        let _ = writeln!(o, "  pid {} {} ({}): {}", p.pid, clip(&cmd, 60), p.exit_label(), fmt_bytes(p.peak_bytes));
    }
}

fn devices(o: &mut String, r: &Report) {
    let gpus = r.devices.iter().filter(|d| shown(d)).count();
    for d in r.devices.iter().filter(|d| shown(d)) {
        let cap = d.capacity_bytes.map(|c| format!(" of {} ({})", fmt_bytes(c), pct(d.peak_pct_of_capacity()))).unwrap_or_default();
        let _ = writeln!(o, "\n{}: peak {}{} at +{}", device_label(d.device), fmt_bytes(d.peak.total_bytes), cap, secs(d.peak.t_rel_ns));
        for (c, b) in d.peak.by_category.sorted() {
            if c == Category::HostPinned {
                continue;
            }
            let _ = writeln!(o, "{}", words::category_row(c, b, &d.peak.by_category));
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
}

fn top_sites(o: &mut String, r: &Report) {
    if r.peak.top_sites.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nTop call sites at the peak:");
    let shown: Vec<_> = r.peak.top_sites.iter().take(TOP_SITES).collect();
    let via = distinguishing_frames(r, &shown.iter().map(|s| (s.site, s.rule.as_str())).collect::<Vec<_>>());
    for (s, via) in shown.iter().zip(via) {
        let line = format!("  {:>12}  {:<15} [{}] {}", fmt_bytes(s.bytes), s.category.name(), s.rule, short_frame(&site_label(r, s.site, &s.rule)));
        let _ = writeln!(o, "{}", clip(&line, WIDTH));
        if let Some(v) = via {
            // Under the frame, where the rule's name starts.
            let _ = writeln!(o, "{}", clip(&format!("{:32}via {v}", ""), WIDTH));
        }
    }
}

fn ooms(o: &mut String, r: &Report) {
    if r.ooms.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nOut-of-memory failures: {}", r.ooms.len());
    for x in r.ooms.iter().take(OOMS) {
        let _ = writeln!(o, "  {}", words::oom(x));
    }
    if r.ooms.len() > OOMS {
        let _ = writeln!(o, "  … and {} more", r.ooms.len() - OOMS);
    }
}

fn growth(o: &mut String, r: &Report) {
    for g in &r.growth {
        let _ = writeln!(o, "\nGrowth per token, {} ({} points): {}", device_label(g.device), g.points.len(), words::growth_fits(g));
        if let Some(line) = words::growth_total(g) {
            let _ = writeln!(o, "  {line}");
        }
        if let Some(oom) = &g.oom {
            let _ = writeln!(o, "  {}", words::growth_oom(oom));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vramtrace_analyzer::*;

    fn sample() -> Report {
        let mut r = sample_raw();
        summary::finalize(&mut r);
        r
    }

    fn sample_raw() -> Report {
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
        assert!(s.contains("cuMemCreate 1.00 GiB: device full — the device was full"), "{s}");
        assert!(s.contains("scratch_pool 32.0 KiB/token (R² 1.000)"), "{s}");
        assert!(s.contains("predicted out of memory at ≈ 32,768 tokens (capacity 8.00 GiB)"), "{s}");
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
