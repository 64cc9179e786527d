//! The `vramtrace` command line: exit codes, pass-through, JSON schemas, one-line errors.

use std::process::Command;
use vramtrace_e2e::*;

fn vt(args: &[&str]) -> std::process::Output {
    Command::new(&env().vramtrace).args(args).env("LD_LIBRARY_PATH", &env().fake_dir).output().unwrap()
}

#[test]
fn run_returns_the_exit_code_and_passes_output_through() {
    let (dir, out) = vramtrace_run(std::path::Path::new("sh"), &["-c", "printf 'out\\001 no newline'; echo err >&2; exit 3"], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\x01 no newline", "stdout byte for byte");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert!(stderr.contains("vramtrace: no CUDA driver call was recorded"), "a non-CUDA program leaves no trace, and is told why: {stderr}");
    // The timestamped copy the analyzer reads.
    let log = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).find(|e| e.file_name().to_string_lossy().starts_with("output-")).expect("output-<pid>.jsonl");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(log.path()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["stream"] == "stderr" && l["line"] == "err" && l["t_ns"].as_u64().unwrap() > 0));
    assert!(lines.iter().any(|l| l["stream"] == "stdout" && l["line"] == "out\u{1} no newline"));
}

#[test]
fn run_reports_a_missing_program_and_a_missing_shim_in_one_line() {
    let out = vt(&["run", "--out", "/tmp/vt-cli-test-x", "--", "/no/such/program"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot start /no/such/program"), "{err}");
    let out = vt(&["run", "--shim", "/no/such/lib.so", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shim /no/such/lib.so: no such file"));
    let out = vt(&["run", "--out", "/proc/forbidden", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("vramtrace: cannot create output directory"));
}

#[test]
fn runs_without_out_never_share_a_directory_and_failed_starts_leave_none() {
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| Command::new(&env().vramtrace).current_dir(cwd.path()).args(args).env("LD_LIBRARY_PATH", &env().fake_dir).output().unwrap();
    // Started within the same second: two directories, one run each.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&["run", "--quiet", "--", runner("linked").to_str().unwrap()]));
        let b = s.spawn(|| run(&["run", "--quiet", "--", runner("linked").to_str().unwrap()]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success() && b.status.success());
    let dirs: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for d in &dirs {
        assert!(d.file_name().unwrap().to_string_lossy().starts_with("vramtrace-run-"));
        assert_eq!(read_traces(d).len(), 1, "one process's trace per run directory");
    }
    // A program that cannot start leaves no empty directory behind.
    let out = run(&["run", "--", "/no/such/program"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 2);
    // Out-of-range stack depths are refused, not clamped silently.
    let out = run(&["run", "--stack-depth", "1000", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1000"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn events_json_follows_the_documented_schema() {
    let run = traced(command(&runner("linked"), &[]));
    let out = vt(&["events", "--json", run.dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), run.trace().events.len());
    for e in &events {
        for key in ["t_ns", "pid", "tid", "device", "api", "result", "stack"] {
            assert!(!e[key].is_null(), "{key} missing in {e}");
        }
    }
    let alloc = events.iter().find(|e| e["api"] == "cuMemAlloc_v2" && e["result"] == 0).unwrap();
    assert!(alloc["size"].as_u64().unwrap() > 0);
    assert!(alloc["ptr"].as_str().unwrap().starts_with("0x"));
    let top = alloc["stack"][0].as_str().unwrap();
    assert!(top.contains("run_sequence") && top.contains("sequence.h:") && top.contains("[linked+0x"), "symbolized: {top}");
    let oom = events.iter().find(|e| e["result"] == 2).unwrap();
    assert!(oom["free"].as_u64().unwrap() < oom["total"].as_u64().unwrap());
    let create = events.iter().find(|e| e["api"] == "cuMemCreate").unwrap();
    assert!(create["handle"].as_str().unwrap().starts_with("0x") && create.get("ptr").is_none());
    // Markers come through with label and value.
    let dir = tempfile::tempdir().unwrap();
    command(std::path::Path::new("python3"), &["-c", "import ctypes; ctypes.CDLL(None).vramtrace_mark(b'tokens', 77); ctypes.CDLL('libcuda.so.1').cuMemGetInfo_v2(None, None)"])
        .env("LD_PRELOAD", &env().shim)
        .env("VRAMTRACE_DIR", dir.path())
        .status()
        .unwrap();
    let out = vt(&["events", "--json", dir.path().to_str().unwrap()]);
    let m: serde_json::Value = serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!((m["api"].as_str(), m["label"].as_str(), m["value"].as_i64()), (Some("marker"), Some("tokens"), Some(77)));
}

#[test]
fn bad_input_gets_one_line_errors_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let not_trace = dir.path().join("notes.vtr");
    std::fs::write(&not_trace, "hello, this is not a trace at all").unwrap();
    for cmd in ["events", "report"] {
        let out = vt(&[cmd, not_trace.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd}");
        assert!(!err.contains("panicked"), "{cmd}: {err}");
        assert!(err.contains("not a vramtrace trace"), "{cmd}: {err}");
    }
    let out = vt(&["events", "/no/such/file.vtr"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "vramtrace: /no/such/file.vtr: no such file or directory");
    let empty = tempfile::tempdir().unwrap();
    let out = vt(&["report", empty.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn a_truncated_or_corrupted_trace_is_read_up_to_the_damage() {
    let run = traced(command(&runner("linked"), &[]));
    let t = run.trace();
    let data = std::fs::read(&t.path).unwrap();
    // The real data ends where the zero-filled reserved tail begins.
    let end = data.iter().rposition(|&b| b != 0).unwrap() + 1;
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.vtr");
    std::fs::write(&cut, &data[..end - 50]).unwrap();
    let out = vt(&["events", cut.to_str().unwrap()]);
    assert!(out.status.success());
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(n >= t.events.len() - 2 && n < t.events.len() + 1, "{n} of {}", t.events.len());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut short"));
    let out = vt(&["report", cut.to_str().unwrap()]);
    assert!(out.status.success(), "a report from the part that survived: {}", String::from_utf8_lossy(&out.stderr));
    // A damaged record header in the middle (the 10th record): the events before it, a one-line
    // warning, exit code 0 — as `report` answers the same file.
    let mut bad = data.clone();
    let mut pos = 16;
    for _ in 0..10 {
        pos += u32::from_le_bytes(bad[pos..pos + 4].try_into().unwrap()) as usize;
    }
    for b in &mut bad[pos..pos + 8] {
        *b ^= 0x5a;
    }
    let corrupt = dir.path().join("corrupt.vtr");
    std::fs::write(&corrupt, &bad).unwrap();
    let out = vt(&["events", corrupt.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(vt(&["report", corrupt.to_str().unwrap()]).status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt record at byte offset"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn output_paths_are_checked_before_the_analysis() {
    let run = traced(command(&runner("linked"), &[]));
    let trace = run.dir.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // -o naming an existing file: refused up front, nothing analysed (no summary printed).
    let file = dir.path().join("taken");
    std::fs::write(&file, "keep me").unwrap();
    let out = vt(&["report", trace, "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), format!("vramtrace: {}: exists and is not a directory", file.display()));
    assert!(out.stdout.is_empty(), "refused before the analysis");
    // --json over an existing file needs --force; the file is untouched without it.
    let out = vt(&["report", trace, "--json", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --force to replace it"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let out = vt(&["report", trace, "--json", file.to_str().unwrap(), "--force"]);
    assert!(out.status.success());
    assert!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&file).unwrap()).is_ok());
    // --json - is standard output, and nothing else goes there.
    let out = vt(&["report", trace, "--json", "-"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report alone");
    assert_eq!(v["schema_version"], 1);
    assert!(!dir.path().join("-").exists() && !std::path::Path::new("-").exists(), "no file named -");
    // A capacity of 0 is refused.
    let out = vt(&["report", trace, "--vram", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than 0 bytes"));
}

#[test]
fn warnings_go_to_stderr_once() {
    let run = traced(command(&runner("linked"), &[]));
    let t = run.trace();
    let data = std::fs::read(&t.path).unwrap();
    let end = data.iter().rposition(|&b| b != 0).unwrap() + 1;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cut.vtr"), &data[..end - 50]).unwrap();
    for cmd in [&["report"][..], &["events"][..]] {
        let out = vt(&[cmd, &[dir.path().to_str().unwrap()]].concat());
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains("events before it")).collect();
        assert_eq!(warnings.len(), 1, "{cmd:?}: {err}");
        assert!(warnings[0].starts_with("vramtrace: warning: "), "{cmd:?}: {err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("events before it"), "{cmd:?}: not on stdout");
    }
}

#[test]
fn report_and_events_answer_the_same_input_the_same_way() {
    let run = traced(command(&runner("linked"), &[]));
    let good = run.trace().path;
    // A folder whose only trace is empty: an error naming the file and why, from both.
    let only_empty = tempfile::tempdir().unwrap();
    let empty = only_empty.path().join("vramtrace-1.vtr");
    std::fs::write(&empty, b"").unwrap();
    for cmd in ["report", "events"] {
        let out = vt(&[cmd, only_empty.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), format!("vramtrace: no readable trace: {}: empty file, not a trace", empty.display()), "{cmd}");
    }
    // Beside a good trace: skipped with a warning, by both.
    std::fs::copy(&good, only_empty.path().join("vramtrace-2.vtr")).unwrap();
    for cmd in ["report", "events"] {
        let out = vt(&[cmd, only_empty.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{cmd}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("empty file, not a trace; skipped"), "{cmd}");
    }
}

#[test]
fn a_trace_given_twice_is_counted_once() {
    let run = traced(command(&runner("linked"), &[]));
    let file = run.trace().path;
    let copy_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&file, copy_dir.path().join("copy.vtr")).unwrap();
    let once = report_json(&file, &[]);
    let json = |paths: &[&std::path::Path]| {
        let tmp = tempfile::tempdir().unwrap();
        let out_json = tmp.path().join("r.json");
        let mut args = vec!["report".to_string()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        args.extend(["--json".into(), out_json.display().to_string()]);
        let out = Command::new(&env().vramtrace).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (serde_json::from_slice::<serde_json::Value>(&std::fs::read(&out_json).unwrap()).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // The directory and a file in it; the same process's trace copied elsewhere.
    for paths in [vec![run.dir.path(), file.as_path()], vec![file.as_path(), copy_dir.path()]] {
        let (twice, err) = json(&paths);
        assert_eq!(twice["peak"]["total_bytes"], once["peak"]["total_bytes"], "{paths:?}");
        assert_eq!(twice["processes"].as_array().unwrap().len(), 1);
        assert!(err.contains("read once"), "{err}");
    }
}
