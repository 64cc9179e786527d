//! `vramtrace diff` end to end: pairs of llama_shaped runs on the fake driver that differ in
//! known ways, recorded with `vramtrace run`, compared with `vramtrace diff --json`. Each
//! difference must be reported exactly and nothing else; identical runs report no change; the
//! gate's exit codes. Every child process runs under a time limit.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use vramtrace_e2e::*;

const LIMIT: Duration = Duration::from_secs(120);

/// `LLAMA_SMALL`: peak 1.66 GiB, default noise threshold ≈ 8.5 MiB.
const BASE: &[(&str, &str)] = LLAMA_SMALL;

/// Runs `cmd` with stdout/stderr in files, killing it after `LIMIT`.
fn bounded(mut cmd: Command) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("stdout"), dir.path().join("stderr"));
    cmd.stdin(Stdio::null()).stdout(std::fs::File::create(&o).unwrap()).stderr(std::fs::File::create(&e).unwrap());
    let mut child = cmd.spawn().expect("spawn");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: std::fs::read(&o).unwrap(), stderr: std::fs::read(&e).unwrap() }
}

/// `vramtrace run --out <tmp> -- program` with BASE overridden by `extra`.
fn record(program: &Path, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(&env().vramtrace);
    c.arg("run").arg("--out").arg(dir.path()).arg("--").arg(program);
    c.env("LD_LIBRARY_PATH", &env().fake_dir).env_remove("LD_PRELOAD");
    for (k, v) in BASE.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).chain(extra) {
        c.env(k, v);
    }
    let out = bounded(c);
    assert!(out.status.success(), "vramtrace run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    dir
}

fn llama(extra: &[(&str, &str)]) -> tempfile::TempDir {
    record(&runner("llama_shaped"), extra)
}

fn vramtrace(args: &[&std::ffi::OsStr]) -> Output {
    let mut c = Command::new(&env().vramtrace);
    c.args(args);
    bounded(c)
}

struct DiffRun {
    out: Output,
    json: Value,
}

impl DiffRun {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

/// `vramtrace diff OLD NEW --json FILE [extra]`, with the JSON read back.
fn diff(old: &Path, new: &Path, extra: &[&str]) -> DiffRun {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("diff.json");
    let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref(), old.as_os_str(), new.as_os_str(), "--json".as_ref(), json.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = vramtrace(&args);
    let code = out.status.code();
    assert!(code == Some(0) || code == Some(1), "vramtrace diff failed ({code:?}):\n{}", String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    DiffRun { out, json }
}

fn category<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["categories"].as_array().unwrap().iter().find(|c| c["category"] == name).unwrap_or_else(|| panic!("no category {name}"))
}

fn keys(d: &Value, list: &str) -> Vec<String> {
    d["sites"][list].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect()
}

/// Every category but `except` is exactly unchanged.
fn assert_only_category_changed(d: &Value, except: &str) {
    for c in d["categories"].as_array().unwrap() {
        if c["category"] != except {
            assert_eq!(c["delta"], 0, "{c}");
            assert_eq!(c["changed"], false, "{c}");
        }
    }
}

#[test]
fn identical_runs_report_no_change() {
    let (a, b) = (llama(&[]), llama(&[]));
    let r = diff(a.path(), b.path(), &[]);
    assert_eq!(r.out.status.code(), Some(0));
    let d = &r.json;
    assert_eq!(d["changed"], false, "{d:#}");
    assert_eq!(d["peak"]["delta"], 0);
    assert_only_category_changed(d, "");
    for list in ["changed", "new", "vanished"] {
        assert!(keys(d, list).is_empty(), "{list}: {:?}", keys(d, list));
    }
    assert_eq!(d["sites"]["matched"], d["sites"]["unchanged"]);
    assert!(d["sites"]["matched"].as_u64().unwrap() >= 6, "{}", d["sites"]);
    assert_eq!(d["growth"][0]["changed"], false);
    assert_eq!(d["ooms"]["changed"], false);
    assert_eq!(d["runtime"]["max"]["changed"], false);
    assert_eq!(d["gate_passed"], true);
    assert!(r.stdout().contains("Result: no change"), "{}", r.stdout());
}

#[test]
fn doubled_kv_is_exactly_the_kv_delta() {
    let (a, b) = (llama(&[]), llama(&[("LLAMA_KV_BYTES", "536870912")]));
    let r = diff(a.path(), b.path(), &[]);
    assert_eq!(r.out.status.code(), Some(0), "no gate given: a change alone is exit 0");
    let d = &r.json;
    assert_eq!(d["changed"], true);
    let kv = category(d, "kv_cache");
    assert_eq!((kv["old"].as_u64(), kv["new"].as_u64(), kv["delta"].as_i64()), (Some(256 * MIB), Some(512 * MIB), Some(256 * MIB as i64)));
    assert_eq!(kv["delta_pct"], 100.0);
    assert_eq!(kv["changed"], true);
    assert_only_category_changed(d, "kv_cache");
    assert_eq!(d["peak"]["delta"], 256 * MIB);
    // Exactly one call site changed, by exactly the KV bytes; none appeared or vanished.
    assert_eq!(keys(d, "changed").len(), 1, "{:?}", keys(d, "changed"));
    let s = &d["sites"]["changed"][0];
    assert!(s["key"].as_str().unwrap().contains("llama_kv_cache::llama_kv_cache("), "{s}");
    assert_eq!(s["category"], "kv_cache");
    assert_eq!(s["max_live_delta"], 256 * MIB);
    assert_eq!(s["at_peak_delta"], 256 * MIB);
    assert!(keys(d, "new").is_empty() && keys(d, "vanished").is_empty());
    assert_eq!(d["growth"][0]["changed"], false, "{}", d["growth"]);
    // Both runs mark tokens: the timelines are aligned at the 4 steps.
    assert_eq!(d["alignment"]["mode"], "markers");
    assert_eq!(d["alignment"]["anchors"].as_array().unwrap().len(), 4);
    let out = r.stdout();
    assert!(out.contains("kv_cache") && out.contains("+256.00 MiB +100.0%"), "{out}");
}

#[test]
fn pool_slope_change_is_a_growth_slope_delta() {
    let (a, b) = (llama(&[]), llama(&[("LLAMA_POOL_BYTES_PER_TOKEN", "65536")]));
    let d = diff(a.path(), b.path(), &[]).json;
    let g = &d["growth"][0];
    assert_eq!(g["presence"], "both");
    assert_eq!(g["tokens"], 2048);
    assert_eq!(g["changed"], true);
    let pool = g["slopes"].as_array().unwrap().iter().find(|s| s["category"] == "scratch_pool").expect("scratch_pool slope");
    let f = |k: &str| pool[k].as_f64().unwrap();
    assert!((f("old_bytes_per_token") - 32768.0).abs() < 1.0, "{pool}");
    assert!((f("new_bytes_per_token") - 65536.0).abs() < 1.0, "{pool}");
    assert!((f("delta_bytes_per_token") - 32768.0).abs() < 1.0, "{pool}");
    assert_eq!(pool["changed"], true);
    // Nothing else grows per token.
    for s in g["slopes"].as_array().unwrap().iter().filter(|s| s["category"] != "scratch_pool") {
        assert_eq!(s["changed"], false, "{s}");
    }
    // At the peak: the pool at 2048 tokens, 64 → 128 MiB; the same call site.
    let c = category(&d, "scratch_pool");
    assert_eq!((c["old"].as_u64(), c["new"].as_u64()), (Some(64 * MIB), Some(128 * MIB)));
    assert_only_category_changed(&d, "scratch_pool");
    let changed = keys(&d, "changed");
    assert_eq!(changed.len(), 1);
    assert!(changed[0].starts_with("ggml_cuda_pool_vmm::alloc("), "{changed:?}");
    assert!(keys(&d, "new").is_empty() && keys(&d, "vanished").is_empty());
}

#[test]
fn legacy_pool_is_a_new_call_site_and_the_vmm_pool_vanished() {
    let (a, b) = (llama(&[]), llama(&[("LLAMA_NO_VMM", "1")]));
    let d = diff(a.path(), b.path(), &[]).json;
    let (new, vanished) = (keys(&d, "new"), keys(&d, "vanished"));
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].contains("ggml_cuda_pool_leg::alloc("), "{new:?}");
    assert_eq!(vanished.len(), 1, "{vanished:?}");
    assert!(vanished[0].starts_with("ggml_cuda_pool_vmm::alloc("), "{vanished:?}");
    assert_eq!(d["sites"]["new"][0]["category"], "scratch_pool");
    assert!(d["sites"]["new"][0]["old"].is_null());
    assert_eq!(d["sites"]["vanished"][0]["max_live_delta"], -(64 * MIB as i64));
    assert!(keys(&d, "changed").is_empty(), "{:?}", keys(&d, "changed"));
    for c in ["weights", "kv_cache", "compute", "workspace"] {
        assert_eq!(category(&d, c)["delta"], 0, "{c}");
    }
    assert_eq!(d["changed"], true);
}

#[test]
fn rebuilt_binary_with_shifted_addresses_matches_every_site_by_symbol() {
    // The same source built again with 12 KiB of code in front of it (a header forced in with
    // -include, the other flags as tests/runners/build.sh), under the same file name, so every
    // function moves and every symbol stays.
    let tmp = tempfile::tempdir().unwrap();
    let pad = tmp.path().join("pad.h");
    std::fs::write(&pad, "__attribute__((used, noinline)) void vt_diff_pad(void) { __asm__ volatile(\".fill 12288, 1, 0x90\"); }\n").unwrap();
    std::fs::create_dir(tmp.path().join("shifted")).unwrap();
    let shifted = tmp.path().join("shifted/llama_shaped");
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()));
    cc.args(["-std=gnu11", "-Wall", "-Wextra", "-g", "-O1", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls", "-include"])
        .arg(&pad)
        .arg("-o")
        .arg(&shifted)
        .arg(env().repo.join("tests/runners/llama_shaped.c"))
        .arg("-ldl")
        .arg(format!("-Wl,-rpath,{}", env().fake_dir.display()));
    let out = bounded(cc);
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = (llama(&[]), record(&shifted, &[]));

    // The premise: the KV site's frames (module offsets) differ, its key does not.
    let (ra, rb) = (tmp.path().join("a.json"), tmp.path().join("b.json"));
    for (dir, json) in [(a.path(), &ra), (b.path(), &rb)] {
        let o = vramtrace(&["report".as_ref(), dir.as_os_str(), "--json".as_ref(), json.as_os_str()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let read = |p: &PathBuf| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let kv_site = |r: &Value| r["sites"].as_array().unwrap().iter().find(|s| s["key"].as_str().unwrap().contains("llama_kv_cache::llama_kv_cache(")).cloned().unwrap();
    let (ka, kb) = (kv_site(&read(&ra)), kv_site(&read(&rb)));
    assert_eq!(ka["key"], kb["key"]);
    assert_ne!(ka["frames"], kb["frames"], "the rebuild did not move the code");

    // Traces against traces, and a report.json read back against traces.
    for old in [a.path(), ra.as_path()] {
        let d = diff(old, b.path(), &[]).json;
        for list in ["changed", "new", "vanished"] {
            assert!(keys(&d, list).is_empty(), "{list}: {:?}", keys(&d, list));
        }
        assert_eq!(d["changed"], false, "{d:#}");
    }
}

#[test]
fn gate_exit_codes() {
    let (a, b) = (llama(&[]), llama(&[("LLAMA_KV_BYTES", "536870912")]));
    // Within limits: peak +15% ≤ 20%, weights unchanged, KV +100% ≤ 100%.
    let r = diff(a.path(), b.path(), &["--max-peak-increase", "20%", "--max-increase", "weights=0", "--max-increase", "kv_cache=100%"]);
    assert_eq!(r.out.status.code(), Some(0), "{}", r.stderr());
    assert!(!r.stderr().contains("gate failed"));
    assert!(r.stdout().contains("Gate: passed"), "{}", r.stdout());
    assert_eq!(r.json["gate_passed"], true);

    // Exceeded: exit 1, and one line on stderr (no --json here, so nothing else is printed).
    let run = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref(), a.path().as_os_str(), b.path().as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        vramtrace(&args)
    };
    let o = run(&["--max-increase", "kv_cache=0"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "vramtrace: gate failed: kv_cache grew by 256.00 MiB (limit 0 B)\n");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Peak VRAM by category"), "the table is printed anyway");
    let o = run(&["--max-peak-increase", "5%"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("vramtrace: gate failed: peak grew by 256.00 MiB, +15.") && err.ends_with("(limit 5%)\n"), "{err}");
    let o = run(&["--max-increase", "compute=100MiB", "--max-increase", "kv_cache=255MiB"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "vramtrace: gate failed: kv_cache grew by 256.00 MiB (limit 255.00 MiB)\n");

    // The gate compares raw deltas: a threshold that folds the KV change does not hide it.
    let r = diff(a.path(), b.path(), &["--threshold", "300MiB", "--max-increase", "kv_cache=0"]);
    assert_eq!(r.out.status.code(), Some(1));
    assert_eq!(r.json["changed"], false);
    assert_eq!(r.json["threshold_bytes"], 300 * MIB);
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let a = llama(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.txt");
    std::fs::write(&junk, "not a trace\n").unwrap();
    let diffjson = tmp.path().join("d.json");
    let missing = tmp.path().join("missing.vtr");
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (vec![a.path().as_os_str(), missing.as_os_str()], "no such file or directory"),
        (vec![junk.as_os_str(), a.path().as_os_str()], "neither a vramtrace trace"),
        (vec![tmp.path().as_os_str(), a.path().as_os_str()], "no .vtr trace files and no report.json"),
    ];
    for (sides, msg) in cases {
        let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref()];
        args.extend(sides);
        let o = vramtrace(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("vramtrace: ") && err.contains(msg), "{err}");
    }
    // A diff.json is not a report.
    let r = diff(a.path(), a.path(), &[]);
    std::fs::write(&diffjson, serde_json::to_vec(&r.json).unwrap()).unwrap();
    let o = vramtrace(&["diff".as_ref(), diffjson.as_os_str(), a.path().as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("this is a diff.json"));
    // Unknown category in a gate: a usage error.
    let o = vramtrace(&["diff".as_ref(), a.path().as_os_str(), a.path().as_os_str(), "--max-increase".as_ref(), "kv=0".as_ref()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a category"));
}

#[test]
fn output_directory_holds_html_markdown_json_and_charts() {
    let (a, b) = (llama(&[]), llama(&[("LLAMA_KV_BYTES", "536870912")]));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let r = diff(a.path(), b.path(), &["-o", dir.to_str().unwrap()]);
    assert_eq!(r.out.status.code(), Some(0), "{}", r.stderr());
    let written: Value = serde_json::from_slice(&std::fs::read(dir.join("diff.json")).unwrap()).unwrap();
    assert_eq!(written, r.json, "diff.json and --json are the same document");
    let html = std::fs::read_to_string(dir.join("diff.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"), "inline charts");
    assert!(!html.contains("src=") && !html.contains("https://") && !html.contains("xmlns=\"http"), "self-contained");
    assert!(html.contains("llama_kv_cache::llama_kv_cache("));
    let md = std::fs::read_to_string(dir.join("diff.md")).unwrap();
    assert!(md.contains("| **+256.00 MiB +100.0%** |") && md.contains("diff-categories.png"), "{md}");
    for name in ["diff-categories", "diff-timeline-gpu0", "diff-sites"] {
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{name}");
        let png = std::fs::read(dir.join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}");
    }
    // The KV bar in the category colour every other chart uses for kv_cache.
    let svg = std::fs::read_to_string(dir.join("diff-categories.svg")).unwrap();
    assert!(svg.contains("#F28E2B"), "kv_cache orange");
}
