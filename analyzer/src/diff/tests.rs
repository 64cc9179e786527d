//! The comparison on synthetic reports.

use super::*;
use crate::attribute::RuleSource;
use crate::report::*;

const GIB: u64 = 1 << 30;

fn row(site: usize, rule: &str, category: Category, bytes: u64, allocations: u64) -> AttributionRow {
    AttributionRow {
        site,
        rule: rule.into(),
        source: RuleSource::Builtin,
        category,
        frame: Some(format!("{rule}_frame (x.c:1) [bin+0x{site:x}]")),
        allocations,
        bytes_allocated: bytes,
        max_live_bytes: bytes,
        bytes_at_peak: bytes,
        bytes_leaked: 0,
    }
}

/// A llama-like report: sites (key, category, bytes) all live at the peak; runtime 256 MiB.
fn report(sites: &[(&str, Category, u64)]) -> Report {
    let mut r = Report { schema_version: SCHEMA_VERSION, duration_ns: 1_000_000_000, ..Default::default() };
    let mut cats = [0u64; Category::COUNT];
    for (i, &(key, c, b)) in sites.iter().enumerate() {
        r.sites.push(Site { id: i, key: key.into(), frames: vec![format!("{key} [bin+0x{:x}]", 0x1000 + i)] });
        r.attribution.push(row(i, &format!("builtin:{key}"), c, b, 1));
        r.rules.push(RuleUse { rule: format!("builtin:{key}"), source: RuleSource::Builtin, category: c, allocations: 1, bytes_allocated: b, bytes_at_peak: b });
        if c == Category::HostPinned {
            r.host.peak_bytes += b;
        } else {
            cats[c.index()] += b;
        }
    }
    cats[Category::Runtime.index()] = 256 * MIB;
    r.peak.by_category = Categories::from_array(&cats);
    r.peak.total_bytes = r.peak.by_category.vram_total();
    r.devices.push(DeviceReport { device: 0, capacity_bytes: Some(24 * GIB), peak: r.peak.clone(), ..Default::default() });
    r.devices[0].reconciliation.readings = 3;
    r.devices[0].reconciliation.runtime_max_bytes = 256 * MIB;
    r
}

fn llama(kv: u64) -> Report {
    report(&[
        ("cudaMalloc <- load_tensors <- main", Category::Weights, 4 * GIB),
        ("cudaMalloc <- llama_kv_cache <- main", Category::KvCache, kv),
        ("cudaMalloc <- gallocr_reserve <- main", Category::Compute, 300 * MIB),
        ("ggml_cuda_pool_vmm::alloc <- decode <- main", Category::ScratchPool, 64 * MIB),
        ("cudaMallocHost <- host_malloc <- main", Category::HostPinned, 16 * MIB),
    ])
}

fn growth(slope: f64) -> GrowthReport {
    let fit = |c, s: f64| CategoryFit { category: c, fit: Fit { intercept_bytes: 1e9, slope_bytes_per_token: s, r2: 1.0 } };
    GrowthReport {
        device: 0,
        points: (1..=4).map(|i| GrowthPoint { tokens: 512 * i, ..Default::default() }).collect(),
        fits: vec![fit(Category::Weights, 0.0), fit(Category::ScratchPool, slope)],
        total_fit: Some(Fit { intercept_bytes: 1e9, slope_bytes_per_token: slope, r2: 1.0 }),
        ..Default::default()
    }
}

#[test]
fn identical_reports_show_no_change() {
    let d = diff(&llama(GIB), &llama(GIB), &DiffOptions::default());
    assert!(!d.changed, "{d:#?}");
    assert_eq!(d.peak.delta, 0);
    assert!(d.categories.iter().all(|c| !c.change.changed && c.change.delta == 0));
    assert!(d.sites.changed.is_empty() && d.sites.new.is_empty() && d.sites.vanished.is_empty());
    assert_eq!((d.sites.matched, d.sites.unchanged), (5, 5));
    assert!(d.gate_passed && d.gate_failure().is_none());
    assert_eq!(d.schema_version, DIFF_SCHEMA_VERSION);
}

#[test]
fn doubled_kv_is_reported_exactly_in_its_category_and_site() {
    let d = diff(&llama(GIB), &llama(2 * GIB), &DiffOptions::default());
    assert!(d.changed);
    let kv = d.category(Category::KvCache).unwrap();
    assert_eq!((kv.change.old, kv.change.new, kv.change.delta), (GIB, 2 * GIB, GIB as i64));
    assert_eq!(kv.change.delta_pct, Some(100.0));
    assert!(kv.change.changed);
    let others: Vec<_> = d.categories.iter().filter(|c| c.change.changed && c.category != Category::KvCache).collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(d.peak.delta, GIB as i64);
    assert_eq!(d.sites.changed.len(), 1);
    let s = &d.sites.changed[0];
    assert_eq!(s.key, "cudaMalloc <- llama_kv_cache <- main");
    assert_eq!((s.max_live_delta, s.at_peak_delta), (GIB as i64, GIB as i64));
    assert_eq!(s.category, Category::KvCache);
    assert!(s.frame.as_deref().unwrap().starts_with("builtin:cudaMalloc <- llama_kv_cache"));
    assert_eq!(d.sites.unchanged, 4);
}

#[test]
fn sites_match_by_key_whatever_their_ids_and_addresses() {
    let old = llama(GIB);
    let mut new = llama(GIB);
    // Another build: sites discovered in another order, every address moved.
    new.sites.reverse();
    let n = new.sites.len();
    for (i, s) in new.sites.iter_mut().enumerate() {
        s.id = i;
        s.frames = vec![format!("{} [bin+0x{:x}]", s.key, 0x9000 + i)];
    }
    for r in &mut new.attribution {
        r.site = n - 1 - r.site;
        r.frame = r.frame.as_ref().map(|f| f.replace("[bin+0x", "[bin+0x9"));
    }
    let d = diff(&old, &new, &DiffOptions::default());
    assert!(!d.changed, "{:#?}", d.sites);
    assert_eq!(d.sites.matched, 5);
}

#[test]
fn new_and_vanished_sites_are_listed_even_when_small() {
    let old = llama(GIB);
    let mut new = llama(GIB);
    // The VMM pool replaced by the legacy pool (same bytes), plus a tiny new workspace.
    new.sites[3].key = "cudaMalloc <- ggml_cuda_pool_leg::alloc <- decode <- main".into();
    new.sites.push(Site { id: 5, key: "cudaMalloc <- cublasCreate_v2 <- main".into(), frames: vec![] });
    new.attribution.push(row(5, "builtin:cublas", Category::Workspace, 4096, 1));
    let d = diff(&old, &new, &DiffOptions::default());
    assert!(d.changed);
    let keys = |v: &[SiteChange]| v.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&d.sites.vanished), ["ggml_cuda_pool_vmm::alloc <- decode <- main"]);
    assert_eq!(keys(&d.sites.new), ["cudaMalloc <- ggml_cuda_pool_leg::alloc <- decode <- main", "cudaMalloc <- cublasCreate_v2 <- main"]);
    assert_eq!(d.sites.new[1].new.as_ref().unwrap().max_live_bytes, 4096);
    assert!(d.sites.new[1].old.is_none());
    assert_eq!(d.sites.vanished[0].max_live_delta, -(64 * MIB as i64));
    // 4 KiB of workspace is below the threshold: the category itself is unchanged.
    assert!(!d.category(Category::Workspace).unwrap().change.changed);
}

#[test]
fn deltas_below_the_threshold_are_folded() {
    let old = llama(GIB);
    let new = llama(GIB + 512 * 1024);
    // Default: max(1 MiB, 0.5% of ~5.6 GiB) ≈ 28.6 MiB.
    let d = diff(&old, &new, &DiffOptions::default());
    assert_eq!(d.threshold_bytes, old.peak.total_bytes / 200);
    assert!(!d.changed);
    let kv = d.category(Category::KvCache).unwrap();
    assert_eq!(kv.change.delta, 512 * 1024, "the delta is still there, only folded");
    assert!(!kv.change.changed);
    // An explicit threshold: bytes, or percent of the old peak.
    let d = diff(&old, &new, &DiffOptions { threshold: Some(Amount::Bytes(0)), ..Default::default() });
    assert!(d.changed && d.category(Category::KvCache).unwrap().change.changed);
    assert_eq!(d.sites.changed.len(), 1);
    let d = diff(&old, &new, &DiffOptions { threshold: Some(Amount::Percent(1.0)), ..Default::default() });
    assert_eq!(d.threshold_bytes, old.peak.total_bytes / 100);
    assert_eq!(default_threshold(10 * MIB), MIB);
}

#[test]
fn growth_slopes_are_compared_when_both_runs_have_them() {
    let (mut old, mut new) = (llama(GIB), llama(GIB));
    old.growth.push(growth(32768.0));
    new.growth.push(growth(65536.0));
    let d = diff(&old, &new, &DiffOptions::default());
    let g = &d.growth[0];
    assert_eq!((g.presence.as_str(), g.tokens, g.old_points, g.new_points), ("both", 2048, 4, 4));
    let pool = g.slopes.iter().find(|s| s.category == Category::ScratchPool).unwrap();
    assert_eq!(pool.slope.delta_bytes_per_token, 32768.0);
    assert_eq!(pool.slope.delta_pct, Some(100.0));
    // 32 KiB/token × 2048 tokens = 64 MiB ≥ the threshold.
    assert_eq!(pool.slope.delta_bytes_at_tokens, 64.0 * MIB as f64);
    assert!(pool.slope.changed && g.changed && d.changed);
    assert!(!g.slopes.iter().find(|s| s.category == Category::Weights).unwrap().slope.changed);
    assert!(g.total.as_ref().unwrap().changed);
    // A tiny slope change folds: 1 B/token × 2048 tokens.
    let mut new2 = llama(GIB);
    new2.growth.push(growth(32769.0));
    let d = diff(&old, &new2, &DiffOptions::default());
    assert!(!d.growth[0].changed && !d.changed);
    // Markers on one side only: listed, not compared.
    let d = diff(&old, &llama(GIB), &DiffOptions::default());
    assert_eq!(d.growth[0].presence, "old_only");
    assert!(d.growth[0].slopes.is_empty() && !d.changed);
}

#[test]
fn allocation_counts_oom_status_and_runtime() {
    let old = llama(GIB);
    let mut new = llama(GIB);
    new.rules[3].allocations = 7;
    new.ooms.push(Oom {
        t_ns: 5,
        t_rel_ns: 5,
        pid: 1,
        device: 0,
        api: "cuMemCreate".into(),
        result: 2,
        requested_bytes: 2 * MIB,
        driver_free_bytes: None,
        driver_total_bytes: None,
        free_source: "unknown".into(),
        by_category: Categories::default(),
        traced_bytes: 0,
        pool_retained_bytes: 0,
        framework_cache_bytes: 0,
        grew_most: None,
        verdict: Verdict::Exhausted,
        reason: String::new(),
        site: Some(3),
        category: Category::ScratchPool,
        rule: String::new(),
    });
    new.devices[0].reconciliation.runtime_max_bytes = 512 * MIB;
    let d = diff(&old, &new, &DiffOptions::default());
    assert_eq!((d.allocations.total.old, d.allocations.total.new), (5, 11));
    let pool = d.allocations.by_category.iter().find(|c| c.category == Category::ScratchPool).unwrap();
    assert_eq!(pool.count.delta, 6);
    assert!(d.ooms.changed);
    assert_eq!((d.ooms.old.count, d.ooms.new.count, d.ooms.new.exhausted), (0, 1, 1));
    let first = d.ooms.new.first.as_ref().unwrap();
    assert_eq!(first.site_key.as_deref(), Some("ggml_cuda_pool_vmm::alloc <- decode <- main"));
    assert!(d.runtime.max.changed);
    assert_eq!(d.runtime.max.delta, 256 * MIB as i64);
    // No driver reading on one side: the overhead is unknown, not a change.
    new.devices[0].reconciliation.readings = 0;
    new.ooms.clear();
    let d = diff(&old, &new, &DiffOptions::default());
    assert!(!d.runtime.max.changed && !d.changed);
}

#[test]
fn gate_limits_in_bytes_and_percent() {
    let (old, new) = (llama(GIB), llama(GIB + 512 * MIB));
    let opts = DiffOptions {
        max_peak_increase: Some(Amount::Percent(5.0)),
        max_increase: vec![(Category::KvCache, Amount::Bytes(0)), (Category::Weights, Amount::Bytes(0)), (Category::KvCache, Amount::Percent(50.0))],
        ..Default::default()
    };
    let d = diff(&old, &new, &opts);
    assert!(!d.gate_passed);
    let pass: Vec<bool> = d.gate.iter().map(|g| g.passed).collect();
    // peak +512 MiB of ~5.6 GiB ≈ 8.9% > 5%; kv +512 MiB > 0; weights 0 ≤ 0; kv 50% of 1 GiB = 512 MiB ≤ 512 MiB.
    assert_eq!(pass, [false, false, true, true]);
    assert_eq!(d.gate[1].message, "kv_cache grew by 512.00 MiB (limit 0 B)");
    assert!(d.gate[0].message.starts_with("peak grew by 512.00 MiB, +8."), "{}", d.gate[0].message);
    assert!(d.gate[0].message.ends_with("(limit 5%)"));
    assert_eq!(d.gate_failure().unwrap(), format!("gate failed: {}; kv_cache grew by 512.00 MiB (limit 0 B)", d.gate[0].message));
    // Shrinking always passes; a percentage of nothing allows nothing.
    let d = diff(&new, &old, &opts);
    assert!(d.gate_passed, "{:?}", d.gate);
    let mut old0 = old.clone();
    old0.peak.by_category.workspace = 0;
    let mut new0 = old.clone();
    new0.peak.by_category.workspace = MIB;
    let d = diff(&old0, &new0, &DiffOptions { max_increase: vec![(Category::Workspace, Amount::Percent(10.0))], ..Default::default() });
    assert_eq!(d.gate[0].message, "workspace grew by 1.00 MiB from 0 B (limit 10%)");
    assert!(!d.gate_passed);
}

#[test]
fn pool_retention_sites_match_across_pool_handles() {
    let mut old = llama(GIB);
    let mut new = llama(GIB);
    old.sites[3].key = "(stream-ordered pool 0x5581aa retention)".into();
    new.sites[3].key = "(stream-ordered pool 0x7f00bb retention)".into();
    assert!(!diff(&old, &new, &DiffOptions::default()).changed);
    // The default pool (0x0) stays apart from created pools.
    new.sites[3].key = "(stream-ordered pool 0x0 retention)".into();
    let d = diff(&old, &new, &DiffOptions::default());
    assert_eq!((d.sites.new.len(), d.sites.vanished.len()), (1, 1));
}

fn marker(label: &str, value: i64, t: u64) -> MarkerReport {
    MarkerReport { t_ns: t, t_rel_ns: t, pid: Some(1), label: label.into(), value, source: "trace".into() }
}

#[test]
fn timelines_align_at_matching_markers_else_on_normalized_time() {
    let mut old = llama(GIB);
    let mut new = llama(GIB);
    old.duration_ns = 1000;
    new.duration_ns = 3000;
    let a = Alignment::of(&old, &new);
    assert_eq!(a.mode, AlignMode::Normalized);
    assert_eq!((a.x_old(500), a.x_new(1500), a.x_end()), (0.5, 0.5, 1.0));

    old.markers = vec![marker("tokens", 512, 100), marker("tokens", 1024, 600), marker("other", 1, 700)];
    // New: the same steps, later and slower; its own extra label is not an anchor.
    new.markers = vec![marker("load", 0, 50), marker("tokens", 256, 1000), marker("tokens", 512, 2000)];
    let a = Alignment::of(&old, &new);
    assert_eq!(a.mode, AlignMode::Markers);
    assert_eq!(a.anchors.len(), 2);
    assert_eq!((a.anchors[1].old_value, a.anchors[1].new_value), (1024, 512));
    assert_eq!(a.x_end(), 1000.0);
    // Knots (0,0) (1000,100) (2000,600) (3000,1000).
    assert_eq!(a.x_new(0), 0.0);
    assert_eq!(a.x_new(500), 50.0);
    assert_eq!(a.x_new(1000), 100.0);
    assert_eq!(a.x_new(1500), 350.0);
    assert_eq!(a.x_new(3000), 1000.0);
    assert_eq!(a.x_old(250), 250.0);
    // Monotonic even past the end.
    assert!(a.x_new(3500) > a.x_new(3000));
}

#[test]
fn diff_round_trips_through_json() {
    let mut old = llama(GIB);
    old.growth.push(growth(1.0));
    let d = diff(&old, &llama(2 * GIB), &DiffOptions { max_peak_increase: Some(Amount::Bytes(0)), ..Default::default() });
    let js = serde_json::to_string(&d).unwrap();
    let back: Diff = serde_json::from_str(&js).unwrap();
    assert_eq!(back, d);
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    // Flattened rows: the category next to its numbers.
    assert_eq!(v["categories"][1]["category"], "kv_cache");
    assert_eq!(v["categories"][1]["delta"], GIB);
    assert_eq!(v["alignment"]["mode"], "normalized");
}
