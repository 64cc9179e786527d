//! Reports for the viewer's tests: a fixed, hand-built one (deterministic, used by the golden
//! Markdown test, with hostile strings in every trace-supplied field), a huge one (size guards),
//! and one produced by the real analyzer from a synthetic trace written with `TraceWriter`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use vramtrace_analyzer::*;
use vramtrace_trace::{Api, EventRec, Info, TraceWriter};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const SEC: u64 = 1_000_000_000;
pub const MS: u64 = 1_000_000;
pub const T0: u64 = 5_000 * SEC;

/// A command-line argument and a symbol that would break naive HTML/Markdown.
pub const EVIL_ARG: &str = "--prompt=<script>alert('x')</script> & \"q\" | `tick`";
pub const EVIL_SYMBOL: &str = "std::vector<float, my_alloc<float>>::reserve(unsigned long) & <b>bold</b>";

fn cats(f: impl FnOnce(&mut Categories)) -> Categories {
    let mut c = Categories::default();
    f(&mut c);
    c
}

/// State of the fixed run at `t` seconds: weights load over 0.5–5 s, KV cache and compute at
/// 5.2/5.5 s, a VMM scratch pool that grows with the context from 6 s, runtime from 0.5 s.
fn state_at(t: f64, tokens: u64) -> Categories {
    cats(|c| {
        if t >= 0.5 {
            c.runtime = 300 * MIB;
        }
        if t >= 0.5 {
            let frac = ((t - 0.5) / 4.5).clamp(0.0, 1.0);
            c.weights = ((7.5 * GIB as f64 * frac) as u64 / MIB) * MIB;
        }
        if t >= 5.2 {
            c.kv_cache = 2 * GIB;
        }
        if t >= 5.5 {
            c.compute = 512 * MIB;
            c.workspace = 32 * MIB;
        }
        c.scratch_pool = tokens * 34 * KIB;
        c.host_pinned = if t >= 1.0 { 64 * MIB } else { 0 };
    })
}

fn tokens_at(t: f64) -> u64 {
    if t < 6.0 {
        0
    } else {
        (((t - 6.0) / 44.0 * 32.0).floor() as u64 + 1).min(32) * 1024
    }
}

fn point(t_rel: u64, c: Categories, vmm_reserved: u64) -> TimelinePoint {
    TimelinePoint {
        t_ns: T0 + t_rel,
        t_rel_ns: t_rel,
        total_bytes: c.vram_total(),
        by_category: c,
        vmm_reserved_bytes: vmm_reserved,
        vmm_mapped_bytes: c.scratch_pool,
        pool_retained_bytes: c.scratch_pool / 8,
        bfc: if c.scratch_pool > 0 { 0.05 + 0.3 * (c.scratch_pool as f64 / (GIB as f64 * 1.1)) } else { 0.0 },
    }
}

/// The fixed report: one llama-server-like process on a 12 GiB GPU that runs out of memory
/// at 52 s while the context grows.
pub fn fixed_report() -> Report {
    let mut r = fixed_report_raw();
    // The analyzer's finalizing pass, as `analyze` runs it: the summary figures and fit order.
    vramtrace_analyzer::summary::finalize(&mut r);
    r
}

fn fixed_report_raw() -> Report {
    let cmdline: Vec<String> = ["llama-server", "-m", "models/Qwen3 8B Q4_K_M.gguf", "-c", "32768", "-ngl", "99", EVIL_ARG].iter().map(|s| s.to_string()).collect();
    let process = ProcessReport {
        pid: 4242,
        ppid: 1,
        exe: "/opt/llama.cpp/build/bin/llama-server".into(),
        cmdline,
        shim_version: "0.1.0".into(),
        hostname: "gpu-box".into(),
        trace_file: "vramtrace-4242.vtr".into(),
        start_ns: T0,
        end_ns: T0 + 53 * SEC,
        clean_exit: false,
        truncated: false,
        events: 123_456,
        stack_depth: 32,
        peak_bytes: 0,
        peak_t_ns: 0,
        peak_t_rel_ns: 0,
        peak_by_category: Categories::default(),
        host_pinned_peak_bytes: 64 * MIB,
    };
    let mut timeline = Vec::new();
    let mut t = 0u64;
    while t <= 53 * SEC {
        let ts = t as f64 / 1e9;
        let c = state_at(ts, tokens_at(ts));
        let mut c = c;
        c.host_pinned = 0;
        timeline.push(point(t, c, if ts >= 6.0 { 4 * GIB } else { 0 }));
        t += 250 * MS;
    }
    let peak_pt = timeline.iter().max_by_key(|p| (p.total_bytes, std::cmp::Reverse(p.t_ns))).unwrap().clone();
    let sites = vec![
        Site { id: 0, key: "llama_model::load_tensors <- main".into(), frames: vec!["ggml_cuda_device_malloc (ggml-cuda.cu:123) [libggml-cuda.so+0x1234]".into(), "llama_model::load_tensors(llama_model_loader&) (llama-model.cpp:77) [libllama.so+0x99]".into()] },
        Site { id: 1, key: "llama_kv_cache::llama_kv_cache <- main".into(), frames: vec!["llama_kv_cache::llama_kv_cache(llama_model const&) (llama-kv-cache.cpp:40) [libllama.so+0x400]".into()] },
        Site { id: 2, key: "ggml_gallocr_reserve_n <- main".into(), frames: vec!["ggml_gallocr_reserve_n (ggml-alloc.c:800) [libggml-base.so+0x800]".into()] },
        Site { id: 3, key: "ggml_cuda_pool_vmm::alloc <- main".into(), frames: vec!["ggml_cuda_pool_vmm::alloc(unsigned long, unsigned long*) (ggml-cuda.cu:400) [libggml-cuda.so+0x4000]".into()] },
        Site { id: 4, key: "cublasCreate_v2 <- main".into(), frames: vec!["cublasCreate_v2 [libcublas.so.12+0x10]".into()] },
        Site { id: 5, key: EVIL_SYMBOL.into(), frames: vec![format!("{EVIL_SYMBOL} (evil.cpp:1) [libevil.so+0x1]")] },
    ];
    let pc = peak_pt.by_category;
    let top_sites = vec![
        SiteBytes { site: 0, rule: "builtin:llama.load_tensors".into(), category: Category::Weights, bytes: pc.weights },
        SiteBytes { site: 1, rule: "builtin:llama.kv_cache_ctor".into(), category: Category::KvCache, bytes: pc.kv_cache },
        SiteBytes { site: 3, rule: "builtin:ggml.cuda_pool_vmm".into(), category: Category::ScratchPool, bytes: pc.scratch_pool },
        SiteBytes { site: 2, rule: "builtin:ggml.gallocr".into(), category: Category::Compute, bytes: pc.compute },
        SiteBytes { site: 4, rule: "builtin:cublas.module".into(), category: Category::Workspace, bytes: 24 * MIB },
        SiteBytes { site: 5, rule: "default:no_match".into(), category: Category::Workspace, bytes: 8 * MIB },
    ];
    let peak = Peak {
        t_ns: peak_pt.t_ns,
        t_rel_ns: peak_pt.t_rel_ns,
        total_bytes: peak_pt.total_bytes,
        by_category: pc,
        top_sites: top_sites.clone(),
        by_process: vec![PidBytes { pid: 4242, bytes: peak_pt.total_bytes - pc.runtime }],
        vmm_reserved_bytes: 4 * GIB,
        vmm_mapped_bytes: pc.scratch_pool,
        pool_retained_bytes: pc.scratch_pool / 8,
        rounding_waste_bytes: 3 * MIB,
    };
    let oom_cats = state_at(52.0, 32 * 1024);
    let mut oom_cats_dev = oom_cats;
    oom_cats_dev.host_pinned = 0;
    let span = |ptr: u64, size: u64, start: u64, end: Option<u64>, category: Category, vmm: bool| AddressSpan {
        ptr,
        size,
        start_rel_ns: start * SEC,
        end_rel_ns: end.map(|e| e * SEC),
        category,
        vmm,
    };
    let device = DeviceReport {
        device: 0,
        name: Some("NVIDIA GeForce RTX 4070".into()),
        driver_version: Some("12.9".into()),
        uuid: None,
        address_map: AddressMap {
            spans: vec![
                span(0x7f00_0000_0000, 4 * GIB, 1, None, Category::Weights, false),
                span(0x7f01_0000_0000, GIB, 2, None, Category::KvCache, false),
                span(0x7f02_0000_0000, 300 * MIB, 3, Some(50), Category::Compute, false),
                span(0x7e00_0000_0000, 2 * MIB, 10, None, Category::ScratchPool, true),
                span(0x7e00_0020_0000, 2 * MIB, 20, None, Category::ScratchPool, true),
            ],
            dropped: 3,
        },
        capacity_bytes: Some(12 * GIB),
        capacity_source: "cuMemGetInfo".into(),
        peak: peak.clone(),
        timeline,
        fragmentation: Fragmentation {
            vmm_reserved_peak_bytes: 4 * GIB,
            vmm_mapped_peak_bytes: pc.scratch_pool,
            pool_retained_peak_bytes: pc.scratch_pool / 8,
            pool_retained_peak_t_ns: peak_pt.t_ns,
            bfc_max: 0.34,
            bfc_max_t_ns: T0 + 50 * SEC,
            bfc_at_peak: 0.33,
            rounding_waste_at_peak_bytes: 3 * MIB,
            pools: vec![PoolReport { pid: 4242, pool: 0, device: 0, peak_reserved_bytes: 256 * MIB, peak_used_bytes: 200 * MIB, retained_at_end_bytes: 56 * MIB, trims: 2 }],
        },
        reconciliation: Reconciliation { readings: 3, samples: vec![], runtime_last_bytes: 300 * MIB, runtime_min_bytes: 280 * MIB, runtime_max_bytes: 300 * MIB, traced_exceeds_used: 0 },
        processes: vec![ProcessShare { pid: 4242, peak_bytes: peak_pt.total_bytes - pc.runtime, bytes_at_device_peak: peak_pt.total_bytes - pc.runtime }],
        live_at_end: Categories::default(),
    };
    let markers: Vec<MarkerReport> = (1..=32u64)
        .map(|i| {
            let t_rel = 6 * SEC + (i - 1) * 44 * SEC / 32;
            MarkerReport { t_ns: T0 + t_rel, t_rel_ns: t_rel, pid: Some(4242), label: "tokens".into(), value: (i * 1024) as i64, source: "trace".into() }
        })
        .collect();
    let points: Vec<GrowthPoint> = markers
        .iter()
        .map(|m| {
            let mut c = state_at(m.t_rel_ns as f64 / 1e9 + 0.1, m.value as u64);
            c.host_pinned = 0;
            GrowthPoint { t_ns: m.t_ns, t_rel_ns: m.t_rel_ns, tokens: m.value, total_bytes: c.vram_total(), by_category: c }
        })
        .collect();
    let fixed_total = (7.5 * GIB as f64) as u64 + 2 * GIB + 512 * MIB + 32 * MIB + 300 * MIB;
    let fit = |cat: Category, intercept: u64, slope: f64| CategoryFit { category: cat, fit: Fit { intercept_bytes: intercept as f64, slope_bytes_per_token: slope, r2: 1.0 } };
    let growth = GrowthReport {
        device: 0,
        labels: vec!["tokens".into()],
        points,
        fits: vec![
            fit(Category::Weights, (7.5 * GIB as f64) as u64, 0.0),
            fit(Category::KvCache, 2 * GIB, 0.0),
            fit(Category::ScratchPool, 0, 34.0 * KIB as f64),
            fit(Category::Compute, 512 * MIB, 0.0),
        ],
        total_fit: Some(Fit { intercept_bytes: fixed_total as f64, slope_bytes_per_token: 34.0 * KIB as f64, r2: 0.999 }),
        capacity_bytes: Some(12 * GIB),
        predicted_max_tokens: Some((12 * GIB - fixed_total) / (34 * KIB)),
        runtime_included: true,
        oom: Some(GrowthOom { t_ns: T0 + 52 * SEC, t_rel_ns: 52 * SEC, step_tokens: Some(33 * 1024), last_completed_tokens: Some(32 * 1024) }),
    };
    let oom = Oom {
        t_ns: T0 + 52 * SEC,
        t_rel_ns: 52 * SEC,
        pid: 4242,
        device: 0,
        api: "cuMemCreate".into(),
        result: 2,
        requested_bytes: GIB,
        driver_free_bytes: Some(12 * GIB - oom_cats_dev.vram_total()),
        driver_total_bytes: Some(12 * GIB),
        free_source: "driver".into(),
        by_category: oom_cats_dev,
        traced_bytes: oom_cats_dev.vram_total() - oom_cats_dev.runtime,
        pool_retained_bytes: 0,
        framework_cache_bytes: 0,
        grew_most: Some(GrewMost { category: Category::ScratchPool, bytes: 340 * MIB, window_ns: 10 * SEC }),
        verdict: Verdict::Exhausted,
        reason: "free 0.94 GiB + pools 0 B < requested 1.00 GiB: the device was full".into(),
        site: Some(3),
        category: Category::ScratchPool,
        rule: "builtin:ggml.cuda_pool_vmm".into(),
    };
    let row = |site: usize, rule: &str, source: RuleSource, category: Category, bytes: u64, leaked: u64| AttributionRow {
        site,
        rule: rule.into(),
        source,
        category,
        frame: sites[site].frames.last().cloned(),
        allocations: 3,
        bytes_allocated: bytes,
        max_live_bytes: bytes,
        bytes_at_peak: bytes,
        bytes_leaked: leaked,
    };
    let attribution = vec![
        row(0, "builtin:llama.load_tensors", RuleSource::Builtin, Category::Weights, pc.weights, pc.weights),
        row(1, "builtin:llama.kv_cache_ctor", RuleSource::Builtin, Category::KvCache, pc.kv_cache, pc.kv_cache),
        row(2, "builtin:ggml.gallocr", RuleSource::Builtin, Category::Compute, pc.compute, 0),
        row(3, "builtin:ggml.cuda_pool_vmm", RuleSource::Builtin, Category::ScratchPool, pc.scratch_pool, 0),
        row(4, "builtin:cublas.module", RuleSource::Builtin, Category::Workspace, 24 * MIB, 0),
        row(5, "default:no_match", RuleSource::Default, Category::Workspace, 8 * MIB, 8 * MIB),
    ];
    let rules = attribution
        .iter()
        .map(|a| RuleUse { rule: a.rule.clone(), source: a.source, category: a.category, allocations: a.allocations, bytes_allocated: a.bytes_allocated, bytes_at_peak: a.bytes_at_peak })
        .collect();
    Report {
        schema_version: 1,
        vramtrace_version: "0.1.0".into(),
        trace_start_ns: T0,
        trace_end_ns: T0 + 53 * SEC,
        duration_ns: 53 * SEC,
        events: 123_456,
        processes: vec![process],
        devices: vec![device],
        peak,
        host: HostReport { peak_bytes: 64 * MIB, peak_t_ns: T0 + SEC, peak_t_rel_ns: SEC, by_process: vec![PidBytes { pid: 4242, bytes: 64 * MIB }], timeline: vec![] },
        sites,
        attribution,
        rules,
        ooms: vec![oom],
        leaks: vec![
            Leak { pid: 4242, device: Some(0), kind: LeakKind::Crash, site: 0, rule: "builtin:llama.load_tensors".into(), category: Category::Weights, bytes: pc.weights, allocations: 3 },
            Leak { pid: 4242, device: Some(0), kind: LeakKind::Crash, site: 5, rule: "default:no_match".into(), category: Category::Workspace, bytes: 8 * MIB, allocations: 1 },
        ],
        anomalies: vec![Anomaly {
            kind: "unknown_free".into(),
            count: 2,
            examples: vec![AnomalyExample { pid: 4242, t_ns: T0 + 7 * SEC, t_rel_ns: 7 * SEC, api: "cuMemFree_v2".into(), ptr: 0x7f00_dead_0000, handle: 0, size: 0, detail: "pointer <never> allocated".into() }],
        }],
        markers,
        markers_dropped: 0,
        growth: vec![growth],
        log_lines: vec![
            LogMatch { t_ns: T0 + 5 * SEC, t_rel_ns: 5 * SEC, pid: Some(4242), line: "load_tensors:        CUDA0 model buffer size =  7680.00 MiB".into(), category: Category::Weights, device: Some(0), logged_bytes: 7680 * MIB, matched: None },
            LogMatch { t_ns: T0 + 5 * SEC, t_rel_ns: 5 * SEC, pid: Some(4242), line: "llama_kv_cache:      CUDA0 KV buffer size =  2048.00 MiB".into(), category: Category::KvCache, device: Some(0), logged_bytes: 2048 * MIB, matched: None },
            LogMatch { t_ns: T0 + 5 * SEC, t_rel_ns: 5 * SEC, pid: Some(4242), line: "llama_context:      CUDA0 compute buffer size =   480.00 MiB".into(), category: Category::Compute, device: Some(0), logged_bytes: 480 * MIB, matched: None },
        ],
        warnings: vec!["symbol file /opt/<missing>.so not found".into()],
        summary: Summary::default(),
    }
}

/// A report far larger than the analyzer would ever produce (a million timeline points, 50 000
/// growth points and attribution rows): the size guards must still hold.
pub fn huge_report() -> Report {
    let mut r = fixed_report();
    let n = 1_000_000u64;
    let d = &mut r.devices[0];
    let base = d.timeline[d.timeline.len() / 2].clone();
    d.timeline = (0..n)
        .map(|i| {
            let mut p = base.clone();
            p.t_rel_ns = i * 53_000; // 53 s
            p.t_ns = T0 + p.t_rel_ns;
            // Noise plus rare spikes, so every pixel column has distinct min and max.
            let wobble = (i * 2654435761 % 977) * MIB / 10;
            p.by_category.unknown = wobble + if i % 99_991 == 0 { GIB } else { 0 };
            p.total_bytes = p.by_category.vram_total();
            p
        })
        .collect();
    let g = &mut r.growth[0];
    let gp = g.points[0].clone();
    g.points = (0..50_000i64)
        .map(|i| {
            let mut p = gp.clone();
            p.tokens = i;
            p.by_category.scratch_pool = i as u64 * 34 * KIB;
            p.total_bytes = p.by_category.vram_total();
            p
        })
        .collect();
    let a = r.attribution[0].clone();
    r.sites = (0..50_000).map(|i| Site { id: i, key: format!("site_{i}"), frames: vec![format!("function_number_{i} (file.cpp:{i}) [lib.so+0x{i:x}]")] }).collect();
    r.attribution = (0..50_000).map(|i| AttributionRow { site: i, ..a.clone() }).collect();
    r
}

/// Writes a synthetic llama.cpp-like trace with `TraceWriter` into `dir`: weights, KV cache,
/// a VMM pool that grows with `tokens` markers, an unknown free, and a failing `cuMemCreate`.
pub fn write_trace(dir: &Path) -> PathBuf {
    const MALLOC: u64 = 0x1000;
    const LOAD: u64 = 0x1300;
    const KV: u64 = 0x1400;
    const POOL: u64 = 0x1800;
    const MAIN: u64 = 0x1d00;
    let info = Info {
        pid: 777,
        ppid: 1,
        mono_ns: T0,
        realtime_ns: 1_700_000_000_000_000_000,
        stack_depth: 32,
        exe: "/usr/bin/llama-server".into(),
        cmdline: vec!["llama-server".into(), "-m".into(), "m.gguf".into(), "-c".into(), "8192".into()],
        version: "0.1.0".into(),
        hostname: "test".into(),
    };
    let mut w = TraceWriter::new(Vec::new(), &info).unwrap();
    w.stack(1, &[MALLOC, LOAD, MAIN]).unwrap();
    w.stack(2, &[MALLOC, KV, MAIN]).unwrap();
    w.stack(3, &[POOL, MAIN]).unwrap();
    let mut t = T0;
    let mut ev = |w: &mut TraceWriter<Vec<u8>>, dt: u64, api: Api, f: &dyn Fn(&mut EventRec)| {
        t += dt;
        let mut e = EventRec { t_ns: t, api: api as u16, device: 0, tid: 777, ..EventRec::default() };
        f(&mut e);
        w.event(&e).unwrap();
        t
    };
    ev(&mut w, MS, Api::MemGetInfo, &|e| {
        e.free = 8 * GIB - 256 * MIB;
        e.total = 8 * GIB;
    });
    for i in 0..4u64 {
        ev(&mut w, 200 * MS, Api::MemAlloc, &|e| {
            e.ptr = 0x10_0000_0000 + i * GIB;
            e.size = 768 * MIB;
            e.stack_id = 1;
        });
    }
    ev(&mut w, 100 * MS, Api::MemAlloc, &|e| {
        e.ptr = 0x20_0000_0000;
        e.size = 512 * MIB;
        e.stack_id = 2;
    });
    let va = 0x7f00_0000_0000u64;
    ev(&mut w, MS, Api::MemAddressReserve, &|e| {
        e.ptr = va;
        e.size = 16 * GIB;
    });
    let mut mapped = 0u64;
    for (h, tokens) in [512u64, 1024, 2048, 4096, 8192].into_iter().enumerate() {
        let tm = ev(&mut w, 300 * MS, Api::MemGetInfo, &|_| {});
        w.marker(tm, 777, "tokens", tokens as i64).unwrap();
        let need = tokens * 64 * KIB;
        let (h, add, at) = (h as u64 + 1, need - mapped, va + mapped);
        ev(&mut w, MS, Api::MemCreate, &|e| {
            e.handle = h;
            e.size = add;
            e.stack_id = 3;
        });
        ev(&mut w, MS, Api::MemMap, &|e| {
            e.ptr = at;
            e.size = add;
            e.handle = h;
        });
        mapped = need;
    }
    ev(&mut w, MS, Api::MemFree, &|e| e.ptr = 0xdead_0000);
    let tm = ev(&mut w, 300 * MS, Api::MemGetInfo, &|_| {});
    w.marker(tm, 777, "tokens", 16384).unwrap();
    ev(&mut w, MS, Api::MemCreate, &|e| {
        e.size = 6 * GIB;
        e.result = 2;
        e.stack_id = 3;
        e.free = 8 * GIB - 256 * MIB - 3 * GIB - 512 * MIB - 512 * MIB;
        e.total = 8 * GIB;
    });
    ev(&mut w, 100 * MS, Api::MemFree, &|e| e.ptr = 0x20_0000_0000);
    w.end(t + MS).unwrap();
    let p = dir.join("vramtrace-777.vtr");
    std::fs::write(&p, w.into_inner()).unwrap();
    p
}

/// Analyzes the synthetic trace, naming its stack addresses as a symbolizer would.
pub fn analyzed_report(dir: &Path) -> Report {
    let p = write_trace(dir);
    let names: [(u64, &str); 5] = [
        (0x1000, "ggml_cuda_device_malloc(void**, unsigned long, int)"),
        (0x1300, "llama_model::load_tensors(llama_model_loader&)"),
        (0x1400, "llama_kv_cache::llama_kv_cache(llama_model const&, ggml_type, ggml_type, bool, bool, unsigned int)"),
        (0x1800, "ggml_cuda_pool_vmm::alloc(unsigned long, unsigned long*)"),
        (0x1d00, "main"),
    ];
    let mut l = load_traces(&[p]).unwrap();
    l.symbols = Symbols::resolve_with(&l, |_, a| {
        names.iter().find(|(x, _)| *x == a).map(|(_, n)| Frame { addr: a, function: Some(n.to_string()), source: vramtrace_analyzer::symbolize::NameSource::Injected, ..Frame::default() })
    });
    analyze(&l, &Options::default())
}

/// A fresh temporary directory (removed when dropped).
/// A temporary directory (tempfile's), kept after the test when `VRAMTRACE_KEEP_TEST_OUTPUT` is
/// set, to look at what the viewer wrote.
pub struct TempDir(Option<tempfile::TempDir>);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(Some(tempfile::Builder::new().prefix(&format!("vramtrace-viewer-{tag}-")).tempdir().unwrap()))
    }
    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        if let (Some(d), true) = (self.0.take(), std::env::var_os("VRAMTRACE_KEEP_TEST_OUTPUT").is_some()) {
            eprintln!("kept {}", d.keep().display());
        }
    }
}
