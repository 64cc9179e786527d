//! Python stacks captured by the shim, against what the Python program itself printed with
//! `traceback.extract_stack()` at each call, frame by frame, on every CPython 3.10–3.13 here.
//! `tests/python/alloc_stacks.py` allocates through ctypes (GIL released: `CDLL`; held: `PyDLL`)
//! from the main thread, a `threading.Thread`, asyncio coroutines (in the main thread and in a
//! thread), generators and a 500-deep recursion.

use vramtrace_e2e::python::{interpreters, printed, program, recorded, Frame, Interpreter, Printed};
use vramtrace_e2e::{command, traced, Run, Trace};
use vramtrace_trace::{Api, PyStatus};

const DEFAULT_DEPTH: usize = 32;

/// Runs `alloc_stacks.py ARGS` with `envs`, without and with the shim; checks that the program
/// succeeded and printed the same either way, and returns the traced run.
fn run_same(py: &Interpreter, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let script = program("alloc_stacks.py");
    let mut all = vec![script.to_str().unwrap()];
    all.extend_from_slice(args);
    let with_env = || {
        let mut c = command(&py.exe, &all);
        c.envs(envs.iter().copied());
        c
    };
    let plain = with_env().output().expect("run python");
    let run = traced(with_env());
    assert!(plain.status.success(), "{} {args:?}: {}", py.label(), String::from_utf8_lossy(&plain.stderr));
    assert_eq!(run.output.status.code(), plain.status.code(), "{} {args:?}: exit status", py.label());
    assert_eq!(run.stdout(), String::from_utf8_lossy(&plain.stdout), "{} {args:?}: output differs under the shim", py.label());
    run
}

/// The recorded stack must be the printed one, innermost first, cut at `depth`.
fn check_stack(py: &Interpreter, what: &str, got: (Vec<Frame>, bool), want: &[Frame], depth: usize) {
    let (frames, truncated) = got;
    let n = want.len().min(depth);
    assert_eq!(truncated, want.len() > depth, "{}: {what}: truncation flag", py.label());
    assert_eq!(frames.len(), n, "{}: {what}: {frames:#?}\nwanted {:#?}", py.label(), &want[..n]);
    for (i, (g, w)) in frames.iter().zip(want).enumerate() {
        // Before 3.11 a code object has no qualified name; the printed one is empty then too.
        assert_eq!(g, w, "{}: {what}: frame {i} (innermost = 0)", py.label());
    }
}

/// Checks every ALLOC and MARK of a run; returns how many were checked.
fn check_run(py: &Interpreter, t: &Trace, calls: &[Printed], depth: usize) -> usize {
    let allocs = t.api_events(Api::MemAlloc.name());
    let mut markers_seen = std::collections::HashMap::new();
    for p in calls {
        let what = &p.call;
        if let Some(rest) = what.strip_prefix("ALLOC ") {
            let size: u64 = rest.split(' ').next().unwrap().parse().unwrap();
            let e = allocs.iter().find(|e| e.size == size).unwrap_or_else(|| panic!("{}: no event for {what}", py.label()));
            assert_ne!(e.py_stack_id, 0, "{}: {what} has no Python stack", py.label());
            check_stack(py, what, recorded(t, e.py_stack_id), &p.frames, depth);
        } else {
            let label = what.strip_prefix("MARK ").unwrap();
            // The n-th marker printed with a label is the n-th recorded with it.
            let nth = markers_seen.entry(label).or_insert(0usize);
            let m = t.markers.iter().filter(|m| m.label == label).nth(*nth).unwrap_or_else(|| panic!("{}: no marker {label} #{nth}", py.label()));
            *nth += 1;
            check_stack(py, what, recorded(t, m.py_stack_id), &p.frames, depth);
        }
    }
    calls.len()
}

fn runtime_record(py: &Interpreter, t: &Trace) -> vramtrace_trace::PyRuntime {
    assert_eq!(t.py_runtimes.len(), 1, "{}: {:?}", py.label(), t.py_runtimes);
    let r = t.py_runtimes[0].clone();
    assert_eq!(r.hexversion, py.hexversion, "{}", py.label());
    r
}

#[test]
fn every_frame_matches_traceback_on_every_interpreter() {
    let mut matrix = Vec::new();
    for py in interpreters() {
        for dll in ["cdll", "pydll"] {
            let run = run_same(&py, &["all", dll], &[]);
            assert_eq!(run.stderr(), "", "{} {dll}", py.label());
            let t = run.trace();
            let r = runtime_record(&py, &t);
            assert_eq!(PyStatus::from_u32(r.status), Some(PyStatus::Capturing), "{}: {}", py.label(), r.detail);
            assert!(r.eval_start != 0 && r.eval_end > r.eval_start, "{}: eval range {r:?}", py.label());
            // pyenv's interpreters run from libpython; Debian's has Python linked into the executable.
            let exe = py.exe.canonicalize().unwrap();
            let lib = exe.parent().unwrap().parent().unwrap().join(format!("lib/libpython3.{}.so.1.0", py.minor()));
            let want = if lib.exists() { lib.display().to_string() } else { exe.display().to_string() };
            assert_eq!(r.library, want, "{}", py.label());
            let calls = printed(&run.stdout());
            let scenarios = run.stdout().lines().filter(|l| l.starts_with("SCENARIO ")).count();
            assert_eq!(scenarios, 6, "{}", py.label());
            let n = check_run(&py, &t, &calls, DEFAULT_DEPTH);
            assert!(n >= 14, "{}: only {n} calls", py.label());
            // A Python stack costs about what a native one costs: each distinct stack once.
            assert!(t.py_stacks.len() <= n, "{}: {} stacks for {n} calls", py.label(), t.py_stacks.len());
            matrix.push(format!("{} {dll}: {n} calls", py.label()));
        }
    }
    eprintln!("{}", matrix.join("\n"));
}

/// What the analyzer relies on to place Python frames in the native stack: each native frame
/// inside `_PyEval_EvalFrameDefault` (the PyRuntime record's range) runs one group of Python
/// frames, the group ending at an entry frame; so both counts agree on every event.
#[test]
fn entry_frames_pair_with_the_native_evaluation_frames() {
    for py in interpreters() {
        for dll in ["cdll", "pydll"] {
            let run = run_same(&py, &["main,thread,generator,asyncio", dll], &[("VRAMTRACE_STACK_DEPTH", "128")]);
            let t = run.trace();
            let r = runtime_record(&py, &t);
            let allocs = t.api_events(Api::MemAlloc.name());
            assert!(allocs.len() >= 9, "{}", py.label());
            for e in allocs {
                let native = &t.stacks[&e.stack_id];
                assert!(native.len() < 128, "{}: the native stack was cut", py.label());
                let evals = native.iter().filter(|&&a| (r.eval_start..r.eval_end).contains(&a)).count();
                let s = &t.py_stacks[&e.py_stack_id];
                assert!(!s.truncated);
                let entries = s.frames.iter().filter(|f| f.entry).count();
                assert!(evals > 0 && s.frames.last().unwrap().entry, "{}: {evals} evaluation frames", py.label());
                assert_eq!(entries, evals, "{} {dll}: entry frames vs native evaluation frames ({} Python frames)", py.label(), s.frames.len());
            }
        }
    }
}

#[test]
fn the_depth_setting_caps_python_frames_too() {
    let py = interpreters().into_iter().find(|i| i.minor() == 12).unwrap();
    let run = run_same(&py, &["recursion", "cdll"], &[("VRAMTRACE_STACK_DEPTH", "7")]);
    let t = run.trace();
    let calls = printed(&run.stdout());
    assert_eq!(check_run(&py, &t, &calls, 7), 1);
    let run = run_same(&py, &["main", "pydll"], &[("VRAMTRACE_STACK_DEPTH", "0")]);
    let t = run.trace();
    assert!(t.events.iter().all(|e| e.py_stack_id == 0 && e.stack_id == 0));
    assert!(t.py_stacks.is_empty() && t.py_codes.is_empty() && t.py_runtimes.is_empty());
}

#[test]
fn vramtrace_python_0_turns_capture_off() {
    let py = interpreters().into_iter().find(|i| i.minor() == 13).unwrap();
    let run = run_same(&py, &["main", "cdll"], &[("VRAMTRACE_PYTHON", "0")]);
    let t = run.trace();
    assert!(!t.events.is_empty());
    assert!(t.events.iter().all(|e| e.py_stack_id == 0 && e.stack_id != 0), "native stacks stay, Python ones go");
    assert!(t.markers.iter().all(|m| m.py_stack_id == 0));
    assert!(t.py_stacks.is_empty() && t.py_codes.is_empty() && t.py_runtimes.is_empty());
}

#[test]
fn a_python_program_that_never_calls_cuda_leaves_no_trace() {
    for py in interpreters() {
        let mut c = command(&py.exe, &["-c", "import ctypes, threading; t = threading.Thread(target=print, args=('hello',)); t.start(); t.join()"]);
        c.env("VRAMTRACE_STACK_DEPTH", "32");
        let run = traced(c);
        assert!(run.output.status.success(), "{}", py.label());
        assert_eq!(run.stdout(), "hello\n");
        assert!(run.traces().is_empty(), "{}: a trace file was written", py.label());
    }
}

#[test]
fn native_programs_get_no_python_records() {
    let run = traced(command(&vramtrace_e2e::runner("linked"), &[]));
    let t = run.trace();
    assert!(!t.events.is_empty());
    assert!(t.events.iter().all(|e| e.py_stack_id == 0));
    assert!(t.py_runtimes.is_empty() && t.py_codes.is_empty() && t.py_stacks.is_empty());
}

/// The same code object address reused by a different code object must not inherit the first
/// one's file, names or lines.
#[test]
fn a_reused_code_address_is_not_misattributed() {
    for py in interpreters() {
        let run = run_same(&py, &["reuse", "cdll"], &[]);
        let t = run.trace();
        let calls = printed(&run.stdout());
        assert!(calls.len() >= 20, "{}", py.label());
        check_run(&py, &t, &calls, DEFAULT_DEPTH);
    }
}

/// An embedder allocates first (no Python in the process yet), then loads libpython with
/// `RTLD_LOCAL` and runs Python that allocates through a builtin: the interpreter is found at the
/// first event after it appeared, though none of its symbols are global.
#[test]
fn an_interpreter_loaded_late_and_locally_is_found() {
    let embed = vramtrace_e2e::runner("py_embed");
    let mut done = 0;
    for py in interpreters() {
        let lib = py.exe.parent().unwrap().parent().unwrap().join(format!("lib/libpython3.{}.so.1.0", py.minor()));
        if !lib.exists() {
            continue; // an executable with Python linked in has no libpython to load
        }
        let script = program("alloc_stacks.py");
        let args = [lib.to_str().unwrap(), script.to_str().unwrap(), "main,thread,generator,recursion", "builtin"];
        let plain = command(&embed, &args).output().unwrap();
        assert!(plain.status.success(), "{}: {}", py.label(), String::from_utf8_lossy(&plain.stderr));
        let run = traced(command(&embed, &args));
        assert_eq!(run.stdout(), String::from_utf8_lossy(&plain.stdout), "{}", py.label());
        assert_eq!(run.output.status.code(), Some(0));
        let t = run.trace();
        let allocs = t.api_events(Api::MemAlloc.name());
        assert_eq!((allocs[0].size, allocs[0].py_stack_id), (4096, 0), "{}: the embedder's own allocation", py.label());
        assert!(runtime_record(&py, &t).library.ends_with(&format!("libpython3.{}.so.1.0", py.minor())), "{}", py.label());
        // No markers here: vramtrace_mark is reached through ctypes, which cannot load.
        let calls: Vec<Printed> = printed(&run.stdout()).into_iter().filter(|c| c.call.starts_with("ALLOC")).collect();
        assert_eq!(check_run(&py, &t, &calls, DEFAULT_DEPTH), 8, "{}", py.label());
        done += 1;
    }
    assert!(done >= 4, "a libpython for each of 3.10–3.13 was expected");
}

/// A thread Python never saw (a native worker) has no Python frames; Python threads around it keep
/// theirs.
#[test]
fn a_thread_without_python_state_has_no_python_frames() {
    let lib = vramtrace_e2e::runner("libpy_worker.so");
    for py in interpreters() {
        let run = run_same(&py, &["native_thread", "pydll"], &[("VT_WORKER_LIB", lib.to_str().unwrap())]);
        let t = run.trace();
        let line = run.stdout().lines().find_map(|l| l.strip_prefix("NATIVE_ALLOC ").map(str::to_owned)).unwrap();
        let size: u64 = line.split(' ').next().unwrap().parse().unwrap();
        let e = t.api_events(Api::MemAlloc.name()).into_iter().find(|e| e.size == size).unwrap();
        assert_eq!((e.result, e.py_stack_id), (0, 0), "{}", py.label());
        assert_ne!(e.tid, t.events[0].tid, "{}: the worker is another thread", py.label());
        assert_eq!(check_run(&py, &t, &printed(&run.stdout()), DEFAULT_DEPTH), 1);
    }
}

/// A forked child writes its own trace, with its own code and stack records.
#[test]
fn a_forked_child_describes_its_own_python_stacks() {
    for py in interpreters() {
        let run = run_same(&py, &["fork", "cdll"], &[]);
        let traces = run.traces();
        assert_eq!(traces.len(), 2, "{}", py.label());
        let calls = printed(&run.stdout());
        assert_eq!(calls.len(), 3);
        for t in &traces {
            runtime_record(&py, t);
            let mine: Vec<Printed> = calls.iter().filter(|c| t.events.iter().any(|e| c.call.starts_with(&format!("ALLOC {} ", e.size)))).cloned().collect();
            assert!(!mine.is_empty(), "{}", py.label());
            check_run(&py, t, &mine, DEFAULT_DEPTH);
        }
    }
}

#[test]
fn subinterpreters_give_no_frames_and_say_why_once() {
    for py in interpreters() {
        let run = run_same(&py, &["subinterpreters", "cdll"], &[]);
        let t = run.trace();
        let calls = printed(&run.stdout());
        // The first allocation happens before the second interpreter exists.
        check_run(&py, &t, &calls[..1], DEFAULT_DEPTH);
        let statuses: Vec<_> = t.py_runtimes.iter().map(|r| PyStatus::from_u32(r.status)).collect();
        assert_eq!(statuses, [Some(PyStatus::Capturing), Some(PyStatus::Subinterpreters)], "{}", py.label());
        let later = t.api_events(Api::MemAlloc.name()).into_iter().skip(1).collect::<Vec<_>>();
        assert!(!later.is_empty() && later.iter().all(|e| e.py_stack_id == 0 && e.stack_id != 0), "{}", py.label());
        // The report says why, once: a user expecting framework rules to apply must learn they cannot.
        let warnings = vramtrace_e2e::report_json(run.dir.path(), &[])["warnings"].to_string();
        assert_eq!(warnings.matches("Python stacks not recorded").count(), 1, "{}: {warnings}", py.label());
    }
}
