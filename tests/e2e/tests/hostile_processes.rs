//! The shim across hostile process life cycles: `_exit` and `os._exit` (no exit handlers run),
//! `vfork` children that share our memory, `posix_spawn`, setuid programs.

use std::path::Path;
use vramtrace_e2e::*;
use vramtrace_trace::Record;

/// How many End records the file holds (the harness only says whether there is one), checking
/// that nothing of the program's follows the last one.
fn end_records(path: &Path) -> usize {
    let (records, _, err) = vramtrace_trace::read_file(path).unwrap();
    assert!(err.is_none());
    let last_end = records.iter().rposition(|r| matches!(r, Record::End(_)));
    let last_call = records.iter().rposition(|r| matches!(r, Record::Event(_) | Record::Marker(_)));
    assert!(last_end >= last_call, "{}: the End record comes before the program's last call", path.display());
    records.iter().filter(|r| matches!(r, Record::End(_))).count()
}

/// `_exit` and `_Exit` skip atexit handlers and destructors, where the End record is written
/// at a normal exit: the shim hooks them, so the trace still says the process did not crash.
#[test]
fn exit_underscore_exit_and_capital_exit_all_leave_one_end_record() {
    for how in ["exit", "_exit", "_Exit"] {
        let plain = command(&runner("exits"), &[how, "5"]).output().unwrap();
        let run = traced(command(&runner("exits"), &[how, "5"]));
        assert_eq!(run.output.status.code(), Some(3), "{how}: {}", run.stderr());
        assert_eq!(plain.status.code(), Some(3));
        assert_eq!(normalized(&plain.stdout), normalized(&run.output.stdout), "{how}");
        let t = run.trace();
        assert_eq!(t.api_events("cuMemAlloc_v2").len(), 5, "{how}");
        assert!(t.ended, "{how}: no End record");
        assert_eq!(end_records(&t.path), 1, "{how}");
    }
}

/// Python's `os._exit` (forked workers, crash paths in servers) is `_exit`.
#[test]
fn python_os_exit_leaves_an_end_record() {
    let script = "import ctypes, os\nctypes.CDLL(None).vramtrace_mark(b'before-exit', 7)\nctypes.CDLL('libcuda.so.1').cuMemGetInfo_v2(None, None)\nos._exit(4)";
    let run = traced(command(Path::new("python3"), &["-c", script]));
    assert_eq!(run.output.status.code(), Some(4), "{}", run.stderr());
    let t = run.trace();
    assert_eq!(t.markers.len(), 1);
    assert!(t.ended, "os._exit skipped the End record");
}

/// A `vfork` child runs on our memory — even the parent thread's thread-locals — until it execs
/// or `_exit`s; `posix_spawn` does the same behind the scenes. Such a child must never write into
/// the parent's file or disturb its state (a second End record, the parent's calls going
/// unrecorded afterwards), and an exec'd child records itself.
#[test]
fn vfork_and_posix_spawn_children_leave_the_parents_trace_alone() {
    let linked = runner("linked");
    let args = [linked.to_str().unwrap()];
    let plain = command(&runner("spawn"), &args).output().unwrap();
    let run = traced_within(command(&runner("spawn"), &args), 60);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(normalized(&plain.stdout), normalized(&run.output.stdout));
    let summary = run.stdout().lines().find(|l| l.starts_with("SPAWN")).map(str::to_owned).unwrap();
    assert!(summary.starts_with("SPAWN vfork_missing=127 vfork_exec=0 spawn=0 "), "{summary}");

    let traces = run.traces();
    let parent: Vec<_> = traces.iter().filter(|t| t.info.exe.ends_with("/spawn")).collect();
    assert_eq!(parent.len(), 1, "one file for the parent; the failed children made none");
    let parent = parent[0];
    let sizes: Vec<u64> = parent.api_events("cuMemAlloc_v2").iter().map(|e| e.size).collect();
    assert_eq!(sizes, [8 << 20, 2 << 20], "the parent's own calls, before and after the children, and nothing else");
    assert_eq!(parent.api_events("cuMemFree_v2").len(), 2);
    assert!(parent.events.iter().all(|e| e.tid == parent.info.pid), "no event from a child's thread");
    assert_eq!(end_records(&parent.path), 1, "one End record: the vfork child's _exit wrote none");
    let children: Vec<_> = traces.iter().filter(|t| t.info.exe.ends_with("/linked")).collect();
    assert_eq!(children.len(), 2, "the vfork+exec and posix_spawn children record themselves");
    for c in children {
        assert!(c.ended && c.info.ppid == parent.info.pid && !c.events.is_empty());
    }
    assert_eq!(traces.len(), 3);
}

/// A setuid program (`AT_SECURE`) must never be recorded: otherwise whoever sets `VRAMTRACE_DIR`
/// makes a privileged process create files where they like. glibc already ignores `LD_PRELOAD`
/// paths there; the shim also checks `AT_SECURE` itself, for a program that loads it another way
/// (`dlopen`, `/etc/ld.so.preload`). The setuid part needs root (to hand the binary to `nobody`).
#[test]
fn a_setuid_program_is_never_recorded() {
    use std::os::unix::fs::PermissionsExt;
    let traces = tempfile::tempdir().unwrap();
    std::fs::set_permissions(traces.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // On the build's file system (a temporary directory may be mounted nosuid).
    let bin_dir = tempfile::tempdir_in(&env().profile_dir).unwrap();
    let bin = bin_dir.path().join("secure");
    std::fs::copy(runner("secure"), &bin).unwrap();
    let run = |preload: bool| {
        let mut c = std::process::Command::new(&bin);
        c.arg(&env().shim).arg(env().fake_dir.join("libcuda.so.1")).env("VRAMTRACE_DIR", traces.path()).env_remove("LD_PRELOAD");
        if preload {
            c.env("LD_PRELOAD", &env().shim);
        }
        c.output().unwrap()
    };
    // Control: not setuid, the marker and the call are recorded (so the checks below can see a
    // recording).
    let out = run(false);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SECURE at_secure=0 mark=found\n", "{}", String::from_utf8_lossy(&out.stderr));
    let t = read_traces(traces.path());
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].markers.len(), t[0].events.len()), (1, 1));
    std::fs::remove_file(&t[0].path).unwrap();

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("a_setuid_program_is_never_recorded: setuid part not run: it needs root to give the binary to another user");
        return;
    }
    let c = std::ffi::CString::new(bin.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; 65534 is `nobody`.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    for preload in [false, true] {
        let out = run(preload);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "SECURE at_secure=1 mark=found\n", "preload={preload}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "preload={preload}");
        let left: Vec<_> = std::fs::read_dir(traces.path()).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(left.is_empty(), "a setuid program left {left:?} (preload={preload})");
    }
}
