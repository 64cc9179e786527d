//! Memory model, attribution and results on synthetic traces.

mod common;
use common::*;
use vramtrace_analyzer::*;
use vramtrace_trace::Api;

const MALLOC: u64 = 0x1000;
const BUFT_ALLOC: u64 = 0x1100;
const CTX_TENSORS: u64 = 0x1200;
const LOAD_TENSORS: u64 = 0x1300;
const KV_CTOR: u64 = 0x1400;
const GALLOCR: u64 = 0x1500;
const SCHED_RESERVE: u64 = 0x1600;
const CTX_CTOR: u64 = 0x1700;
const POOL_VMM: u64 = 0x1800;
const CUBLAS: u64 = 0x1900;
const TORCH: u64 = 0x1a00;
const NCCL: u64 = 0x1b00;
const CUDNN: u64 = 0x1c00;
const MAIN: u64 = 0x1d00;
const LIBCUBLASLT: u64 = 0x7000_1234;

fn names() -> Vec<(u64, &'static str)> {
    vec![
        (MALLOC, "ggml_cuda_device_malloc(void**, unsigned long, int)"),
        (BUFT_ALLOC, "ggml_backend_cuda_buffer_type_alloc_buffer(ggml_backend_buffer_type*, unsigned long)"),
        (CTX_TENSORS, "ggml_backend_alloc_ctx_tensors_from_buft"),
        (LOAD_TENSORS, "llama_model::load_tensors(llama_model_loader&)"),
        (KV_CTOR, "llama_kv_cache::llama_kv_cache(llama_model const&, ggml_type, ggml_type, bool, bool, unsigned int)"),
        (GALLOCR, "ggml_gallocr_reserve_n"),
        (SCHED_RESERVE, "ggml_backend_sched_reserve"),
        (CTX_CTOR, "llama_context::llama_context(llama_model const&, llama_context_params)"),
        (POOL_VMM, "ggml_cuda_pool_vmm::alloc(unsigned long, unsigned long*)"),
        (CUBLAS, "cublasCreate_v2"),
        (TORCH, "c10::cuda::CUDACachingAllocator::Native::DeviceCachingAllocator::malloc(signed char, unsigned long, CUstream_st*)"),
        (NCCL, "ncclCommInitRank"),
        (CUDNN, "cudnnCreate"),
        (MAIN, "main"),
    ]
}

fn cat(r: &Report, c: Category) -> u64 {
    r.peak.by_category.get(c)
}

#[test]
fn every_builtin_category() {
    let dir = TempDir::new("cats");
    let mut t = Tr::new(100);
    t.module(1, "/usr/lib/x86_64-linux-gnu/libcublasLt.so.12", 0x7000_0000, 0x7000_0000, 0x7100_0000, &[]);
    let weights = t.stack(&[MALLOC, BUFT_ALLOC, CTX_TENSORS, LOAD_TENSORS, MAIN]);
    let kv = t.stack(&[MALLOC, BUFT_ALLOC, CTX_TENSORS, KV_CTOR, CTX_CTOR, MAIN]);
    let compute = t.stack(&[MALLOC, BUFT_ALLOC, GALLOCR, SCHED_RESERVE, CTX_CTOR, MAIN]);
    let pool = t.stack(&[POOL_VMM, GALLOCR, MAIN]);
    let cublas = t.stack(&[CUBLAS, MAIN]);
    let nccl = t.stack(&[NCCL, MAIN]);
    let cudnn = t.stack(&[CUDNN, MAIN]);
    let lt = t.stack(&[LIBCUBLASLT, MAIN]);
    let torch = t.stack(&[TORCH, MAIN]);
    let nomatch = t.stack(&[MAIN]);

    t.alloc(0x10_0000_0000, 1000 * MIB, weights);
    t.alloc(0x11_0000_0000, 256 * MIB, kv);
    t.alloc(0x12_0000_0000, 100 * MIB, compute);
    t.reserve(0x7f00_0000_0000, 32 * GIB);
    t.create(1, 64 * MIB, pool);
    t.map(0x7f00_0000_0000, 64 * MIB, 1);
    t.release(1);
    t.alloc(0x13_0000_0000, 32 * MIB, cublas);
    t.alloc(0x13_1000_0000, 16 * MIB, nccl);
    t.alloc(0x13_2000_0000, 8 * MIB, cudnn);
    t.alloc(0x13_3000_0000, 4 * MIB, lt);
    t.alloc(0x14_0000_0000, 50 * MIB, torch);
    t.ev(MS, Api::MemHostAlloc, |e| {
        e.ptr = 0x5555_0000;
        e.size = 20 * MIB;
        e.device = -1;
    });
    t.alloc(0x15_0000_0000, 7 * MIB, 0);
    t.alloc(0x15_1000_0000, 3 * MIB, nomatch);
    let traced = (1000 + 256 + 100 + 64 + 32 + 16 + 8 + 4 + 50 + 7 + 3) * MIB;
    t.get_info(80 * GIB - traced - 500 * MIB, 80 * GIB);
    t.end();
    let p = t.write(dir.path());
    let r = run_named(&[p], &names(), &Options::default());

    assert_eq!(cat(&r, Category::Weights), 1000 * MIB);
    assert_eq!(cat(&r, Category::KvCache), 256 * MIB);
    assert_eq!(cat(&r, Category::Compute), 100 * MIB);
    assert_eq!(cat(&r, Category::ScratchPool), 64 * MIB);
    assert_eq!(cat(&r, Category::Workspace), 60 * MIB);
    assert_eq!(cat(&r, Category::FrameworkCache), 50 * MIB);
    assert_eq!(cat(&r, Category::HostPinned), 0, "pinned host memory is never VRAM");
    assert_eq!(cat(&r, Category::Runtime), 500 * MIB);
    assert_eq!(cat(&r, Category::Unknown), 10 * MIB);
    assert_eq!(r.peak.total_bytes, traced + 500 * MIB);
    assert_eq!(r.host.peak_bytes, 20 * MIB);
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.devices[0].capacity_bytes, Some(80 * GIB));
    assert_eq!(r.devices[0].reconciliation.runtime_last_bytes, 500 * MIB);

    assert_eq!(at_peak(&r, "builtin:llama.model_load_tensors"), 0, "the generic allocator under load_tensors is the innermost match");
    assert_eq!(at_peak(&r, "builtin:ggml.alloc_ctx_tensors_under_load"), 1000 * MIB);
    assert_eq!(at_peak(&r, "builtin:llama.kv_cache_ctor"), 256 * MIB);
    assert_eq!(at_peak(&r, "builtin:ggml.gallocr_reserve"), 100 * MIB);
    assert_eq!(at_peak(&r, "builtin:ggml.cuda_pool_vmm"), 64 * MIB);
    assert_eq!(at_peak(&r, "builtin:cublas.create"), 32 * MIB);
    assert_eq!(at_peak(&r, "builtin:nccl.symbol"), 16 * MIB);
    assert_eq!(at_peak(&r, "builtin:cudnn.create"), 8 * MIB);
    assert_eq!(at_peak(&r, "builtin:cublas.module"), 4 * MIB);
    assert_eq!(at_peak(&r, "builtin:torch.caching_allocator"), 50 * MIB);
    assert_eq!(at_peak(&r, "default:no_stack"), 7 * MIB);
    assert_eq!(at_peak(&r, "default:no_match"), 3 * MIB);
    // The audit row names the frame that decided.
    let kv_row = r.attribution.iter().find(|a| a.rule == "builtin:llama.kv_cache_ctor").unwrap();
    assert!(kv_row.frame.as_deref().unwrap().starts_with("llama_kv_cache::llama_kv_cache("));
    assert!(r.sites[kv_row.site].key.contains("llama_kv_cache::llama_kv_cache"));
    // Top call sites at the peak are sorted, the weights first.
    assert_eq!(r.peak.top_sites[0].bytes, 1000 * MIB);
    assert_eq!(r.peak.top_sites[0].category, Category::Weights);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    // Clean exit: everything still allocated is a leak by call site.
    assert!(r.processes[0].clean_exit);
    let leaked: u64 = r.leaks.iter().filter(|l| l.device == Some(0)).map(|l| l.bytes).sum();
    assert_eq!(leaked, traced);
    assert_eq!(r.devices[0].live_at_end.vram_total(), 0, "after the last process exits nothing is left, runtime included");
}

#[test]
fn vmm_traps() {
    let dir = TempDir::new("vmm");
    let mut t = Tr::new(101);
    let pool = t.stack(&[POOL_VMM, MAIN]);
    let va = 0x7f00_0000_0000u64;
    t.reserve(va, 32 * GIB);
    t.create(1, 64 * MIB, pool);
    t.map(va, 64 * MIB, 1);
    t.release(1); // ggml releases right after mapping: still alive while mapped
    t.ev(MS, Api::MemSetAccess, |e| {
        e.ptr = va;
        e.size = 64 * MIB;
    });
    t.create(2, 64 * MIB, pool);
    t.map(va + 64 * MIB, 64 * MIB, 2);
    t.release(2);
    t.create(3, 2 * MIB, pool);
    t.map(va + 128 * MIB, 2 * MIB, 3);
    t.map(va + 130 * MIB, 2 * MIB, 3); // one handle, two addresses: counted once
    t.unmap(va, 132 * MIB); // one unmap covers every mapping
    t.release(3);
    t.address_free(va, 32 * GIB);
    t.end();
    let r = run_named(&[t.write(dir.path())], &names(), &Options::default());
    let d = &r.devices[0];
    assert_eq!(d.peak.total_bytes, 130 * MIB);
    assert_eq!(d.peak.by_category.scratch_pool, 130 * MIB);
    assert_eq!(d.fragmentation.vmm_reserved_peak_bytes, 32 * GIB, "address space is tracked…");
    assert_eq!(d.fragmentation.vmm_mapped_peak_bytes, 132 * MIB);
    assert!(d.timeline.iter().all(|p| p.total_bytes <= 130 * MIB), "…but never counted as memory");
    assert_eq!(d.live_at_end.vram_total(), 0);
    assert!(r.leaks.is_empty(), "{:?}", r.leaks);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    let last = d.timeline.last().unwrap();
    assert_eq!((last.total_bytes, last.vmm_reserved_bytes, last.vmm_mapped_bytes), (0, 0, 0));
}

#[test]
fn handle_released_before_unmap_and_unmapped_later_frees_at_unmap() {
    let dir = TempDir::new("vmm2");
    let mut t = Tr::new(102);
    let va = 0x7f00_0000_0000u64;
    t.reserve(va, GIB);
    t.create(9, 256 * MIB, 0);
    t.map(va, 256 * MIB, 9);
    t.release(9);
    t.get_info(GIB, 10 * GIB); // used 9 GiB, traced 256 MiB
    t.unmap(va, 256 * MIB);
    t.get_info(GIB, 10 * GIB);
    t.end();
    let r = analyze(&load_traces(&[t.write(dir.path())]).unwrap(), &Options::default());
    let s = &r.devices[0].reconciliation.samples;
    assert_eq!(s[0].traced_bytes, 256 * MIB, "released but mapped memory is still traced");
    assert_eq!(s[1].traced_bytes, 0, "freed at the unmap");
    assert_eq!(s[1].runtime_bytes, 9 * GIB);
}

#[test]
fn several_processes_share_a_device() {
    let dir = TempDir::new("procs");
    let mut a = Tr::new(200);
    let mut b = Tr::new(201);
    a.at(T0 + 10 * MS).alloc(0x10_0000_0000, GIB, 0);
    b.at(T0 + 20 * MS).alloc(0x10_0000_0000, 2 * GIB, 0); // same address, other process: no clash
    b.alloc_dev(0x20_0000_0000, 512 * MIB, 1, 0);
    a.at(T0 + 50 * MS).free(0x10_0000_0000);
    a.end();
    b.at(T0 + 60 * MS).free(0x10_0000_0000);
    b.free(0x20_0000_0000);
    b.end();
    a.write(dir.path());
    b.write(dir.path());
    let r = analyze(&load_traces(&[dir.path().to_path_buf()]).unwrap(), &Options::default());
    assert_eq!(r.processes.len(), 2);
    let d0 = r.devices.iter().find(|d| d.device == 0).unwrap();
    assert_eq!(d0.peak.total_bytes, 3 * GIB);
    let mut by: Vec<(u32, u64)> = d0.peak.by_process.iter().map(|p| (p.pid, p.bytes)).collect();
    by.sort();
    assert_eq!(by, vec![(200, GIB), (201, 2 * GIB)]);
    assert_eq!(r.devices.iter().find(|d| d.device == 1).unwrap().peak.total_bytes, 512 * MIB);
    assert_eq!(r.peak.total_bytes, 3 * GIB + 512 * MIB, "overall = all GPUs summed");
    let pb: Vec<u64> = r.processes.iter().map(|p| p.peak_bytes).collect();
    assert_eq!(pb, vec![GIB, 2 * GIB + 512 * MIB]);
    assert!(r.anomalies.is_empty());
    assert!(r.leaks.is_empty());
}

#[test]
fn user_rules_override_builtins() {
    let dir = TempDir::new("rules");
    let mut t = Tr::new(300);
    t.module(1, "/opt/lib/libfoo.so", 0x6000_0000, 0x6000_0000, 0x6010_0000, &[]);
    let pool = t.stack(&[POOL_VMM, MAIN]);
    let foo = t.stack(&[0x6000_0100, MAIN]);
    let weights = t.stack(&[MALLOC, BUFT_ALLOC, CTX_TENSORS, LOAD_TENSORS, MAIN]);
    t.create(1, 10 * MIB, pool);
    t.alloc(0x10_0000_0000, 20 * MIB, foo);
    t.alloc(0x11_0000_0000, 30 * MIB, weights);
    t.end();
    let rules = Rules::from_toml_str(
        r#"
        [[rule]]
        name = "my pool"
        pattern = "ggml_cuda_pool_*"
        category = "workspace"

        [[rule]]
        module = "libfoo.so"
        category = "compute"

        # A user rule matching an outer frame still beats a built-in matching an inner one.
        [[rule]]
        pattern = "main"
        within = "nothing_outward"
        category = "kv_cache"
        "#,
    )
    .unwrap();
    assert_eq!(rules.rules.len(), 3);
    let opts = Options { rules: Some(rules), ..Options::default() };
    let r = run_named(&[t.write(dir.path())], &names(), &opts);
    assert_eq!(r.peak.by_category.workspace, 10 * MIB);
    assert_eq!(r.peak.by_category.scratch_pool, 0);
    assert_eq!(at_peak(&r, "user:my pool"), 10 * MIB);
    assert_eq!(at_peak(&r, "user:libfoo.so"), 20 * MIB);
    assert_eq!(r.peak.by_category.compute, 20 * MIB);
    assert_eq!(r.peak.by_category.weights, 30 * MIB, "a `within` that fails leaves the built-in");
    let row = r.attribution.iter().find(|a| a.rule == "user:my pool").unwrap();
    assert_eq!(row.source, RuleSource::User);

    let outer = Rules::from_toml_str("[[rule]]\npattern = \"main\"\ncategory = \"kv_cache\"\n").unwrap();
    let dir2 = TempDir::new("rules2");
    let mut t = Tr::new(301);
    let pool = t.stack(&[POOL_VMM, MAIN]);
    t.create(1, 10 * MIB, pool);
    t.end();
    let r = run_named(&[t.write(dir2.path())], &names(), &Options { rules: Some(outer), ..Options::default() });
    assert_eq!(r.peak.by_category.kv_cache, 10 * MIB);
}

#[test]
fn stripped_runner_attributed_by_log_lines() {
    let dir = TempDir::new("logs");
    let mut t = Tr::new(400);
    let model = 3_926_938_092u64; // 3745.02 MiB as printed
    let compute = 314_583_532u64; // 300.01 MiB
    let mut lines = Vec::new();
    let mut line = |t: u64, s: &str| lines.push(format!("{{\"t_ns\":{t},\"stream\":\"stderr\",\"line\":{}}}", serde_json::to_string(s).unwrap()));
    t.get_info(20 * GIB, 24 * GIB);
    t.alloc(0x10_0000_0000, model, 0);
    line(t.t + 5 * MS, "load_tensors:        CUDA0 model buffer size =  3745.02 MiB");
    line(t.t + 6 * MS, "load_tensors:   CPU_Mapped model buffer size =   281.81 MiB");
    t.alloc(0x11_0000_0000, 123 * MIB, 0); // nothing describes this one
    t.ev(10 * MS, Api::MemHostAlloc, |e| {
        e.ptr = 0x5000_0000;
        e.size = 16 * MIB + 10486;
        e.device = -1;
    });
    t.alloc(0x12_0000_0000, 512 * MIB, 0);
    line(t.t + 2 * MS, "llama_kv_cache:      CUDA0 KV buffer size =   512.00 MiB");
    t.alloc(0x13_0000_0000, compute, 0);
    line(t.t + 3 * MS, "llama_context:      CUDA0 compute buffer size =   300.01 MiB");
    line(t.t + 3 * MS, "llama_context:  CUDA_Host compute buffer size =    16.01 MiB");
    t.reserve(0x7f00_0000_0000, 32 * GIB);
    t.create(1, 64 * MIB, 0); // ggml's VMM pool
    t.map(0x7f00_0000_0000, 64 * MIB, 1);
    t.release(1);
    t.alloc(0x14_0000_0000, 8 * MIB, 0); // legacy-pool style buffer during decode
    t.alloc(0x15_0000_0000, 4 * MIB, 0); // cuBLAS workspace, by its size
    t.alloc(0x16_0000_0000, 4 * MIB, 0); // only one per device: this one is pool
    t.end();
    t.write(dir.path());
    std::fs::write(dir.path().join("output-400.jsonl"), lines.join("\n") + "\nnot json\n").unwrap();
    let r = analyze(&load_traces(&[dir.path().to_path_buf()]).unwrap(), &Options::default());
    let c = &r.peak.by_category;
    assert_eq!(c.weights, model);
    assert_eq!(c.kv_cache, 512 * MIB);
    assert_eq!(c.compute, compute);
    assert_eq!(c.scratch_pool, 64 * MIB + 8 * MIB + 4 * MIB);
    assert_eq!(c.workspace, 4 * MIB);
    assert_eq!(at_peak(&r, "heuristic:cublas_workspace_size"), 4 * MIB);
    assert_eq!(c.unknown, 123 * MIB);
    assert_eq!(r.host.peak_bytes, 16 * MIB + 10486);
    assert_eq!(at_peak(&r, "log:model_buffer"), model);
    assert_eq!(at_peak(&r, "log:kv_buffer"), 512 * MIB);
    assert_eq!(at_peak(&r, "log:compute_buffer"), compute);
    assert_eq!(at_peak(&r, "heuristic:ggml_vmm_pool"), 64 * MIB);
    assert_eq!(at_peak(&r, "heuristic:ggml_after_setup"), 12 * MIB);
    assert_eq!(r.log_lines.len(), 3, "host and CPU buffer lines are not device lines");
    assert!(r.log_lines.iter().all(|l| l.matched.is_some()));
    assert!(r.warnings.iter().any(|w| w.contains("output-400.jsonl") && w.contains("1 unreadable")), "{:?}", r.warnings);
}

fn oom_trace(dir: &std::path::Path, pid: u32, f: impl FnOnce(&mut Tr)) -> Report {
    let mut t = Tr::new(pid);
    f(&mut t);
    t.end();
    run_named(&[t.write(dir)], &names(), &Options::default())
}

#[test]
fn oom_exhausted() {
    let dir = TempDir::new("oom1");
    let r = oom_trace(dir.path(), 500, |t| {
        let w = t.stack(&[MALLOC, BUFT_ALLOC, CTX_TENSORS, LOAD_TENSORS, MAIN]);
        let pool = t.stack(&[POOL_VMM, MAIN]);
        t.get_info(8 * GIB - 512 * MIB, 8 * GIB); // runtime 512 MiB
        t.at(T0 + SEC).alloc(0x10_0000_0000, 5 * GIB, w);
        t.reserve(0x7f00_0000_0000, 32 * GIB);
        for i in 0..3u64 {
            t.at(T0 + (25 + i) * SEC).create(i + 1, 512 * MIB, pool);
            t.map(0x7f00_0000_0000 + i * 512 * MIB, 512 * MIB, i + 1);
            t.release(i + 1);
        }
        t.at(T0 + 30 * SEC).ev(0, Api::MemCreate, |e| {
            e.size = 2 * GIB;
            e.handle = 77;
            e.stack_id = pool;
            e.result = 2;
            e.free = GIB;
            e.total = 8 * GIB;
        });
    });
    assert_eq!(r.ooms.len(), 1);
    let o = &r.ooms[0];
    assert_eq!(o.verdict, Verdict::Exhausted);
    assert_eq!((o.requested_bytes, o.driver_free_bytes, o.driver_total_bytes), (2 * GIB, Some(GIB), Some(8 * GIB)));
    assert_eq!(o.free_source, "driver");
    assert_eq!(o.by_category.weights, 5 * GIB);
    assert_eq!(o.by_category.scratch_pool, 1536 * MIB);
    let g = o.grew_most.as_ref().unwrap();
    assert_eq!((g.category, g.bytes), (Category::ScratchPool, 1536 * MIB), "weights were loaded outside the window");
    assert_eq!(o.category, Category::ScratchPool);
    assert!(o.reason.contains("device was full"), "{}", o.reason);
    // The failed call changed nothing.
    assert_eq!(r.devices[0].peak.by_category.scratch_pool, 1536 * MIB);
    assert_eq!(anomaly_count(&r, "unknown_release"), 0);
}

#[test]
fn oom_held_by_pool_or_fragmentation() {
    let dir = TempDir::new("oom2");
    let r = oom_trace(dir.path(), 501, |t| {
        t.get_info(8 * GIB, 8 * GIB);
        t.ev(MS, Api::MemAllocAsync, |e| {
            e.ptr = 0x30_0000_0000;
            e.size = 2 * GIB;
        });
        t.ev(MS, Api::MemFreeAsync, |e| e.ptr = 0x30_0000_0000);
        // 512 MiB free, 2 GiB retained by the pool: a 1 GiB cuMemAlloc fails.
        t.ev(MS, Api::MemAlloc, |e| {
            e.size = GIB;
            e.result = 2;
            e.free = 512 * MIB;
            e.total = 8 * GIB;
            e.ptr = 0xdead; // garbage in a failed call's out-param must not count
        });
        // Enough free memory but the call failed: fragmentation.
        t.ev(MS, Api::MemAlloc, |e| {
            e.size = GIB;
            e.result = 2;
            e.free = 3 * GIB;
            e.total = 8 * GIB;
        });
        // Not an OOM at all.
        t.ev(MS, Api::MemAlloc, |e| {
            e.size = GIB;
            e.result = 1;
        });
        t.free(0xdead);
    });
    assert_eq!(r.ooms.len(), 3);
    let o = &r.ooms[0];
    assert_eq!(o.verdict, Verdict::PoolOrFragmentation);
    assert_eq!(o.pool_retained_bytes, 2 * GIB);
    assert!(o.reason.contains("retained by stream-ordered pools"), "{}", o.reason);
    assert_eq!(r.ooms[1].verdict, Verdict::PoolOrFragmentation);
    assert!(r.ooms[1].reason.contains("fragmentation"), "{}", r.ooms[1].reason);
    assert_eq!(r.ooms[2].verdict, Verdict::NotOutOfMemory);
    assert_eq!(anomaly_count(&r, "unknown_free"), 1, "the failed call's pointer was never live");
    // Retained pool memory is live device memory until trimmed.
    assert_eq!(r.peak.by_category.scratch_pool, 2 * GIB);
    assert_eq!(r.devices[0].fragmentation.pool_retained_peak_bytes, 2 * GIB);
}

#[test]
fn pool_trim_releases_retained_memory() {
    let dir = TempDir::new("trim");
    let r = oom_trace(dir.path(), 502, |t| {
        let torch = t.stack(&[TORCH, MAIN]);
        t.ev(MS, Api::MemAllocAsync, |e| {
            e.ptr = 0x30_0000_0000;
            e.size = GIB;
            e.stack_id = torch;
        });
        t.ev(MS, Api::MemFreeAsync, |e| e.ptr = 0x30_0000_0000);
        t.ev(MS, Api::MemAllocAsync, |e| {
            e.ptr = 0x30_1000_0000;
            e.size = 256 * MIB; // reuses retained memory: no growth
            e.stack_id = torch;
        });
        t.ev(MS, Api::MemPoolTrimTo, |e| {
            e.handle = 0xabc; // the default pool's real handle, never seen at allocation
            e.size = 0;
        });
    });
    let d = &r.devices[0];
    assert_eq!(d.peak.total_bytes, GIB, "reuse from the pool does not add memory");
    assert_eq!(d.peak.by_category.framework_cache, GIB, "retained memory of a framework's pool stays framework_cache");
    let last = d.timeline.iter().rev().find(|p| p.total_bytes > 0).unwrap();
    assert_eq!(last.total_bytes, 256 * MIB, "trim released the retained 768 MiB");
    assert_eq!(last.pool_retained_bytes, 0);
    assert_eq!(d.fragmentation.pools[0].trims, 1);
    assert_eq!(d.fragmentation.pools[0].peak_reserved_bytes, GIB);
}

#[test]
fn anomalies_are_reported_not_fatal() {
    let dir = TempDir::new("anom");
    let mut t = Tr::new(600);
    t.free(0xbad0);
    t.alloc(0x10_0000_0000, MIB, 0);
    t.free(0x10_0000_0000);
    t.free(0x10_0000_0000);
    t.ev(0, Api::MemAlloc, |e| {
        e.t_ns -= 500 * MS; // earlier than the previous event
        e.ptr = 0x11_0000_0000;
        e.size = 3 * MIB;
    });
    t.unmap(0x7000_0000_0000, MIB);
    t.release(42);
    t.address_free(0x7100_0000_0000, MIB);
    t.ev(MS, Api::MemFreeHost, |e| e.ptr = 0x1234);
    t.alloc(0x12_0000_0000, 5 * MIB, 0);
    t.end();
    let r = analyze(&load_traces(&[t.write(dir.path())]).unwrap(), &Options::default());
    // 0xbad0 via cuMemFree and 0x1234 via cuMemFreeHost.
    assert_eq!(anomaly_count(&r, "unknown_free"), 2, "{:?}", r.anomalies);
    assert_eq!(anomaly_count(&r, "double_free"), 1);
    assert_eq!(anomaly_count(&r, "out_of_order"), 1);
    assert_eq!(anomaly_count(&r, "unmap_unknown_range"), 1);
    assert_eq!(anomaly_count(&r, "unknown_release"), 1);
    assert_eq!(anomaly_count(&r, "unknown_address_free"), 1);
    let ex = &r.anomalies.iter().find(|a| a.kind == "double_free").unwrap().examples[0];
    assert_eq!((ex.pid, ex.ptr, ex.api.as_str()), (600, 0x10_0000_0000, "cuMemFree_v2"));
    // The analysis went on: both later allocations are live at the peak.
    assert_eq!(r.peak.total_bytes, 8 * MIB);
}

#[test]
fn truncated_and_corrupt_files_give_partial_results() {
    let dir = TempDir::new("corrupt");
    let mut t = Tr::new(700);
    for i in 0..100u64 {
        t.alloc(0x10_0000_0000 + i * 0x1000_0000, MIB, 0);
    }
    t.end();
    let bytes = t.bytes();
    // Cut inside a record near the end (the writer died mid-write).
    let cut = dir.path().join("vramtrace-700.vtr");
    std::fs::write(&cut, &bytes[..bytes.len() - 150]).unwrap();
    let l = load_traces(std::slice::from_ref(&cut)).unwrap();
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    let r = analyze(&l, &Options::default());
    let p = &r.processes[0];
    assert!(p.truncated && !p.clean_exit);
    assert!(p.events >= 97 && p.events < 100, "{}", p.events);
    assert_eq!(r.peak.total_bytes, p.events * MIB);
    assert!(r.leaks.iter().all(|l| l.kind == LeakKind::Crash));

    // Corrupt a record header in the middle: the events before it are used.
    let mut bad = bytes.clone();
    let rec = 8 + std::mem::size_of::<vramtrace_trace::EventRec>();
    let first_event = bytes.len() - 100 * rec - 24; // 100 events then the 24-byte End record
    let at = first_event + 40 * rec;
    bad[at..at + 8].copy_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    let dir2 = TempDir::new("corrupt2");
    std::fs::write(dir2.path().join("vramtrace-701.vtr"), &bad).unwrap();
    std::fs::write(dir2.path().join("vramtrace-702.vtr"), b"definitely not a trace file").unwrap();
    let l = load_traces(&[dir2.path().to_path_buf()]).unwrap();
    assert_eq!(l.traces.len(), 1);
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    assert!(l.warnings.iter().any(|w| w.contains("corrupt record")), "{:?}", l.warnings);
    assert!(l.warnings.iter().any(|w| w.contains("702") && w.contains("skipped")), "{:?}", l.warnings);
    let r = analyze(&l, &Options::default());
    assert_eq!(r.processes[0].events, 40);
    assert_eq!(r.peak.total_bytes, 40 * MIB);

    // A path with no trace at all is an error with a one-line message.
    let e = load_traces(&[dir2.path().join("vramtrace-702.vtr")]).err().unwrap().to_string();
    assert!(e.contains("bad magic") && !e.contains('\n'), "{e}");
    let empty = TempDir::new("empty");
    let e = load_traces(&[empty.path().to_path_buf()]).err().unwrap().to_string();
    assert!(e.contains("no *.vtr"), "{e}");
    assert!(load_traces(&[empty.path().join("missing.vtr")]).is_err());
    std::fs::write(empty.path().join("vramtrace-1.vtr"), b"").unwrap();
    assert!(load_traces(&[empty.path().join("vramtrace-1.vtr")]).is_err());
}

#[test]
fn growth_fit_recovers_slope_and_predicts_max_context() {
    let dir = TempDir::new("growth");
    let mut t = Tr::new(800);
    let w = t.stack(&[MALLOC, BUFT_ALLOC, CTX_TENSORS, LOAD_TENSORS, MAIN]);
    let pool = t.stack(&[POOL_VMM, MAIN]);
    let per_token = 32 * 1024u64;
    t.get_info(8 * GIB - 256 * MIB, 8 * GIB);
    t.alloc(0x10_0000_0000, GIB, w);
    let va = 0x7f00_0000_0000u64;
    t.reserve(va, 32 * GIB);
    let mut mapped = 0u64;
    for (h, tokens) in (1u64..).zip([256u64, 512, 1024, 2048, 4096]) {
        // As a runner marks a batch before decoding it: the marker, then the pool grows to
        // tokens × per_token while the batch runs.
        t.marker(MS, "tokens", tokens as i64);
        let need = tokens * per_token;
        t.create(h, need - mapped, pool);
        t.map(va + mapped, need - mapped, h);
        t.release(h);
        t.free(0x99_0000_0000); // noise: an unknown free in between
        mapped = need;
    }
    // The next step does not fit: not a sample, but the step of the OOM.
    t.marker(MS, "tokens", 8192);
    t.ev(MS, Api::MemCreate, |e| {
        e.size = 8 * GIB;
        e.result = 2;
        e.stack_id = pool;
    });
    t.end();
    let r = run_named(&[t.write(dir.path())], &names(), &Options::default());
    assert_eq!(r.growth.len(), 1);
    let g = &r.growth[0];
    assert_eq!(g.points.len(), 5);
    assert_eq!(g.labels, vec!["tokens".to_string()]);
    let sp = g.fits.iter().find(|f| f.category == Category::ScratchPool).unwrap();
    assert!((sp.fit.slope_bytes_per_token - per_token as f64).abs() < 1e-6, "{:?}", sp);
    assert!(sp.fit.intercept_bytes.abs() < 1e-3);
    assert!((sp.fit.r2 - 1.0).abs() < 1e-9);
    let w = g.fits.iter().find(|f| f.category == Category::Weights).unwrap();
    assert_eq!(w.fit.slope_bytes_per_token, 0.0);
    let total = g.total_fit.as_ref().unwrap();
    assert!((total.slope_bytes_per_token - per_token as f64).abs() < 1e-6);
    assert!((total.intercept_bytes - (GIB + 256 * MIB) as f64).abs() < 1e-3, "runtime is counted");
    assert!(g.runtime_included);
    assert_eq!(g.capacity_bytes, Some(8 * GIB));
    assert_eq!(g.predicted_max_tokens, Some((8 * GIB - GIB - 256 * MIB) / per_token));
    let oom = g.oom.as_ref().unwrap();
    assert_eq!((oom.step_tokens, oom.last_completed_tokens), (Some(8192), Some(4096)));

    // --vram overrides the capacity.
    let r = run_named(&[dir.path().join("vramtrace-800.vtr")], &names(), &Options { vram: Some(4 * GIB), ..Options::default() });
    assert_eq!(r.growth[0].predicted_max_tokens, Some((4 * GIB - GIB - 256 * MIB) / per_token));
}

#[test]
fn growth_from_sidecar_markers() {
    let dir = TempDir::new("sidecar");
    let mut t = Tr::new(801);
    let mut lines = Vec::new();
    // As `sweep` does when the exact count comes with the response: request_start before the
    // request, prompt_tokens after it.
    for (i, tokens) in [100u64, 200, 400].into_iter().enumerate() {
        lines.push(format!("{{\"t_ns\":{},\"label\":\"request_start\",\"value\":0}}", t.t + MS));
        t.at(t.t + 2 * MS);
        t.alloc(0x10_0000_0000 + i as u64 * 0x1000_0000, if i == 0 { 100 * 4096 } else { tokens / 2 * 4096 }, 0);
        t.alloc(0x20_0000_0000, 4096 * 1000, 0); // transient during the request: part of its peak
        t.free(0x20_0000_0000);
        lines.push(format!("{{\"t_ns\":{},\"label\":\"prompt_tokens\",\"value\":{tokens}}}", t.t + MS));
        t.at(t.t + 2 * MS);
    }
    t.end();
    t.write(dir.path());
    std::fs::write(dir.path().join("markers-sweep.jsonl"), lines.join("\n")).unwrap();
    let r = analyze(&load_traces(&[dir.path().to_path_buf()]).unwrap(), &Options::default());
    assert_eq!(r.markers.len(), 6);
    assert!(r.markers.iter().all(|m| m.source == "sidecar" && m.pid.is_none()));
    let g = &r.growth[0];
    let totals: Vec<u64> = g.points.iter().map(|p| p.total_bytes).collect();
    assert_eq!(totals, vec![1100 * 4096, 1200 * 4096, 1400 * 4096]);
    let f = g.total_fit.as_ref().unwrap();
    assert!((f.slope_bytes_per_token - 4096.0).abs() < 1e-6, "{f:?}");
    assert_eq!(g.predicted_max_tokens, None, "no capacity known");
    assert!(!g.runtime_included);
}

#[test]
fn a_failed_request_is_no_sample_but_names_its_oom_step() {
    let dir = TempDir::new("failed-step");
    let mut t = Tr::new(802);
    let mut lines = Vec::new();
    for (i, tokens) in [100u64, 200].into_iter().enumerate() {
        lines.push(format!("{{\"t_ns\":{},\"label\":\"request_start\",\"value\":0}}", t.t + MS));
        t.at(t.t + 2 * MS);
        t.alloc(0x10_0000_0000 + i as u64 * 0x1000_0000, tokens * 4096, 0);
        lines.push(format!("{{\"t_ns\":{},\"label\":\"prompt_tokens\",\"value\":{tokens}}}", t.t + MS));
        t.at(t.t + 2 * MS);
    }
    // The third request runs out of memory; the client marks it failed with its target count.
    lines.push(format!("{{\"t_ns\":{},\"label\":\"request_start\",\"value\":0}}", t.t + MS));
    t.at(t.t + 2 * MS);
    t.ev(MS, Api::MemAlloc, |e| {
        e.size = 1 << 40;
        e.result = 2;
        e.free = 1 << 30;
        e.total = 8 << 30;
    });
    lines.push(format!("{{\"t_ns\":{},\"label\":\"request_failed\",\"value\":800}}", t.t + MS));
    t.at(t.t + 2 * MS);
    t.end();
    t.write(dir.path());
    std::fs::write(dir.path().join("markers-sweep.jsonl"), lines.join("\n")).unwrap();
    let r = analyze(&load_traces(&[dir.path().to_path_buf()]).unwrap(), &Options::default());
    let g = &r.growth[0];
    assert_eq!(g.points.iter().map(|p| p.tokens).collect::<Vec<_>>(), vec![100, 200], "the failed step is no point");
    let o = g.oom.as_ref().expect("the OOM is tied to a step");
    assert_eq!((o.step_tokens, o.last_completed_tokens), (Some(800), Some(200)));
}

#[test]
fn leaks_by_call_site_exit_crash_and_teardown() {
    let dir = TempDir::new("leaks");
    let mut a = Tr::new(900);
    let s1 = a.stack(&[MALLOC, BUFT_ALLOC, CTX_TENSORS, KV_CTOR, MAIN]);
    let s2 = a.stack(&[CUBLAS, MAIN]);
    a.alloc(0x10_0000_0000, 10 * MIB, s1);
    a.alloc(0x11_0000_0000, 20 * MIB, s2);
    a.alloc(0x12_0000_0000, 30 * MIB, s2);
    a.free(0x11_0000_0000);
    a.end();
    let mut b = Tr::new(901); // crashed: no End record
    b.alloc(0x10_0000_0000, 5 * MIB, 0);
    let mut c = Tr::new(902);
    c.ev(MS, Api::DevicePrimaryCtxRetain, |e| e.handle = 0xc0);
    c.alloc(0x10_0000_0000, 7 * MIB, 0);
    c.ev(MS, Api::DevicePrimaryCtxRelease, |_| {});
    c.alloc(0x11_0000_0000, MIB, 0);
    c.free(0x11_0000_0000);
    c.end();
    for t in [a, b, c] {
        t.write(dir.path());
    }
    let r = run_named(&[dir.path().to_path_buf()], &names(), &Options::default());
    let mut l: Vec<(u32, LeakKind, Category, u64, u64)> = r.leaks.iter().map(|l| (l.pid, l.kind, l.category, l.bytes, l.allocations)).collect();
    l.sort_by_key(|x| (x.0, x.3));
    assert_eq!(
        l,
        vec![
            (900, LeakKind::Exit, Category::KvCache, 10 * MIB, 1),
            (900, LeakKind::Exit, Category::Workspace, 30 * MIB, 1),
            (901, LeakKind::Crash, Category::Unknown, 5 * MIB, 1),
            (902, LeakKind::ContextTeardown, Category::Unknown, 7 * MIB, 1),
        ]
    );
    assert!(!r.processes[1].clean_exit);
    assert_eq!(anomaly_count(&r, "unknown_free"), 0, "the teardown freed the pointer; nothing odd after");
    for d in &r.devices {
        assert_eq!(d.live_at_end.vram_total(), 0);
    }
    let row = r.attribution.iter().find(|a| a.category == Category::Workspace).unwrap();
    assert_eq!((row.bytes_leaked, row.allocations, row.bytes_allocated), (30 * MIB, 2, 50 * MIB));
}

#[test]
fn bfc_fragmentation_metric() {
    let dir = TempDir::new("bfc");
    let mut t = Tr::new(1000);
    let va = 0x7f00_0000_0000u64;
    t.reserve(va, 10 * MIB);
    for i in 0..4u64 {
        t.create(i + 1, 2 * MIB, 0);
        t.map(va + i * 2 * MIB, 2 * MIB, i + 1);
    }
    t.unmap(va + 2 * MIB, 2 * MIB); // a hole in the middle: 2 MiB + 2 MiB tail, both 2 MiB
    t.unmap(va + 4 * MIB, 2 * MIB); // the middle hole grows to 4 MiB
    t.end();
    let r = analyze(&load_traces(&[t.write(dir.path())]).unwrap(), &Options::default());
    let d = &r.devices[0];
    assert_eq!(d.fragmentation.bfc_max, 0.5);
    let bfcs: Vec<f64> = d.timeline.iter().map(|p| p.bfc).collect();
    assert!(bfcs.contains(&0.5), "{bfcs:?}");
    assert!(bfcs.iter().any(|&b| (b - 1.0 / 3.0).abs() < 1e-12), "6 MiB free, largest 4 MiB: {bfcs:?}");
    assert_eq!(d.fragmentation.vmm_mapped_peak_bytes, 8 * MIB);
}

#[test]
fn timeline_is_downsampled_but_keeps_spikes() {
    let dir = TempDir::new("tl");
    let mut t = Tr::new(1100);
    for i in 0..20_000u64 {
        t.alloc(0x10_0000_0000 + (i % 7) * 0x1000, MIB, 0);
        if i == 12_345 {
            t.alloc(0x20_0000_0000, 10 * GIB, 0);
            t.free(0x20_0000_0000);
        }
        t.free(0x10_0000_0000 + (i % 7) * 0x1000);
    }
    t.end();
    let r = analyze(&load_traces(&[t.write(dir.path())]).unwrap(), &Options::default());
    let tl = &r.devices[0].timeline;
    assert!(tl.len() <= 2001 && tl.len() > 100, "{}", tl.len());
    assert_eq!(tl.iter().map(|p| p.total_bytes).max(), Some(10 * GIB + MIB));
    assert!(tl.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    assert_eq!(r.peak.total_bytes, 10 * GIB + MIB);
    assert_eq!(r.events, 40_002);
}

#[test]
fn phases_and_vllm_kv_window() {
    let dir = TempDir::new("vllm");
    let mut t = Tr::new(1200);
    let torch = t.stack(&[TORCH, MAIN]);
    t.alloc(0x10_0000_0000, 100 * MIB, torch);
    t.marker(MS, "phase:kv_cache", 1);
    t.alloc(0x11_0000_0000, 64 * MIB, torch);
    t.marker(MS, "phase:kv_cache", 0);
    t.alloc(0x12_0000_0000, 32 * MIB, torch);
    let line_t = t.t + MS;
    t.at(line_t + MS);
    for i in 0..4u64 {
        t.alloc(0x20_0000_0000 + i * 0x1000_0000, 48 * MIB, torch); // one KV tensor per layer
    }
    t.alloc(0x30_0000_0000, 16 * MIB, torch); // a different size ends the run
    t.alloc(0x31_0000_0000, 48 * MIB, torch);
    t.end();
    t.write(dir.path());
    std::fs::write(
        dir.path().join("output-1200.jsonl"),
        format!("{{\"t_ns\":{line_t},\"stream\":\"stdout\",\"line\":\"INFO [kv_cache_utils.py:716] GPU KV cache size: 1,341,136 tokens\"}}\n"),
    )
    .unwrap();
    let r = run_named(&[dir.path().to_path_buf()], &names(), &Options::default());
    assert_eq!(at_peak(&r, "phase:kv_cache"), 64 * MIB);
    assert_eq!(at_peak(&r, "heuristic:vllm_kv_after_log"), 4 * 48 * MIB);
    assert_eq!(r.peak.by_category.kv_cache, 64 * MIB + 4 * 48 * MIB);
    assert_eq!(r.peak.by_category.framework_cache, (100 + 32 + 16 + 48) * MIB);
}

#[test]
fn managed_on_device_pinned_separate() {
    let dir = TempDir::new("managed");
    let mut t = Tr::new(1300);
    t.ev(MS, Api::MemAllocManaged, |e| {
        e.ptr = 0x10_0000_0000;
        e.size = GIB;
        e.device = 1;
    });
    t.ev(MS, Api::MemHostAlloc, |e| {
        e.ptr = 0x7000;
        e.size = 2 * GIB;
        e.device = -1;
    });
    t.ev(MS, Api::MemHostRegister, |e| {
        e.ptr = 0x9000_0000;
        e.size = GIB;
        e.device = -1;
    });
    t.ev(MS, Api::MemHostUnregister, |e| e.ptr = 0x9000_0000);
    t.ev(MS, Api::MemFreeHost, |e| e.ptr = 0x7000);
    t.end();
    let r = analyze(&load_traces(&[t.write(dir.path())]).unwrap(), &Options::default());
    assert_eq!(r.devices.len(), 1);
    assert_eq!(r.devices[0].device, 1);
    assert_eq!(r.devices[0].peak.total_bytes, GIB);
    assert_eq!(r.peak.total_bytes, GIB);
    assert_eq!(r.host.peak_bytes, 3 * GIB);
    assert_eq!(r.processes[0].host_pinned_peak_bytes, 3 * GIB);
    assert_eq!(r.processes[0].peak_bytes, GIB);
}

#[test]
fn report_json_round_trips() {
    let dir = TempDir::new("json");
    let mut t = Tr::new(1400);
    let w = t.stack(&[MALLOC, BUFT_ALLOC, CTX_TENSORS, LOAD_TENSORS, MAIN]);
    t.get_info(7 * GIB, 8 * GIB);
    t.alloc(0x10_0000_0000, GIB, w);
    t.marker(MS, "tokens", 10);
    t.ev(MS, Api::MemAlloc, |e| {
        e.size = 9 * GIB;
        e.result = 2;
        e.free = 6 * GIB;
        e.total = 8 * GIB;
    });
    t.free(0x77);
    t.end();
    let r = run_named(&[t.write(dir.path())], &names(), &Options::default());
    let s = serde_json::to_string_pretty(&r).unwrap();
    let back: Report = serde_json::from_str(&s).unwrap();
    assert_eq!(back, r);
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    for k in [
        "schema_version",
        "vramtrace_version",
        "processes",
        "devices",
        "peak",
        "host",
        "sites",
        "attribution",
        "rules",
        "ooms",
        "leaks",
        "anomalies",
        "markers",
        "growth",
        "log_lines",
        "warnings",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["ooms"][0]["verdict"], "exhausted");
    assert_eq!(v["peak"]["by_category"]["weights"], GIB);
    assert_eq!(v["attribution"][0]["category"], "weights");
}

#[test]
fn random_events_never_panic() {
    let dir = TempDir::new("fuzz");
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..4 {
        let mut t = Tr::new(2000 + round);
        let s = t.stack(&[MALLOC, 0xffff_ffff_ffff_fff0]);
        for _ in 0..3000 {
            let api = Api::ALL[(rnd() % Api::ALL.len() as u64) as usize];
            let pick = |r: u64| match r % 4 {
                0 => r,
                1 => u64::MAX - (r % 5),
                _ => (r % 16) << 21,
            };
            let (a, b, c, d, f) = (rnd(), rnd(), rnd(), rnd(), rnd());
            t.ev((a % 3) * MS, api, |e| {
                e.ptr = pick(a);
                e.size = pick(b);
                e.handle = c % 8;
                e.device = (d % 4) as i32 - 1;
                e.result = if f % 7 == 0 { 2 } else { 0 };
                e.free = pick(f);
                e.total = pick(d);
                e.stack_id = (f % 3) as u32 * s;
                if f % 11 == 0 {
                    e.t_ns = e.t_ns.wrapping_sub(pick(a));
                }
            });
            if rnd() % 50 == 0 {
                t.marker(0, ["tokens", "phase:kv_cache", "x"][(rnd() % 3) as usize], (rnd() % 100) as i64);
            }
        }
        if round % 2 == 0 {
            t.end();
        }
        t.write(dir.path());
    }
    let r = run_named(&[dir.path().to_path_buf()], &names(), &Options::default());
    assert_eq!(r.processes.len(), 4);
    serde_json::to_string(&r).unwrap();
}

#[test]
fn device_ordinals_outside_any_gpu_are_anomalies_not_devices() {
    let dir = TempDir::new("devices");
    let mut t = Tr::new(700);
    t.alloc_dev(0x10_0000_0000, 4 * MIB, 0, 0);
    // What corruption looks like: the all-GPUs key, a negative ordinal, many distinct ones.
    t.alloc_dev(0x11_0000_0000, 64 * MIB, 0x7fff_ffff, 0);
    t.alloc_dev(0x12_0000_0000, 64 * MIB, -2, 0);
    for d in 0..20_000 {
        t.alloc_dev(0x2000_0000_0000 + d as u64 * 0x1000, 4096, 1000 + d, 0);
    }
    t.end();
    let r = analyze(&load_traces(&[t.write(dir.path())]).unwrap(), &Options::default());
    assert_eq!(r.devices.iter().map(|d| d.device).collect::<Vec<_>>(), [0], "only the real GPU");
    assert_eq!(anomaly_count(&r, "implausible_device"), 20_002);
    assert_eq!(r.peak.total_bytes, 4 * MIB, "nothing that was not allocated on a GPU counts");
}

#[test]
fn a_capacity_below_the_fixed_memory_predicts_no_context_at_all() {
    let dir = TempDir::new("tooslow");
    let mut t = Tr::new(710);
    t.alloc(0x10_0000_0000, 8 * GIB, 0);
    for (i, tokens) in [512i64, 1024, 2048].into_iter().enumerate() {
        t.marker(MS, "tokens", tokens);
        t.alloc(0x20_0000_0000 + i as u64 * GIB, tokens as u64 * 32 * 1024, 0);
    }
    t.end();
    let opts = Options { vram: Some(4 * GIB), ..Options::default() };
    let r = analyze(&load_traces(&[t.write(dir.path())]).unwrap(), &opts);
    assert_eq!(r.growth[0].predicted_max_tokens, Some(0), "8 GiB of fixed memory on a 4 GiB card: no context fits");
}
