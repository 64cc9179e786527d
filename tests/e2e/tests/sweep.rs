//! `vramtrace sweep` end to end: the mock OpenAI-compatible server (tests/mock-server)
//! runs under the shim on the fake driver, allocating like llama-server — weights, KV and compute
//! up front, a VMM pool grown by a configured number of bytes per prompt token — and the sweep's
//! report must recover that slope and the context length at which the device runs out.
//! Loopback only; every command runs under a deadline.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use vramtrace_e2e::*;

const MIB: u64 = 1 << 20;
/// The fake driver's VMM granularity: the pool grows in whole 2 MiB granules.
const GRANULE: u64 = 2 * MIB;
/// ~34 KiB per token: the scratch-pool growth reported for ik_llama.cpp with a cuBLAS prompt path.
const BPT: u64 = 34 * 1024;
const RUNTIME: u64 = 256 * MIB;
const WEIGHTS: u64 = 1024 * MIB;
const KV: u64 = 512 * MIB;
const COMPUTE: u64 = 128 * MIB;

fn mock() -> PathBuf {
    let p = env().profile_dir.join("mock-llama-server");
    assert!(p.exists(), "mock-llama-server was not built");
    p
}

/// A port nothing listens on, never handed to two tests of this process.
/// A directory with this run's own `libcuda.so.1`. The harness copies the fake driver over the same
/// file in place at the start of every test run; a server of a *concurrent* run (another test
/// binary on the same machine) that executes from it then faults in pages while they are being
/// rewritten (seen as SIGSEGV at 0x0 inside libcuda). Renaming a fresh copy into place gives a new
/// file, so processes already running keep theirs.
fn fake_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = env().profile_dir.join("fake-cuda-sweep");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!(".libcuda.so.1.{}", std::process::id()));
        std::fs::copy(env().profile_dir.join("libcuda.so"), &tmp).expect("copy the fake driver");
        std::fs::rename(&tmp, dir.join("libcuda.so.1")).unwrap();
        dir
    })
}

fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&p) {
            given.push(p);
            return p;
        }
    }
}

struct Sweep {
    dir: tempfile::TempDir,
    out: Output,
}

impl Sweep {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn both(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout(), self.stderr())
    }
    fn json(&self, name: &str) -> Value {
        let p = self.dir.path().join(name);
        let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}\n{}", p.display(), self.both()));
        serde_json::from_slice(&b).unwrap()
    }
    /// report.json's growth entry of GPU 0.
    fn growth(&self) -> Value {
        let r = self.json("report.json");
        r["growth"].as_array().unwrap().iter().find(|g| g["device"] == 0).cloned().unwrap_or_else(|| panic!("no growth for GPU 0\n{}", self.both()))
    }
    fn steps(&self) -> Vec<Value> {
        self.json("sweep.json")["steps"].as_array().unwrap().clone()
    }
    fn markers(&self) -> Vec<(String, i64)> {
        let text = std::fs::read_to_string(self.dir.path().join("markers-sweep.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["label"].as_str().unwrap().to_string(), v["value"].as_i64().unwrap())
            })
            .collect()
    }
}

fn slope(growth: &Value, category: &str) -> f64 {
    let f = growth["fits"].as_array().unwrap().iter().find(|f| f["category"] == category).unwrap_or_else(|| panic!("no {category} fit: {growth}"));
    f["slope_bytes_per_token"].as_f64().unwrap()
}

/// Largest prompt the mock serves: every byte left after runtime and static buffers, in whole
/// granules, divided by the bytes per token.
fn expected_max_tokens(capacity: u64) -> u64 {
    let granules = (capacity - RUNTIME - WEIGHTS - KV - COMPUTE) / GRANULE;
    granules * GRANULE / BPT
}

fn sweep_cmd(port: u16, dir: &Path, capacity: u64, sweep_args: &[&str]) -> Command {
    let mut c = Command::new(&env().vramtrace);
    c.arg("sweep")
        .arg("--url")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--out")
        .arg(dir)
        .args(if sweep_args.contains(&"--startup-timeout") { &[][..] } else { &["--startup-timeout", "30"][..] })
        .args(if sweep_args.contains(&"--timeout") { &[][..] } else { &["--timeout", "30"][..] })
        .args(sweep_args)
        .env("LD_LIBRARY_PATH", fake_dir())
        .env_remove("LD_PRELOAD")
        .env("FAKE_CUDA_CAPACITY", capacity.to_string())
        .env("FAKE_CUDA_RUNTIME_BYTES", RUNTIME.to_string());
    c
}

/// `vramtrace sweep ARGS -- mock-llama-server SERVER_ARGS` on a device of `capacity` bytes.
fn sweep(capacity: u64, sweep_args: &[&str], server_args: &[&str]) -> Sweep {
    sweep_on(free_port(), capacity, sweep_args, server_args)
}

fn sweep_on(port: u16, capacity: u64, sweep_args: &[&str], server_args: &[&str]) -> Sweep {
    let dir = tempfile::tempdir().unwrap();
    let mut c = sweep_cmd(port, dir.path(), capacity, sweep_args);
    c.arg("--").arg(mock()).args(["--port", &port.to_string()]);
    for (k, v) in [("--bytes-per-token", BPT), ("--weights", WEIGHTS), ("--kv", KV), ("--compute", COMPUTE)] {
        c.args([k, &v.to_string()]);
    }
    c.args(server_args);
    let out = bounded(c, 120);
    Sweep { dir, out }
}

fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want
}

#[test]
fn sweep_recovers_slope_and_predicted_max_context() {
    let capacity = 8u64 << 30;
    let s = sweep(capacity, &["--from", "256", "--to", "65536", "--steps", "9"], &["--load-ms", "300"]);
    assert!(s.out.status.success(), "{}", s.both());
    let g = s.growth();
    assert_eq!(g["points"].as_array().unwrap().len(), 9, "{g}");
    let got = slope(&g, "scratch_pool");
    let err = rel_err(got, BPT as f64);
    eprintln!("scratch_pool slope {got:.1} B/token vs {BPT}: error {:.4}%", err * 100.0);
    assert!(err < 0.01, "slope {got} vs {BPT}");
    // Static buffers do not grow.
    for c in ["weights", "kv_cache", "compute", "runtime"] {
        assert!(slope(&g, c).abs() < 1.0, "{c}: {g}");
    }
    assert!(g["total_fit"]["r2"].as_f64().unwrap() > 0.999, "{g}");
    assert_eq!(g["capacity_bytes"], capacity);
    assert_eq!(g["runtime_included"], true);
    let want = expected_max_tokens(capacity);
    let predicted = g["predicted_max_tokens"].as_u64().unwrap();
    let err = rel_err(predicted as f64, want as f64);
    eprintln!("predicted max context {predicted} vs {want}: error {:.4}%", err * 100.0);
    assert!(err < 0.02, "predicted {predicted} vs expected {want}");
    assert!(g["oom"].is_null(), "{g}");

    // The token counts are the server's own, and each request sits between its two markers.
    let steps = s.steps();
    assert_eq!(steps.len(), 9);
    for (st, target) in steps.iter().zip([256u64, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]) {
        assert_eq!(st["status"], "ok", "{st}");
        let n = st["prompt_tokens"].as_u64().unwrap();
        assert!(rel_err(n as f64, target as f64) <= 0.01, "calibrated to the target: {st}");
    }
    let m = s.markers();
    assert_eq!(m.len(), 18, "{m:?}");
    for (pair, st) in m.chunks(2).zip(&steps) {
        assert_eq!(pair[0].0, "request_start");
        assert_eq!((pair[1].0.as_str(), pair[1].1 as u64), ("prompt_tokens", st["prompt_tokens"].as_u64().unwrap()));
    }
    // What a person reads: slopes and the prediction, and the server stopped cleanly.
    let out = s.stdout();
    assert!(out.contains("scratch_pool") && out.contains(&format!("predicted max context: {predicted} tokens")), "{}", s.both());
    assert!(s.stderr().contains("server stopped with SIGTERM (exit code 0)"), "{}", s.both());
    let r = s.json("report.json");
    assert_eq!(r["processes"][0]["clean_exit"], true);
    // The mock's allocations are attributed like llama-server's.
    assert_eq!(peak_categories(&r, 0)["weights"], WEIGHTS);
    assert_eq!(peak_categories(&r, 0)["kv_cache"], KV);
}

/// Capacity leaving 800 MiB for the pool: 16384 tokens (544 MiB) fit, 32768 (1088 MiB) do not.
const TIGHT: u64 = RUNTIME + WEIGHTS + KV + COMPUTE + 800 * MIB;

#[test]
fn forced_oom_mid_sweep_is_reported_at_its_step() {
    let s = sweep(TIGHT, &["--from", "256", "--to", "65536", "--steps", "9"], &[]);
    assert!(s.out.status.success(), "some steps completed: {}", s.both());
    let steps = s.steps();
    assert_eq!(steps.len(), 9, "HTTP errors do not stop the sweep");
    for st in &steps[..7] {
        assert_eq!(st["status"], "ok", "{st}");
    }
    for st in &steps[7..] {
        assert_eq!((st["status"].as_str(), st["http_status"].as_u64()), (Some("http_error"), Some(500)), "{st}");
        assert!(st["error"].as_str().unwrap().contains("out of memory"), "{st}");
        assert_eq!(st["oom_in_trace"], true, "{st}");
    }
    let g = s.growth();
    let oom = &g["oom"];
    assert_eq!(oom["step_tokens"], steps[7]["tokenize_count"], "{g}");
    assert_eq!(oom["last_completed_tokens"], steps[6]["prompt_tokens"], "{g}");
    assert_eq!(g["points"].as_array().unwrap().len(), 7, "failed steps are not samples");
    assert!(rel_err(slope(&g, "scratch_pool"), BPT as f64) < 0.01, "{g}");
    let want = expected_max_tokens(TIGHT);
    let predicted = g["predicted_max_tokens"].as_u64().unwrap();
    eprintln!("after OOM: slope {:.1} vs {BPT}; predicted max context {predicted} vs {want}", slope(&g, "scratch_pool"));
    assert!(rel_err(predicted as f64, want as f64) < 0.02, "predicted {predicted} vs {want}");
    let out = s.stdout();
    assert!(out.contains(&format!("out of memory during step 8 ({} tokens)", steps[7]["tokenize_count"])), "{}", s.both());
    assert!(out.contains("7 of 9 step(s) completed"), "{out}");
}

#[test]
fn oom_abort_kills_the_server_and_names_the_step() {
    let s = sweep(TIGHT, &["--from", "256", "--to", "65536", "--steps", "9"], &["--on-oom", "abort"]);
    assert!(s.out.status.success(), "{}", s.both());
    let steps = s.steps();
    assert_eq!(steps.len(), 8, "the sweep stops when the server is gone");
    let last = &steps[7];
    assert_eq!((last["status"].as_str(), last["oom_in_trace"].as_bool()), (Some("server_died"), Some(true)), "{last}");
    assert_eq!(last["error"], "signal 6 (abort)");
    // Its last words passed through (stderr is no terminal here).
    assert!(s.stderr().contains("CUDA error: out of memory"), "{}", s.both());
    let g = s.growth();
    assert_eq!(g["oom"]["step_tokens"], last["tokenize_count"], "{g}");
    assert!(s.stdout().contains("out of memory during step 8"), "{}", s.both());
    assert_eq!(s.json("report.json")["processes"][0]["clean_exit"], false);
}

#[test]
fn server_error_at_a_step_is_reported_and_left_out_of_the_fit() {
    let s = sweep(8 << 30, &["--from", "256", "--to", "8192", "--steps", "6"], &["--error-at", "3"]);
    assert!(s.out.status.success(), "{}", s.both());
    let steps = s.steps();
    let statuses: Vec<&str> = steps.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["ok", "ok", "http_error", "ok", "ok", "ok"]);
    assert_eq!(steps[2]["error"], "simulated server error at request 3 (--error-at)");
    assert_eq!(steps[2]["oom_in_trace"], false);
    assert!(s.markers().contains(&("request_failed".to_string(), 1024)));
    let g = s.growth();
    assert_eq!(g["points"].as_array().unwrap().len(), 5, "the failed step is no sample: {g}");
    assert!(g["oom"].is_null());
    assert!(rel_err(slope(&g, "scratch_pool"), BPT as f64) < 0.01, "{g}");
    let out = s.stdout();
    assert!(out.contains("5 of 6 step(s) completed") && out.contains("HTTP 500: simulated server error at request 3"), "{out}");
}

#[test]
fn server_dying_mid_sweep_gives_a_partial_report() {
    // Long prompts, so four points fit the slope well despite the 2 MiB granules.
    let s = sweep(8 << 30, &["--from", "2048", "--to", "65536", "--steps", "6"], &["--die-at", "5"]);
    assert!(s.out.status.success(), "{}", s.both());
    let steps = s.steps();
    assert_eq!(steps.len(), 5);
    assert_eq!((steps[4]["status"].as_str(), steps[4]["oom_in_trace"].as_bool()), (Some("server_died"), Some(false)));
    assert_eq!(steps[4]["error"], "signal 6 (abort)");
    let out = s.stdout();
    assert!(out.contains("4 of 6 step(s) completed") && out.contains("steps 6..6 not run: the sweep stopped at step 5"), "{out}");
    assert!(out.contains("server died: signal 6 (abort)"), "{out}");
    // Reported once, as the step's result; not again when the sweep stops the server.
    assert!(s.stderr().contains("dying as asked") && !s.stderr().contains("server had exited"), "{}", s.both());
    let g = s.growth();
    assert_eq!(g["points"].as_array().unwrap().len(), 4);
    assert!(rel_err(slope(&g, "scratch_pool"), BPT as f64) < 0.01, "{g}");
}

#[test]
fn no_completed_step_is_a_failure() {
    let s = sweep(8 << 30, &["--from", "256", "--to", "1024", "--steps", "3"], &["--die-at", "1"]);
    assert_eq!(s.out.status.code(), Some(1), "{}", s.both());
    assert!(s.stdout().contains("0 of 3 step(s) completed"), "{}", s.both());
    assert!(s.growth_or_none().is_none());
}

impl Sweep {
    fn growth_or_none(&self) -> Option<Value> {
        let r = self.json("report.json");
        r["growth"].as_array().unwrap().iter().find(|g| !g["points"].as_array().unwrap().is_empty()).cloned()
    }
}

#[test]
fn request_timeout_is_recorded_and_the_sweep_goes_on() {
    let s = sweep(8 << 30, &["--from", "256", "--to", "2048", "--steps", "4", "--timeout", "1"], &["--hang-at", "2", "--hang-ms", "2500"]);
    assert!(s.out.status.success(), "{}", s.both());
    let statuses: Vec<String> = s.steps().iter().map(|s| s["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, ["ok", "timeout", "ok", "ok"]);
    assert_eq!(s.growth()["points"].as_array().unwrap().len(), 3);
}

#[test]
fn silently_truncated_prompts_are_flagged() {
    let s = sweep(8 << 30, &["--from", "256", "--to", "4096", "--steps", "5"], &["--truncate-at", "1000"]);
    assert!(s.out.status.success(), "{}", s.both());
    let steps = s.steps();
    let counts: Vec<u64> = steps.iter().map(|s| s["prompt_tokens"].as_u64().unwrap()).collect();
    assert_eq!(&counts[3..], [1000, 1000], "{counts:?}");
    assert!(steps[..3].iter().all(|s| s["note"].is_null()), "{steps:?}");
    for st in &steps[3..] {
        assert!(st["note"].as_str().unwrap().contains("it truncates prompts"), "{st}");
    }
    assert!(s.stderr().contains("ok; the server counted only 1000 of ~"), "{}", s.both());
}

#[test]
fn server_that_exits_before_answering_is_a_clear_error() {
    // The weights alone do not fit: the server fails to load and exits.
    let s = sweep(WEIGHTS, &[], &[]);
    assert_eq!(s.out.status.code(), Some(2), "{}", s.both());
    let e = s.stderr();
    assert!(e.contains("the server exited (exit code 1) before it answered at http://127.0.0.1:"), "{e}");
    assert!(e.contains("failed to load model"), "the server's last words are shown: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

/// Without a command: the server runs under `vramtrace run` elsewhere; the sweep only sends
/// requests and writes markers — into the run's directory, so it analyzes the live trace.
#[test]
fn sweep_against_an_already_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut run = Command::new(&env().vramtrace);
    run.args(["run", "--quiet", "--out"])
        .arg(dir.path())
        .arg("--")
        .arg(mock())
        .args(["--port", &port.to_string(), "--bytes-per-token", &BPT.to_string()])
        .env("LD_LIBRARY_PATH", fake_dir())
        .env_remove("LD_PRELOAD")
        .env("FAKE_CUDA_CAPACITY", "8GiB")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut run = run.spawn().unwrap();
    let s = Sweep { out: bounded(sweep_cmd(port, dir.path(), 8 << 30, &["--from", "512", "--to", "16384", "--steps", "6"]), 60), dir };
    // Stop the server (the traced child of `vramtrace run`) the way a person would.
    let server_pid = std::fs::read_dir(s.dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("output-")?.strip_suffix(".jsonl")?.parse::<i32>().ok())
        .next()
        .expect("the server's output log");
    unsafe { libc::kill(server_pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while run.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            unsafe { libc::kill(-(run.id() as i32), libc::SIGKILL) };
            panic!("vramtrace run did not end after SIGTERM to the server");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.out.status.success(), "{}", s.both());
    assert_eq!(s.steps().len(), 6);
    assert!(rel_err(slope(&s.growth(), "scratch_pool"), BPT as f64) < 0.01, "{}", s.growth());
    // The finished trace with the sidecar markers gives the same growth through `report`.
    let r = report_json(s.dir.path(), &[]);
    let g = r["growth"].as_array().unwrap().iter().find(|g| g["device"] == 0).unwrap();
    assert_eq!(g["points"].as_array().unwrap().len(), 6);
    assert!(rel_err(slope(g, "scratch_pool"), BPT as f64) < 0.01, "{g}");
}

/// Without a command and without traces in --out: requests and markers only; a server that
/// goes away mid-sweep ends it with a clear status.
#[test]
fn sweep_without_traces_stops_when_the_server_goes_away() {
    let port = free_port();
    let mut server = command(&mock(), &["--port", &port.to_string(), "--die-at", "3"]);
    server.env("LD_LIBRARY_PATH", fake_dir()).stdout(Stdio::null()).stderr(Stdio::null()).env("FAKE_CUDA_CAPACITY", "8GiB");
    let mut server = server.spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Sweep { out: bounded(sweep_cmd(port, dir.path(), 8 << 30, &["--from", "256", "--to", "4096", "--steps", "5"]), 60), dir };
    let _ = server.kill();
    let _ = server.wait();
    assert!(s.out.status.success(), "{}", s.both());
    let statuses: Vec<String> = s.steps().iter().map(|s| s["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(statuses, ["ok", "ok", "unreachable"]);
    assert!(s.stdout().contains("no traces in"), "{}", s.both());
    assert!(!s.dir.path().join("report.json").exists());
    let labels: Vec<String> = s.markers().into_iter().map(|m| m.0).collect();
    assert_eq!(labels, ["request_start", "prompt_tokens", "request_start", "prompt_tokens", "request_start", "request_failed"]);
}

#[test]
fn a_port_already_served_is_refused() {
    let port = free_port();
    let mut other = command(&mock(), &["--port", &port.to_string()]);
    let mut other = other.env("LD_LIBRARY_PATH", fake_dir()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the first server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = sweep_on(port, 8 << 30, &[], &[]);
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(s.out.status.code(), Some(2), "{}", s.both());
    assert!(s.stderr().contains(&format!("something already answers at http://127.0.0.1:{port}")), "{}", s.both());
    assert!(read_traces(s.dir.path()).is_empty(), "the server was not started");
}

#[test]
fn no_server_at_the_url_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = bounded(sweep_cmd(free_port(), dir.path(), 8 << 30, &["--startup-timeout", "2"]), 30);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("did not answer within 2 s") && e.contains("raise --startup-timeout"), "{e}");
}

#[test]
fn waiting_says_so_at_once_and_keeps_its_deadline() {
    // A server that accepts connections and never answers: the kernel completes the handshake into
    // the backlog, nobody reads. An uncut probe would wait its full 5 s; the deadline is 1 s.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cmd = sweep_cmd(port, dir.path(), 8 << 30, &["--startup-timeout", "1"]);
    let t = Instant::now();
    let out = bounded(cmd, 30);
    let took = t.elapsed();
    drop(listener);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.starts_with(&format!("vramtrace: waiting up to 1 s for the server to answer at http://127.0.0.1:{port}")), "{e}");
    assert!(e.contains("did not answer within 1 s"), "{e}");
    assert_eq!(out.status.code(), Some(2), "{e}");
    // Each probe is cut to the time left, so the wait ends near its deadline, not a probe later.
    assert!(took < Duration::from_secs(5), "a 1 s startup timeout took {took:?}");
}

#[test]
fn a_server_that_is_not_openai_compatible_is_named_at_once() {
    // Python's http.server answers 404 to /health and /v1/models in an empty directory.
    let port = free_port();
    let root = tempfile::tempdir().unwrap();
    let mut server = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string()])
        .current_dir(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "http.server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = bounded(sweep_cmd(port, dir.path(), 8 << 30, &["--startup-timeout", "60"]), 30);
    let _ = server.kill();
    let _ = server.wait();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("answers HTTP but is not an OpenAI-compatible server (/health: HTTP 404; /v1/models: HTTP 404"), "{e}");
}

#[test]
fn impossible_plans_and_values_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["--steps", "1000000", "--from", "1", "--to", "2"][..], "--steps 1000000: at most 2"),
        (&["--from", "-3"][..], "\"-3\" is not a whole number of at least 1"),
        (&["--steps", "0"][..], "\"0\" is not a whole number of at least 1"),
        (&["--vram", "0"][..], "a device capacity must be more than 0 bytes"),
    ] {
        let out = bounded(sweep_cmd(free_port(), dir.path(), 8 << 30, args), 30);
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(says) && !e.contains("-- -3"), "{args:?}: {e}");
    }
}

/// Growth from the shim's own markers in an ordinary run: llama_shaped calls
/// `vramtrace_mark("tokens", n_past + n_batch)` before each batch.
#[test]
fn growth_from_vramtrace_mark_in_an_ordinary_trace() {
    let per_token = 20 * 1024u64;
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new(&env().vramtrace);
    run.args(["run", "--quiet", "--out"])
        .arg(dir.path())
        .arg("--")
        .arg(runner("llama_shaped"))
        .env("LD_LIBRARY_PATH", fake_dir())
        .env_remove("LD_PRELOAD")
        .env("LLAMA_STEPS", "8")
        .env("LLAMA_TOKENS_PER_STEP", "512")
        .env("LLAMA_POOL_BYTES_PER_TOKEN", per_token.to_string())
        .env("FAKE_CUDA_CAPACITY", "8GiB");
    let out = bounded(run, 60);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report_json(dir.path(), &[]);
    let g = r["growth"].as_array().unwrap().iter().find(|g| g["device"] == 0).expect("growth for GPU 0");
    assert_eq!(g["labels"], serde_json::json!(["tokens"]));
    let tokens: Vec<i64> = g["points"].as_array().unwrap().iter().map(|p| p["tokens"].as_i64().unwrap()).collect();
    assert_eq!(tokens, (1..=8).map(|k| k * 512).collect::<Vec<i64>>());
    let got = slope(g, "scratch_pool");
    eprintln!("vramtrace_mark growth: scratch_pool slope {got:.1} vs {per_token}");
    assert!(rel_err(got, per_token as f64) < 0.01, "{g}");
    assert!(r["markers"].as_array().unwrap().iter().all(|m| m["source"] == "trace"));
}
