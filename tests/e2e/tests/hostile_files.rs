//! The shim in a hostile file system: its trace file cannot grow (a file size limit, a full
//! disk), or the program takes its descriptor (closes every inherited descriptor, or `dup2`s its
//! own file over ours). Recording stops cleanly or carries on, and the program never notices:
//! same output, same exit code, its own files byte for byte as without the shim.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use vramtrace_e2e::*;
use vramtrace_trace::Api;

const EFBIG: i32 = 27;
const ENOSPC: i32 = 28;

/// Stderr without the shim's own warnings, and those warnings.
fn split_warnings(stderr: &[u8]) -> (String, Vec<String>) {
    let s = String::from_utf8_lossy(stderr);
    let (ours, theirs): (Vec<&str>, Vec<&str>) = s.lines().partition(|l| l.starts_with("vramtrace:"));
    (theirs.join("\n"), ours.into_iter().map(str::to_owned).collect())
}

/// The program saw the same thing with and without the shim; the shim said one thing at most.
fn assert_unaffected(plain: &Output, traced: &Output, what: &str) -> Vec<String> {
    assert_eq!(plain.status.code(), traced.status.code(), "{what}: exit status ({:?})", traced.status);
    assert_eq!(String::from_utf8_lossy(&plain.stdout), String::from_utf8_lossy(&traced.stdout), "{what}: stdout");
    let (theirs, ours) = split_warnings(&traced.stderr);
    assert_eq!(split_warnings(&plain.stderr).0, theirs, "{what}: the program's own stderr");
    ours
}

/// A trace cut for `errno`: every call before the cut recorded in order, the rest counted as
/// lost, the End record still there.
fn assert_cut_cleanly(t: &Trace, errno: i32, pairs: u64, limit: Option<u64>) {
    let cut = t.notes.cut.unwrap_or_else(|| panic!("no Cut record in {}", t.path.display()));
    assert_eq!(cut.errno, errno, "why it was cut");
    if let Some(limit) = limit {
        assert!(cut.bytes <= limit && std::fs::metadata(&t.path).unwrap().len() <= limit, "the file stays within {limit} bytes");
    }
    assert!(t.ended, "the program exited normally: End is written into the space kept for it");
    let allocs = t.api_events("cuMemAlloc_v2").len() as u64;
    let frees = t.api_events("cuMemFree_v2").len() as u64;
    assert!(allocs > 100 && allocs < pairs, "recording stopped part-way: {allocs} of {pairs} allocations");
    assert!(frees == allocs || frees + 1 == allocs, "the recorded calls are a prefix of the program's");
    let recorded = t.events.len() as u64;
    // cuDevicePrimaryCtxRetain + every pair: each call is either in the file or counted as lost.
    assert_eq!(recorded + t.notes.lost.calls, 1 + 2 * pairs, "recorded {recorded}, lost {:?}", t.notes.lost);
    let apis: Vec<&str> = t.events.iter().map(|e| Api::from_id(e.api).unwrap().name()).collect();
    assert!(apis[1..].chunks(2).all(|p| p[0] == "cuMemAlloc_v2" && p.get(1).is_none_or(|f| *f == "cuMemFree_v2")), "in order");
}

/// A file size limit (`RLIMIT_FSIZE`): crossing it would fail with EFBIG and send the program
/// SIGXFSZ, which kills it. The shim checks the limit first: it stops at the limit with a Cut
/// record, and the program runs on.
#[test]
fn a_file_size_limit_cuts_the_trace_and_the_program_runs_on() {
    const LIMIT: u64 = 512 << 10;
    const PAIRS: u64 = 20_000;
    let limit = |c: &mut Command| {
        // SAFETY: setrlimit is async-signal-safe; the closure runs in the child before exec.
        unsafe {
            c.pre_exec(|| {
                let l = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &l) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
            });
        }
    };
    let mut plain = command(&runner("steady"), &[&PAIRS.to_string()]);
    limit(&mut plain);
    let plain = plain.output().unwrap();
    assert!(plain.status.success());
    let mut c = command(&runner("steady"), &[&PAIRS.to_string()]);
    limit(&mut c);
    let run = traced(c);
    let warnings = assert_unaffected(&plain, &run.output, "steady under RLIMIT_FSIZE");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("cannot grow the trace file"), "{}", warnings[0]);
    assert_cut_cleanly(&run.trace(), EFBIG, PAIRS, Some(LIMIT));
}

/// A full disk: a 400 KiB tmpfs in a private mount namespace (needs CAP_SYS_ADMIN). The trace
/// is copied out before the namespace, and the tmpfs with it, goes away.
#[test]
fn a_full_disk_cuts_the_trace_and_the_program_runs_on() {
    const PAIRS: u64 = 20_000;
    let probe = Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("a_full_disk_cuts_the_trace_and_the_program_runs_on: not run: mounting a tmpfs needs CAP_SYS_ADMIN (the RLIMIT_FSIZE test covers the same path)");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = "mount -t tmpfs -o size=400k tmpfs \"$VRAMTRACE_DIR\" || exit 99\n\
                  LD_PRELOAD=\"$SHIM\" \"$@\"; rc=$?\n\
                  cp \"$VRAMTRACE_DIR\"/*.vtr \"$OUT\"/ || exit 98\n\
                  exit $rc";
    let steady = runner("steady");
    let run = |shim: &Path| {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&steady)
            .arg(PAIRS.to_string())
            .env("LD_LIBRARY_PATH", &env().fake_dir)
            .env("VRAMTRACE_DIR", mnt.path())
            .env("OUT", out.path())
            .env("SHIM", shim)
            .env_remove("LD_PRELOAD");
        c.output().unwrap()
    };
    let plain = command(&steady, &[&PAIRS.to_string()]).output().unwrap();
    let traced = run(&env().shim);
    let warnings = assert_unaffected(&plain, &traced, "steady on a full disk");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let t = read_traces(out.path()).pop().expect("the trace, copied out of the tmpfs");
    assert_cut_cleanly(&t, ENOSPC, PAIRS, Some(400 << 10));
}

/// The program's own file after `fds MODE`: exactly its lines, with and without the shim.
fn expected_lines(n: usize) -> String {
    (0..n).map(|i| format!("line {i}\n")).collect()
}

fn descriptors_taken(mode: &str) {
    const PAIRS: usize = 4000;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("program-output.txt");
    let args = [mode, out.to_str().unwrap(), &PAIRS.to_string()];
    let plain = command(&runner("fds"), &args).output().unwrap();
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected_lines(PAIRS));
    std::fs::remove_file(&out).unwrap();

    let run = traced(command(&runner("fds"), &args));
    let warnings = assert_unaffected(&plain, &run.output, &format!("fds {mode}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(std::fs::read(&out).unwrap(), expected_lines(PAIRS).into_bytes(), "the program's own file, byte for byte");
    let t = run.trace();
    assert!(t.notes.cut.is_none(), "the trace file was re-opened by its path: {:?}", t.notes.cut);
    assert_eq!(t.api_events("cuMemAlloc_v2").len(), PAIRS + 1, "every call recorded");
    assert_eq!(t.api_events("cuMemFree_v2").len(), PAIRS + 1);
    assert!(t.ended);
    assert!(std::fs::metadata(&t.path).unwrap().len() > 512 << 10, "the file grew after the program took the descriptor");
}

/// `closefrom(3)`, then the program's own file takes the number the trace file had.
#[test]
fn a_program_that_closes_every_descriptor_keeps_its_file_and_ours() {
    descriptors_taken("closeall");
}

/// `dup2` of the program's file over every other descriptor, ours included.
#[test]
fn a_program_that_dup2s_over_our_descriptor_keeps_its_file_and_ours() {
    descriptors_taken("dup2");
}
