//! Golden end-to-end attribution: programs on the fake driver recorded with `vramtrace run`,
//! analyzed with `vramtrace report --json`. The sizes are the ones the programs allocated.

use vramtrace_e2e::*;

/// See `LLAMA_SMALL`.
const LLAMA_ENV: &[(&str, &str)] = LLAMA_SMALL;

fn llama(program: &str, extra: &[(&str, &str)]) -> (tempfile::TempDir, std::process::Output) {
    let envs: Vec<(&str, &str)> = LLAMA_ENV.iter().chain(extra).copied().collect();
    vramtrace_run(&runner(program), &[], &envs)
}

fn assert_llama_categories(c: &std::collections::BTreeMap<String, u64>, pool: u64) {
    assert_eq!(c["weights"], 1024 * MIB, "{c:?}");
    assert_eq!(c["kv_cache"], 256 * MIB, "{c:?}");
    assert_eq!(c["compute"], 100 * MIB, "{c:?}");
    assert_eq!(c["scratch_pool"], pool, "{c:?}");
    assert_eq!(c["workspace"], 4 * MIB, "{c:?}");
    assert_eq!(c["runtime"], 256 * MIB, "{c:?}");
    assert_eq!(c["unknown"], 0, "{c:?}");
}

#[test]
fn llama_shaped_run_is_attributed_exactly_from_its_stacks() {
    let (dir, out) = llama("llama_shaped", &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The program's own output passed through, and vramtrace's summary followed it.
    assert!(stderr.contains("KV buffer size"), "{stderr}");
    assert!(stderr.contains("trace file(s) in"), "{stderr}");
    let r = report_json(dir.path(), &[]);
    assert_llama_categories(&peak_categories(&r, 0), 64 * MIB);
    // Decided by the stacks (mangled C++ names demangled), not by a fallback.
    let rules: Vec<&str> = r["rules"].as_array().unwrap().iter().map(|u| u["rule"].as_str().unwrap()).collect();
    for rule in ["builtin:llama.kv_cache_ctor", "builtin:ggml.cuda_pool_vmm"] {
        assert!(rules.contains(&rule), "{rules:?}");
    }
    assert!(!rules.iter().any(|r| r.starts_with("log:") || r.starts_with("heuristic:")), "{rules:?}");
    // VMM traps: 32 GiB reserved is address space, never VRAM; the pool's handles were
    // released right after mapping and still count while mapped.
    let dev = &r["devices"][0];
    assert_eq!(dev["fragmentation"]["vmm_reserved_peak_bytes"], 32u64 << 30);
    assert_eq!(dev["fragmentation"]["vmm_mapped_peak_bytes"], 64 * MIB);
    assert_eq!(r["processes"][0]["clean_exit"], true);
    assert!(r["ooms"].as_array().unwrap().is_empty());
    // The address-space map: the weights buffer and the pool's 2 MiB mappings as address ranges.
    let spans = dev["address_map"]["spans"].as_array().unwrap();
    assert!(spans.iter().any(|s| s["size"] == 1024 * MIB && s["category"] == "weights" && s["vmm"] == false && s["end_rel_ns"].is_u64()));
    let pool: Vec<_> = spans.iter().filter(|s| s["vmm"] == true).collect();
    assert!(!pool.is_empty() && pool.iter().all(|s| s["category"] == "scratch_pool"));
    assert_eq!(pool.iter().map(|s| s["size"].as_u64().unwrap()).sum::<u64>(), 64 * MIB, "every mapping, once");
    // The GPU as the driver described it.
    assert_eq!((dev["name"].as_str(), dev["driver_version"].as_str()), (Some("Fake CUDA Device"), Some("12.9")));
}

#[test]
fn legacy_pool_is_scratch_pool_too() {
    let (dir, out) = llama("llama_shaped", &[("LLAMA_NO_VMM", "1")]);
    assert!(out.status.success());
    let c = peak_categories(&report_json(dir.path(), &[]), 0);
    assert_eq!(c["weights"], 1024 * MIB);
    assert_eq!(c["kv_cache"], 256 * MIB);
    assert!(c["scratch_pool"] >= 64 * MIB, "the legacy pool holds at least what the steps used: {c:?}");
    assert_eq!(c["unknown"], 0, "{c:?}");
}

#[test]
fn stripped_runner_is_attributed_through_its_log_lines() {
    let (dir, out) = llama("llama_shaped_stripped", &[]);
    assert!(out.status.success());
    let r = report_json(dir.path(), &[]);
    assert_llama_categories(&peak_categories(&r, 0), 64 * MIB);
    let rules: Vec<&str> = r["rules"].as_array().unwrap().iter().map(|u| u["rule"].as_str().unwrap()).collect();
    for rule in ["log:model_buffer", "log:kv_buffer", "log:compute_buffer"] {
        assert!(rules.contains(&rule), "{rules:?}");
    }
}

#[test]
fn a_rules_file_overrides_a_builtin() {
    let (dir, _) = llama("llama_shaped", &[]);
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rule]]\nname = \"kv is compute here\"\npattern = \"llama_kv_cache::llama_kv_cache\"\ncategory = \"compute\"\n").unwrap();
    let r = report_json(dir.path(), &["--rules", rules.to_str().unwrap()]);
    let c = peak_categories(&r, 0);
    assert_eq!(c["kv_cache"], 0);
    assert_eq!(c["compute"], (256 + 100) * MIB);
    assert!(r["rules"].as_array().unwrap().iter().any(|u| u["rule"] == "user:kv is compute here" && u["bytes_at_peak"] == 256 * MIB));
}

#[test]
fn oom_at_the_end_is_exhaustion_and_the_crash_is_noticed() {
    let (dir, out) = llama("llama_shaped", &[("LLAMA_OOM_AT_END", "1")]);
    assert!(!out.status.success(), "ggml aborts on the failed allocation");
    assert_eq!(out.status.code(), Some(128 + 6), "vramtrace run returns the program's status (SIGABRT)");
    let r = report_json(dir.path(), &[]);
    let ooms = r["ooms"].as_array().unwrap();
    assert_eq!(ooms.len(), 1, "{ooms:?}");
    let o = &ooms[0];
    assert_eq!(o["verdict"], "exhausted", "{o}");
    assert_eq!(o["category"], "scratch_pool", "the pool was growing: {o}");
    assert!(o["driver_total_bytes"].as_u64().unwrap() == 8 << 30, "{o}");
    assert!(o["driver_free_bytes"].as_u64().unwrap() < o["requested_bytes"].as_u64().unwrap());
    assert_eq!(r["processes"][0]["clean_exit"], false);
}

/// A program scripted in Python (ctypes → dlopen/dlsym route) on the fake driver.
fn python_on_fake(script: &str, envs: &[(&str, &str)]) -> (tempfile::TempDir, std::process::Output) {
    let prelude = "import ctypes\n\
        cu = ctypes.CDLL('libcuda.so.1')\n\
        def ok(r):\n    assert r == 0, r\n\
        ok(cu.cuInit(0))\n\
        ctx = ctypes.c_void_p(); ok(cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, 0))\n\
        P = ctypes.c_uint64\n";
    let code = format!("{prelude}{script}");
    let mut all: Vec<(&str, &str)> = vec![("FAKE_CUDA_RUNTIME_BYTES", "0")];
    all.extend_from_slice(envs);
    vramtrace_run(std::path::Path::new("python3"), &["-c", &code], &all)
}

#[test]
fn oom_with_memory_held_by_a_pool_is_not_exhaustion() {
    // 600 MiB allocated and freed stream-ordered: the default pool keeps it. A plain 600 MiB
    // allocation then fails although the memory is "there".
    let script = "p = P(); ok(cu.cuMemAllocAsync(ctypes.byref(p), 600 << 20, None))\n\
        ok(cu.cuMemFreeAsync(p, None))\n\
        q = P(); assert cu.cuMemAlloc_v2(ctypes.byref(q), ctypes.c_size_t(600 << 20)) == 2\n";
    let (dir, out) = python_on_fake(script, &[("FAKE_CUDA_CAPACITY", "1GiB")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report_json(dir.path(), &[]);
    let o = &r["ooms"][0];
    assert_eq!(o["verdict"], "pool_or_fragmentation", "{o}");
    assert_eq!(o["pool_retained_bytes"], 600 * MIB, "{o}");
}

#[test]
fn failed_frees_leave_the_model_intact() {
    let script = "p = P(); ok(cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(1 << 20)))\n\
        ok(cu.cuMemFree_v2(p))\n\
        assert cu.cuMemFree_v2(p) != 0\n\
        assert cu.cuMemFree_v2(P(0xdead0000)) != 0\n";
    let (dir, out) = python_on_fake(script, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report_json(dir.path(), &[]);
    // The driver refused the double free and the wild free: they change nothing (the anomaly
    // kinds are for frees the driver accepted but the trace cannot explain, covered by the
    // analyzer's own tests). The model stays intact and the report comes out.
    assert_eq!(r["processes"][0]["clean_exit"], true);
    assert_eq!(peak_categories(&r, 0)["unknown"], MIB);
    assert!(r["leaks"].as_array().unwrap().is_empty(), "the one allocation was freed: {}", r["leaks"]);
}

#[test]
fn several_processes_share_the_device() {
    let (dir, out) = vramtrace_run(&runner("forker"), &[], &[]);
    assert!(out.status.success());
    let r = report_json(dir.path(), &[]);
    assert_eq!(r["processes"].as_array().unwrap().len(), 2);
    let by_process = r["devices"][0]["processes"].as_array().unwrap();
    assert_eq!(by_process.len(), 2, "both processes used the device");
}

/// Offline, on another machine: the binary is gone from the recorded path, and a copy placed next
/// to the traces (or in $VRAMTRACE_SYMBOL_PATH) is found by name and verified by build-id.
#[test]
fn binaries_copied_next_to_the_traces_symbolize_them_elsewhere() {
    let bin_dir = tempfile::tempdir().unwrap();
    let exe = bin_dir.path().join("llama_shaped");
    std::fs::copy(runner("llama_shaped"), &exe).unwrap();
    let envs: Vec<(&str, &str)> = LLAMA_ENV.to_vec();
    let (dir, out) = vramtrace_run(&exe, &[], &envs);
    assert!(out.status.success());
    drop(bin_dir); // the recorded path no longer exists
    let without = report_json(dir.path(), &[]);
    assert_eq!(peak_categories(&without, 0)["kv_cache"], 256 * MIB, "the log-line fallback still works");
    assert!(!without["rules"].as_array().unwrap().iter().any(|u| u["rule"] == "builtin:llama.kv_cache_ctor"));
    std::fs::copy(runner("llama_shaped"), dir.path().join("llama_shaped")).unwrap();
    let with = report_json(dir.path(), &[]);
    assert_llama_categories(&peak_categories(&with, 0), 64 * MIB);
    assert!(with["rules"].as_array().unwrap().iter().any(|u| u["rule"] == "builtin:llama.kv_cache_ctor"), "stacks symbolized again");
    // A different build under the same name is refused (build-id check), not trusted.
    std::fs::copy(runner("linked"), dir.path().join("llama_shaped")).unwrap();
    let wrong = report_json(dir.path(), &[]);
    assert!(wrong["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("different build-id")), "{}", wrong["warnings"]);
}

/// The README's quick start reports on the bundled sample; it must keep saying what was recorded.
#[test]
fn bundled_sample_report() {
    let sample = env().repo.join("samples/llama-sim");
    let r = report_json(&sample, &[]);
    let c = peak_categories(&r, 0);
    assert_eq!(c["weights"], 3891 * MIB, "{c:?}");
    assert_eq!(c["kv_cache"], 1024 * MIB);
    assert_eq!(c["compute"], 512 * MIB);
    assert_eq!(c["scratch_pool"], 256 * MIB);
    assert_eq!(c["workspace"], 4 * MIB);
    assert_eq!(c["runtime"], 300 * MIB);
    assert_eq!(c["unknown"], 0);
    assert_eq!(r["ooms"].as_array().unwrap().len(), 1);
    assert_eq!(r["ooms"][0]["verdict"], "exhausted");
    let g = &r["growth"][0];
    assert!(g.to_string().contains("scratch_pool"), "{g}");
}
