//! Test harness for end-to-end tests: builds the shim, the fake driver, the `vramtrace` binary and
//! the C runner programs once per test run (under a file lock, so parallel test processes share
//! one build), then runs programs under the shim and reads back their traces.
//!
//! Nothing here needs a GPU: the driver is `tests/fake-cuda`, or NVIDIA's driver library without a
//! GPU where `tests/nvidia/fetch.sh` has fetched it ([`real_driver`]).

pub mod python;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};
use vramtrace_trace::{Api, EventRec, Info, Marker, Notes, PyCode, PyRuntime, PyStack, Record, Tail};

pub struct Env {
    pub profile_dir: PathBuf,
    pub shim: PathBuf,
    /// Directory holding `libcuda.so` and the `libcuda.so.1` link programs load.
    pub fake_dir: PathBuf,
    pub vramtrace: PathBuf,
    pub runners: PathBuf,
    pub repo: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// target/<profile>, found from this executable's own path: target/<profile>/deps/<test> for
/// tests, target/<profile>/<bin> for the benchmark binaries.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("executable directory");
    if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().expect("target/<profile>").to_path_buf() } else { dir.to_path_buf() }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // Several tests make programs abort on purpose: no core files in the source tree.
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        let repo = repo_root();
        let profile_dir = profile_dir();
        let target = profile_dir.parent().expect("target dir").to_path_buf();
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_string(),
            Some(p) => p.to_string(),
            None => "dev".to_string(),
        };
        let lock = std::fs::File::create(target.join(".vramtrace-e2e.lock")).expect("lock file");
        lock.lock().expect("lock");
        // Build what the tests run. A no-op when up to date; the lock serializes parallel tests.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        run_ok(
            Command::new(cargo)
                .current_dir(&repo)
                .env("CARGO_TARGET_DIR", &target)
                .args(["build", "--quiet", "--profile", &profile, "-p", "vramtrace-shim", "-p", "vramtrace-fake-cuda", "-p", "vramtrace", "-p", "vramtrace-mock-server"]),
            "cargo build",
        );
        let fake_dir = profile_dir.join("fake-cuda");
        std::fs::create_dir_all(&fake_dir).unwrap();
        // A private copy: the shim and the runners must load exactly this file as libcuda.so.1.
        let lib = fake_dir.join("libcuda.so.1");
        // Copy then rename: a program of another test process may be running on the old file,
        // and overwriting a mapped library in place crashes it.
        let tmp = fake_dir.join(format!(".libcuda.so.1.{}", std::process::id()));
        std::fs::copy(profile_dir.join("libcuda.so"), &tmp).expect("copy fake libcuda");
        std::fs::rename(&tmp, &lib).expect("install fake libcuda");
        let link = fake_dir.join("libcuda.so");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("libcuda.so.1", &link).unwrap();
        let runners = profile_dir.join("runners");
        std::fs::create_dir_all(&runners).unwrap();
        run_ok(
            Command::new("bash").arg(repo.join("tests/runners/build.sh")).arg(&runners).arg(&fake_dir),
            "building the C runners",
        );
        drop(lock);
        Env {
            shim: profile_dir.join("libvramtrace.so"),
            vramtrace: profile_dir.join("vramtrace"),
            fake_dir,
            runners,
            repo,
            profile_dir,
        }
    })
}

pub fn runner(name: &str) -> PathBuf {
    let p = env().runners.join(name);
    assert!(p.exists(), "runner {name} was not built");
    p
}

/// A finished program run and the directory its traces went to.
pub struct Run {
    pub output: Output,
    pub dir: tempfile::TempDir,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn traces(&self) -> Vec<Trace> {
        read_traces(self.dir.path())
    }
    /// The single trace of a single-process run.
    pub fn trace(&self) -> Trace {
        let mut t = self.traces();
        assert_eq!(t.len(), 1, "expected one trace file; stderr:\n{}", self.stderr());
        t.pop().unwrap()
    }
}

/// A command prepared to run on the fake driver, with or without the shim.
pub fn command(program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env("LD_LIBRARY_PATH", &env().fake_dir)
        .env_remove("LD_PRELOAD")
        .env_remove("VRAMTRACE_STACK_DEPTH");
    c
}

/// Runs `cmd` with the shim preloaded and a fresh trace directory.
pub fn traced(mut cmd: Command) -> Run {
    let dir = tempfile::tempdir().unwrap();
    cmd.env("LD_PRELOAD", &env().shim).env("VRAMTRACE_DIR", dir.path());
    let output = cmd.output().expect("run traced program");
    Run { output, dir }
}

/// [`traced`] under a deadline: a program that hangs (a deadlock) fails the test.
pub fn traced_within(mut cmd: Command, secs: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    cmd.env("LD_PRELOAD", &env().shim).env("VRAMTRACE_DIR", dir.path());
    let output = bounded(cmd, secs);
    Run { output, dir }
}

/// Runs `cmd` in its own process group with a deadline; on expiry the whole group is killed and
/// the test fails.
pub fn bounded(mut cmd: Command, secs: u64) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).process_group(0);
    let mut child = cmd.spawn().expect("start command");
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        let mut r = r.unwrap();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let so = pipe(child.stdout.take().map(|s| Box::new(s) as _));
    let se = pipe(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            // SAFETY: signals the process group this function started (the child leads it).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: so.join().unwrap(), stderr: se.join().unwrap() }
}

/// The directory holding the lock-free stub driver (`tests/runners/stub_cuda.c`).
pub fn stub_dir() -> PathBuf {
    env().runners.join("stub")
}

/// [`command`] on the stub driver instead of the fake one.
pub fn stub_command(program: &Path, args: &[&str]) -> Command {
    let mut c = command(program, args);
    c.env("LD_LIBRARY_PATH", stub_dir());
    c
}

#[derive(Debug, Default)]
pub struct Trace {
    pub path: PathBuf,
    pub info: Info,
    pub events: Vec<EventRec>,
    pub markers: Vec<Marker>,
    pub stacks: BTreeMap<u32, Vec<u64>>,
    pub modules: Vec<vramtrace_trace::Module>,
    pub ended: bool,
    pub gpus: Vec<vramtrace_trace::DeviceInfo>,
    pub tail: Option<Tail>,
    /// The shim's Lost and Cut records.
    pub notes: Notes,
    pub py_runtimes: Vec<PyRuntime>,
    pub py_codes: BTreeMap<u32, PyCode>,
    pub py_stacks: BTreeMap<u32, PyStack>,
}

impl Trace {
    pub fn api_events(&self, name: &str) -> Vec<&EventRec> {
        self.events.iter().filter(|e| vramtrace_trace::Api::from_id(e.api).unwrap().name() == name).collect()
    }
}

pub fn read_trace(path: &Path) -> Trace {
    let (records, tail, err, notes) = vramtrace_trace::read_file_with_notes(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(err.is_none(), "{}: {err:?}", path.display());
    let mut t = Trace { path: path.to_path_buf(), tail: Some(tail), notes, ..Default::default() };
    for r in records {
        match r {
            Record::Info(i) => t.info = i,
            Record::Event(e) => t.events.push(e),
            Record::Marker(m) => t.markers.push(m),
            Record::Stack { id, frames } => {
                t.stacks.insert(id, frames);
            }
            Record::Module(m) => t.modules.push(m),
            Record::End(_) => t.ended = true,
            Record::Device(d) => t.gpus.push(d),
            Record::PyRuntime(r) => t.py_runtimes.push(r),
            Record::PyCode(c) => {
                t.py_codes.insert(c.id, c);
            }
            Record::PyStack(s) => {
                t.py_stacks.insert(s.id, s);
            }
            // Gathered in `notes`.
            Record::Lost(_) | Record::Cut(_) => {}
        }
    }
    t
}

pub fn read_traces(dir: &Path) -> Vec<Trace> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "vtr"))
        .collect();
    files.sort();
    files.iter().map(|p| read_trace(p)).collect()
}

/// One `CALL` line a runner printed: what the program itself saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub api: String,
    pub result: u32,
    pub size: u64,
    pub ptr: u64,
    pub handle: u64,
}

pub fn calls(stdout: &str) -> Vec<Call> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CALL "))
        .map(|l| {
            let mut it = l.split_whitespace();
            let api = it.next().unwrap().to_string();
            let mut c = Call { api, result: 0, size: 0, ptr: 0, handle: 0 };
            for kv in it {
                let (k, v) = kv.split_once('=').unwrap();
                let num = |v: &str| match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).unwrap(),
                    None => v.parse::<i64>().map(|x| x as u64).unwrap(),
                };
                match k {
                    "result" => c.result = num(v) as u32,
                    "size" => c.size = num(v),
                    "ptr" => c.ptr = num(v),
                    "handle" => c.handle = num(v),
                    _ => {}
                }
            }
            c
        })
        .collect()
}

/// The program's `CALL` lines for recorded functions, checked against the recorded `events` one by
/// one: one event per call, same function, same order, the result the program saw, and the
/// size, pointer and handle it printed (where the function records them and they are non-zero).
pub fn assert_events_match_calls(stdout: &str, events: &[EventRec]) -> Vec<Call> {
    assert_recorded_calls(stdout, events, |_| true)
}

/// [`assert_events_match_calls`] for the calls `recorded` says the route records.
pub fn assert_recorded_calls(stdout: &str, events: &[EventRec], recorded: impl Fn(&str) -> bool) -> Vec<Call> {
    let seen: Vec<Call> = calls(stdout).into_iter().filter(|c| Api::from_name(&c.api).is_some() && recorded(&c.api)).collect();
    let name = |e: &EventRec| Api::from_id(e.api).unwrap().name();
    assert_eq!(
        seen.len(),
        events.len(),
        "one event per call\nprogram saw: {:?}\nrecorded: {:?}",
        seen.iter().map(|c| &c.api).collect::<Vec<_>>(),
        events.iter().map(name).collect::<Vec<_>>()
    );
    for (c, e) in seen.iter().zip(events) {
        let f = Api::from_id(e.api).unwrap().fields();
        assert_eq!(name(e), c.api, "same function, same order");
        assert_eq!(e.result, c.result, "{}: result", c.api);
        for (has, rec, saw, what) in [(f.size, e.size, c.size, "size"), (f.ptr, e.ptr, c.ptr, "ptr"), (f.handle, e.handle, c.handle, "handle")] {
            if has && saw != 0 {
                assert_eq!(rec, saw, "{}: {what}", c.api);
            }
        }
    }
    seen
}

/// The driver names the shim exports (what a `-lcuda` program binds to), from its dynamic
/// symbol table: some recorded functions are reached through lookups only.
pub fn shim_exports() -> std::collections::BTreeSet<String> {
    let out = Command::new("nm").args(["-D", "--defined-only"]).arg(&env().shim).output().expect("nm");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().nth(2)).filter(|n| n.starts_with("cu")).map(str::to_string).collect()
}

/// The directory where `tests/nvidia/fetch.sh` put NVIDIA's `libcuda.so.1` and `libcudart.so.12`
/// (target/nvidia/lib), or None when they are not there. `.ci/run` sets
/// `VRAMTRACE_REAL_DRIVER=required` after a successful fetch, and then their absence fails the
/// test; after a failed fetch it sets `unavailable` (the fetch has said so in one line). Unset,
/// the test passes without them and one line on stderr, once per test binary, says so.
pub fn real_driver() -> Option<PathBuf> {
    let lib = profile_dir().parent().expect("target dir").join("nvidia/lib");
    let have = ["libcuda.so.1", "libcudart.so.12"].iter().all(|f| lib.join(f).exists());
    match std::env::var("VRAMTRACE_REAL_DRIVER").as_deref() {
        _ if have => Some(lib),
        Ok("required") => panic!("VRAMTRACE_REAL_DRIVER=required, but {} lacks libcuda.so.1 or libcudart.so.12", lib.display()),
        Ok("unavailable") => None,
        _ => {
            static SAID: Once = Once::new();
            // Straight to stderr: the test harness captures eprintln! of passing tests.
            SAID.call_once(|| {
                let line = format!("\nreal-driver tier: NOT RUN: {} has no NVIDIA driver library (tests/nvidia/fetch.sh fetches it)\n", lib.display());
                let _ = std::io::stderr().write_all(line.as_bytes());
            });
            None
        }
    }
}

/// A runner's stdout with addresses blanked: the fake driver hands out addresses inside a region
/// it maps at a randomized place, so only their presence, not their values, repeats across runs.
pub fn normalized(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            l.split(' ')
                .map(|w| match w.split_once("=0x") {
                    Some((k, v)) if v != "0" => format!("{k}=0x?"),
                    _ => w.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `vramtrace run --out <tmp> -- program args` with extra environment; returns the output
/// directory (kept alive by the TempDir) and the run's output.
pub fn vramtrace_run(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(&env().vramtrace);
    c.arg("run").arg("--out").arg(dir.path()).arg("--").arg(program).args(args);
    c.env("LD_LIBRARY_PATH", &env().fake_dir).env_remove("LD_PRELOAD");
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("vramtrace run");
    (dir, out)
}

/// `vramtrace report PATH --json FILE [extra]`, parsed.
pub fn report_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("report.json");
    let out = Command::new(&env().vramtrace).arg("report").arg(path).arg("--json").arg(&json).args(extra).output().unwrap();
    assert!(out.status.success(), "vramtrace report failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

/// The device's categories at its peak, as (name, bytes) pairs.
pub fn peak_categories(report: &serde_json::Value, device: i64) -> BTreeMap<String, u64> {
    let dev = report["devices"].as_array().unwrap().iter().find(|d| d["device"] == device).expect("device in report");
    dev["peak"]["by_category"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect()
}

pub const MIB: u64 = 1 << 20;

/// A small llama.cpp-shaped run (tests/runners/llama_shaped) on an 8 GiB fake GPU: 1 GiB weights,
/// 256 MiB KV, 100 MiB compute, a VMM pool grown to 4 steps × 512 tokens × 32 KiB = 64 MiB, the
/// 4 MiB cuBLAS workspace, 256 MiB runtime.
pub const LLAMA_SMALL: &[(&str, &str)] = &[
    ("LLAMA_WEIGHTS_BYTES", "1073741824"),
    ("LLAMA_KV_BYTES", "268435456"),
    ("LLAMA_COMPUTE_BYTES", "104857600"),
    ("LLAMA_STEPS", "4"),
    ("LLAMA_TOKENS_PER_STEP", "512"),
    ("LLAMA_POOL_BYTES_PER_TOKEN", "32768"),
    ("FAKE_CUDA_CAPACITY", "8GiB"),
    ("FAKE_CUDA_RUNTIME_BYTES", "268435456"),
];

/// A test tier that needs a download (maturin from PyPI for the wheel) could not get it: one
/// line straight to stderr (the test harness hides `eprintln!` of passing tests), so a tier that
/// did not run is never silent. With `VRAMTRACE_REQUIRE_TIERS` naming the tier (or `all`), the
/// test fails instead.
pub fn download_tier_failed(tier: &str, reason: &str) {
    let line = format!("\n{tier} tier: NOT RUN: {reason}\n");
    let required = std::env::var("VRAMTRACE_REQUIRE_TIERS").unwrap_or_default();
    if required.split(',').any(|t| t.trim() == tier || t.trim() == "all") {
        panic!("{} (required by VRAMTRACE_REQUIRE_TIERS)", line.trim());
    }
    let _ = std::io::stderr().write_all(line.as_bytes());
}
