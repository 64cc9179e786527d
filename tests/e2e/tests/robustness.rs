//! The shim never changes what the host program does, and its traces survive crashes.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use vramtrace_e2e::*;
use vramtrace_trace::Api;

fn plain_and_traced(prog: &str, args: &[&str]) {
    let mut plain = std::process::Command::new(prog);
    plain.args(args).env_remove("LD_PRELOAD");
    let plain = plain.output().unwrap();
    let mut c = std::process::Command::new(prog);
    c.args(args);
    let run = traced(c);
    assert_eq!(plain.status.code(), run.output.status.code(), "{prog}: exit code");
    assert_eq!(String::from_utf8_lossy(&plain.stdout), run.stdout(), "{prog}: stdout");
    assert_eq!(String::from_utf8_lossy(&plain.stderr), run.stderr(), "{prog}: stderr");
    assert!(run.traces().is_empty(), "{prog}: a program that never touches CUDA leaves no trace file");
}

#[test]
fn non_cuda_programs_are_unaffected() {
    plain_and_traced("ls", &["-la", "/usr"]);
    plain_and_traced("ls", &["/no/such/path"]); // non-zero exit code too
    plain_and_traced("python3", &["-c", "import ctypes, json, sys; print(json.dumps(sys.argv)); ctypes.CDLL('libm.so.6').cos"]);
    plain_and_traced("sh", &["-c", "echo hi; exit 7"]);
}

#[test]
fn a_cuda_program_without_a_driver_is_unaffected() {
    // Looks for libcuda the way JAX or CuPy do, finds none (no LD_LIBRARY_PATH to the fake):
    // same output, same exit code, nothing recorded.
    plain_and_traced(
        "python3",
        &["-c", "import ctypes, sys\ntry:\n    ctypes.CDLL('libcuda.so.1')\nexcept OSError as e:\n    print('no driver:', type(e).__name__); sys.exit(3)"],
    );
}

#[test]
fn unwritable_directory_warns_once_and_the_program_runs_normally() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    let plain = command(&runner("linked"), &[]).output().unwrap();
    let mut c = command(&runner("linked"), &[]);
    // root ignores directory permissions: use a path that cannot be created for anyone.
    c.env("LD_PRELOAD", &env().shim).env("VRAMTRACE_DIR", "/proc/vramtrace-no-such-dir");
    let out = c.output().unwrap();
    assert_eq!(normalized(&plain.stdout), normalized(&out.stdout));
    assert_eq!(plain.status.code(), out.status.code());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<_> = stderr.lines().filter(|l| l.starts_with("vramtrace:")).collect();
    assert_eq!(warnings.len(), 1, "exactly one warning, got:\n{stderr}");
    assert!(warnings[0].contains("cannot create trace file"), "{}", warnings[0]);
}

#[test]
fn trace_files_are_private_and_never_overwritten() {
    let run = traced(command(&runner("linked"), &[]));
    let t = run.trace();
    let mode = std::fs::metadata(&t.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(t.path.file_name().unwrap().to_str().unwrap(), format!("vramtrace-{}.vtr", t.info.pid));
}

#[test]
fn abort_leaves_every_event_before_it() {
    let run = traced(command(&runner("crasher"), &["50", "abort"]));
    assert!(!run.output.status.success());
    let t = run.trace();
    let allocs = t.api_events("cuMemAlloc_v2");
    assert_eq!(allocs.len(), 50, "every allocation before abort() is in the trace");
    assert!(!t.ended, "no End record: the process did not exit normally");
    // Exactly what the program printed before dying.
    let seen = calls(&run.stdout());
    let ptrs: Vec<u64> = seen.iter().filter(|c| c.api == "cuMemAlloc_v2").map(|c| c.ptr).collect();
    assert_eq!(ptrs, allocs.iter().map(|e| e.ptr).collect::<Vec<_>>());
}

#[test]
fn sigkill_leaves_every_event_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(&runner("crasher"), &["200", "hang"]);
    c.env("LD_PRELOAD", &env().shim).env("VRAMTRACE_DIR", dir.path()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut n = 0;
    for l in lines.by_ref() {
        let l = l.unwrap();
        if l.starts_with("CALL cuMemAlloc_v2") {
            n += 1;
        }
        if l == "READY" {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let t = read_traces(dir.path()).pop().expect("trace file");
    assert_eq!(n, 200);
    assert_eq!(t.api_events("cuMemAlloc_v2").len(), 200);
    assert!(!t.ended);
}

#[test]
fn normal_exit_writes_an_end_record() {
    assert!(traced(command(&runner("linked"), &[])).trace().ended);
}

#[test]
fn forked_child_writes_its_own_file() {
    let run = traced(command(&runner("forker"), &[]));
    assert!(run.output.status.success(), "{}", run.stderr());
    let traces = run.traces();
    let files: Vec<_> = traces.iter().map(|t| (t.path.file_name().unwrap().to_owned(), t.info.pid, t.info.ppid, t.events.len())).collect();
    assert_eq!(traces.len(), 2, "parent and child each have a file: {files:?}\n{}", run.stdout());
    let child = traces.iter().find(|t| traces.iter().any(|p| p.info.pid == t.info.ppid)).expect("child");
    let parent = traces.iter().find(|t| t.info.pid == child.info.ppid).expect("parent");
    // Nothing of the child's leaks into the parent's file and vice versa.
    let child_ptrs: Vec<u64> = child.api_events("cuMemAlloc_v2").iter().map(|e| e.ptr).collect();
    assert!(!child_ptrs.is_empty());
    assert!(parent.api_events("cuMemAlloc_v2").len() >= 2, "before and after the fork");
    for e in &parent.events {
        assert!(!child.events.iter().any(|c| c.t_ns == e.t_ns && c.tid == e.tid), "events are not duplicated across files");
    }
}

#[test]
fn exec_d_child_records_itself() {
    let linked = runner("linked");
    let run = traced(command(&runner("forker"), &["exec", linked.to_str().unwrap()]));
    assert!(run.output.status.success(), "{}", run.stderr());
    let traces = run.traces();
    assert!(traces.len() >= 2);
    let execd = traces.iter().find(|t| t.info.exe.ends_with("/linked")).expect("the exec'd program has its own trace");
    assert_eq!(execd.api_events("cuMemGetInfo_v2").len(), calls(&run.stdout()).iter().filter(|c| c.api == "cuMemGetInfo_v2").count());
}

#[test]
fn sixteen_threads_lose_nothing() {
    let mut c = command(&runner("threads"), &["16", "10000"]);
    c.env("VRAMTRACE_STACK_DEPTH", "8");
    let run = traced(c);
    assert!(run.output.status.success(), "{}", run.stderr());
    let t = run.trace();
    let allocs = t.api_events("cuMemAlloc_v2");
    let frees = t.api_events("cuMemFree_v2");
    assert_eq!(allocs.len(), 160_000);
    assert_eq!(frees.len(), 160_000);
    let tids: std::collections::BTreeSet<u32> = allocs.iter().map(|e| e.tid).collect();
    assert_eq!(tids.len(), 16);
    let mut ptrs: Vec<u64> = allocs.iter().map(|e| e.ptr).collect();
    ptrs.sort();
    ptrs.dedup();
    assert_eq!(ptrs.len(), 160_000, "every allocation recorded with its own pointer");
}

fn interposer_env(order_shim_first: bool) -> String {
    let inter = runner("libinterposer.so");
    let shim = &env().shim;
    if order_shim_first { format!("{}:{}", shim.display(), inter.display()) } else { format!("{}:{}", inter.display(), shim.display()) }
}

#[test]
fn stacked_interposer_works_in_both_orders() {
    let mut plain = command(&runner("linked"), &[]);
    plain.env("LD_PRELOAD", runner("libinterposer.so"));
    let plain = plain.output().unwrap();
    let plain_err = String::from_utf8_lossy(&plain.stderr).into_owned();
    let count = |s: &str| s.lines().find(|l| l.starts_with("INTERPOSER calls=")).map(str::to_owned);
    assert!(count(&plain_err).is_some(), "interposer alone works: {plain_err}");
    for shim_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = command(&runner("linked"), &[]);
        c.env("LD_PRELOAD", interposer_env(shim_first)).env("VRAMTRACE_DIR", dir.path());
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(normalized(&plain.stdout), normalized(&out.stdout), "shim first = {shim_first}");
        assert_eq!(count(&plain_err), count(&err), "the interposer saw every call (shim first = {shim_first})");
        let t = read_traces(dir.path()).pop().unwrap();
        let n_calls = calls(&String::from_utf8_lossy(&out.stdout)).iter().filter(|c| c.api == "cuMemAlloc_v2").count();
        assert_eq!(t.api_events("cuMemAlloc_v2").len(), n_calls, "each call recorded exactly once (shim first = {shim_first})");
    }
}

#[test]
fn markers_from_python_wait_for_the_first_driver_call() {
    let mark = "import ctypes; m = ctypes.CDLL(None).vramtrace_mark; m.argtypes = [ctypes.c_char_p, ctypes.c_int64]; m(b'tokens', 4096); m(b'phase:load', -1); m(None, 5)";
    let run = |script: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut c = command(std::path::Path::new("python3"), &["-c", script]);
        let out = c.env("LD_PRELOAD", &env().shim).env("VRAMTRACE_DIR", dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (read_traces(dir.path()), dir)
    };
    // Markers alone: no driver call, no file (the README's promise for non-CUDA programs).
    assert!(run(mark).0.is_empty(), "a program that only marks leaves no trace file");
    // Markers, then a driver call: the file starts with them, in order, at their own times.
    let alloc = "\ncu = ctypes.CDLL('libcuda.so.1'); assert cu.cuInit(0) == 0\nctx = ctypes.c_void_p(); assert cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, 0) == 0\np = ctypes.c_uint64(); assert cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(1 << 20)) == 0";
    let (traces, _dir) = run(&format!("{mark}{alloc}"));
    let t = &traces[0];
    let m: Vec<(&str, i64)> = t.markers.iter().map(|m| (m.label.as_str(), m.value)).collect();
    assert_eq!(m, vec![("tokens", 4096), ("phase:load", -1), ("", 5)]);
    let first_event = t.events.iter().map(|e| e.t_ns).min().unwrap();
    assert!(t.markers.iter().all(|m| m.t_ns < first_event && m.t_ns >= t.info.mono_ns - 60_000_000_000), "markers keep the times they were made at");
    assert!(t.events.iter().all(|e| Api::from_id(e.api).is_some()));
}

/// Our exported driver names must not make the driver look present where it is not: a global
/// lookup finds them only when the real ones are there too.
#[test]
fn exports_do_not_fake_a_driver_in_the_global_scope() {
    let script = "import ctypes\n\
        g = ctypes.CDLL(None)\n\
        print('before', hasattr(g, 'cuMemAlloc_v2'), hasattr(g, 'cuGetProcAddress_v2'))\n\
        local = ctypes.CDLL('libcuda.so.1')\n\
        print('local', hasattr(g, 'cuMemAlloc_v2'), hasattr(local, 'cuMemAlloc_v2'))\n\
        ctypes.CDLL('libcuda.so.1', mode=ctypes.RTLD_GLOBAL)\n\
        print('global', hasattr(g, 'cuMemAlloc_v2'))\n";
    let plain = command(std::path::Path::new("python3"), &["-c", script]).output().unwrap();
    let run = traced(command(std::path::Path::new("python3"), &["-c", script]));
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "before False False\nlocal False True\nglobal True\n");
    assert_eq!(String::from_utf8_lossy(&plain.stdout), run.stdout(), "{}", run.stderr());
}

/// The trace file name is predictable (`vramtrace-<pid>.vtr`): a symlink or a file already there
/// must never be followed or overwritten. `exec` keeps the shell's pid, so the shell can plant
/// both before the traced program starts.
#[test]
fn a_planted_symlink_or_file_is_never_followed_or_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    let mark = "import ctypes; ctypes.CDLL(None).vramtrace_mark(b'x', 1); ctypes.CDLL('libcuda.so.1').cuMemGetInfo_v2(None, None)";
    let script = format!(
        "ln -s {victim} \"$VRAMTRACE_DIR/vramtrace-$$.vtr\"; echo keep > \"$VRAMTRACE_DIR/vramtrace-$$.1.vtr\"; echo $$; exec python3 -c \"{mark}\"",
        victim = victim.display()
    );
    let out = command(std::path::Path::new("sh"), &["-c", &script])
        .env("LD_PRELOAD", &env().shim)
        .env("VRAMTRACE_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!victim.exists(), "nothing written through the symlink");
    assert_eq!(std::fs::read_to_string(dir.path().join(format!("vramtrace-{pid}.1.vtr"))).unwrap(), "keep\n");
    let t = read_trace(&dir.path().join(format!("vramtrace-{pid}.2.vtr")));
    assert_eq!(t.markers.len(), 1, "the trace went to the next free name");
}
