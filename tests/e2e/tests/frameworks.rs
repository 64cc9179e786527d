//! Python frameworks attributed by their Python frames: vLLM-, SGLang-, transformers- and
//! PyTorch-shaped programs (tests/frameworks: package trees with the real module paths and
//! function names, allocating through a torch-like layer over a native library whose frames
//! look like PyTorch's caching allocator) run under the shim on the fake driver, on every
//! CPython 3.10–3.13 here. The report must put every byte the driver handed out in the category
//! the program says it is (its EXPECT lines: bytes, calls, and bytes still held at exit).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use vramtrace_e2e::python::{interpreters, Interpreter};
use vramtrace_e2e::*;

const CATEGORIES: [&str; 5] = ["weights", "kv_cache", "cuda_graphs", "compute", "framework_cache"];

/// The torch-like native library (`libc10_cuda.so`), built once per test run.
fn torchlike() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = env().profile_dir.join("torchlike");
        let out = Command::new("bash").arg(env().repo.join("tests/frameworks/build.sh")).arg(&dir).output().expect("build.sh");
        assert!(out.status.success(), "building libc10_cuda.so: {}", String::from_utf8_lossy(&out.stderr));
        dir
    })
    .clone()
}

/// `EXPECT…` line `label` of a program's output: bytes (or calls) per category.
fn expected(stdout: &str, label: &str) -> BTreeMap<String, u64> {
    let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(label)).unwrap_or_else(|| panic!("no {label} line in:\n{stdout}"));
    line.split_whitespace().skip(1).map(|kv| kv.split_once('=').unwrap()).map(|(k, v)| (k.to_string(), v.parse().unwrap())).collect()
}

/// Per category: bytes the driver handed out, allocating calls, bytes never freed at exit.
fn attributed(report: &serde_json::Value) -> [BTreeMap<String, u64>; 3] {
    let mut out: [BTreeMap<String, u64>; 3] = Default::default();
    for c in CATEGORIES {
        for m in &mut out {
            m.insert(c.to_string(), 0);
        }
    }
    for row in report["attribution"].as_array().unwrap() {
        let c = row["category"].as_str().unwrap().to_string();
        *out[0].entry(c.clone()).or_default() += row["bytes_allocated"].as_u64().unwrap();
        *out[1].entry(c).or_default() += row["allocations"].as_u64().unwrap();
    }
    for l in report["leaks"].as_array().unwrap().iter().filter(|l| l["kind"] == "exit" && l["device"].is_number()) {
        *out[2].entry(l["category"].as_str().unwrap().to_string()).or_default() += l["bytes"].as_u64().unwrap();
    }
    out
}

fn check(program: &str, py: &Interpreter, extra_env: &[(&str, &str)]) {
    let script = env().repo.join("tests/frameworks").join(format!("run_{program}.py"));
    let lib = torchlike();
    let mut envs: Vec<(&str, &str)> = vec![("TORCHLIKE_LIB_DIR", lib.to_str().unwrap()), ("FAKE_CUDA_CAPACITY", "64GiB"), ("FAKE_CUDA_RUNTIME_BYTES", "0")];
    envs.extend_from_slice(extra_env);
    let (dir, out) = vramtrace_run(&py.exe, &[script.to_str().unwrap()], &envs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{program} on {}: {}\n{stdout}", py.label(), String::from_utf8_lossy(&out.stderr));
    let r = report_json(dir.path(), &[]);
    let [bytes, calls, live] = attributed(&r);
    let what = format!("{program} on {} {extra_env:?}", py.label());
    for (label, got) in [("EXPECT", &bytes), ("EXPECT_CALLS", &calls), ("EXPECT_LIVE", &live)] {
        let want = expected(&stdout, label);
        for c in CATEGORIES {
            assert_eq!(got[c], want[c], "{what}: {label} {c}: attributed {got:?}, the program says {want:?}");
        }
    }
    // Nothing else: every driver allocation is one of the program's categories.
    for (c, b) in &bytes {
        assert!(CATEGORIES.contains(&c.as_str()) || *b == 0, "{what}: {b} bytes attributed to {c}");
    }
}

fn on_every_interpreter(program: &str) {
    for py in interpreters() {
        check(program, &py, &[]);
    }
    // PyTorch's expandable segments (cuMemCreate + cuMemMap pages) on one interpreter.
    let py = interpreters().into_iter().find(|p| p.minor() == 12).expect("3.12");
    check(program, &py, &[("TORCHLIKE_EXPANDABLE_SEGMENTS", "1")]);
}

#[test]
fn vllm_weights_kv_cache_graphs_and_compute_are_told_apart() {
    on_every_interpreter("vllm");
}

/// `events --json` shows each allocation's Python frames where the interpreter ran them: inside
/// the native stack, outward of the caching allocator's frames, as `file.py:LINE in Qual.name`.
#[test]
fn events_place_python_frames_in_the_native_stack() {
    let py = interpreters().into_iter().find(|p| p.minor() == 12).expect("3.12");
    let script = env().repo.join("tests/frameworks/run_vllm.py");
    let lib = torchlike();
    let (dir, out) = vramtrace_run(&py.exe, &[script.to_str().unwrap()], &[("TORCHLIKE_LIB_DIR", lib.to_str().unwrap()), ("FAKE_CUDA_CAPACITY", "64GiB")]);
    assert!(out.status.success());
    let ev = Command::new(&env().vramtrace).args(["events", "--json"]).arg(dir.path()).output().unwrap();
    assert!(ev.status.success());
    let load = String::from_utf8_lossy(&ev.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["api"] == "cuMemAlloc_v2" && e["stack"].as_array().unwrap().iter().any(|f| f.as_str().unwrap().ends_with(" in GPUModelRunner.load_model")))
        .expect("an allocation under GPUModelRunner.load_model");
    let stack: Vec<&str> = load["stack"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    let native = stack.iter().position(|f| f.contains("DeviceCachingAllocator::malloc")).expect("the allocator's native frame");
    let python = stack.iter().position(|f| f.contains("vllm/v1/worker/gpu_model_runner.py:") && f.ends_with(" in GPUModelRunner.load_model")).unwrap();
    assert!(native < python, "Python frames outward of the allocator's: {stack:#?}");
    assert!(!stack.iter().any(|f| f.contains("_PyEval_EvalFrameDefault")), "evaluation frames replaced by the Python frames they ran: {stack:#?}");
}

#[test]
fn sglang_weights_kv_pools_graphs_and_compute_are_told_apart() {
    on_every_interpreter("sglang");
}

#[test]
fn transformers_weights_caches_and_generation_are_told_apart() {
    on_every_interpreter("transformers");
}

#[test]
fn pytorch_module_moves_are_weights_and_the_rest_stays_the_framework_cache() {
    on_every_interpreter("torch");
}
