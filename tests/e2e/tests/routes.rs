//! Every route to the driver × every hooked function, recorded with the exact arguments and
//! results the program itself saw.

use std::collections::BTreeSet;
use vramtrace_e2e::*;
use vramtrace_trace::{Api, ApiKind};

/// Compares the runner's own `CALL` lines with the recorded events, in order.
fn check_route(run: &Run) -> BTreeSet<&'static str> {
    check_route_of(run, |_| true)
}

/// [`check_route`] for a route that records only the calls `recorded` names.
fn check_route_of(run: &Run, recorded: impl Fn(&str) -> bool) -> BTreeSet<&'static str> {
    assert!(run.output.status.success(), "runner failed:\n{}\n{}", run.stdout(), run.stderr());
    let trace = run.trace();
    let seen = assert_recorded_calls(&run.stdout(), &trace.events, recorded);
    assert!(!seen.is_empty(), "runner printed no CALL lines:\n{}", run.stdout());
    let mut covered = BTreeSet::new();
    for (c, e) in seen.iter().zip(&trace.events) {
        let api = Api::from_id(e.api).unwrap();
        if e.result == 0 {
            covered.insert(api.name());
        }
        // Failed allocations carry the driver's free/total at that moment.
        if e.result == 2 {
            assert!(e.total > 0 && e.free <= e.total, "{}: OOM without free/total: {e:?}", c.api);
        }
        if api.kind() == ApiKind::GetInfo && e.result == 0 {
            assert!(e.total > 0, "cuMemGetInfo result recorded");
        }
    }
    assert!(trace.events.windows(2).all(|w| w[0].t_ns <= w[1].t_ns), "events in time order");
    assert!(trace.events.iter().all(|e| e.tid != 0));
    covered
}

fn all_apis() -> BTreeSet<&'static str> {
    Api::ALL.iter().map(|a| a.name()).collect()
}

#[test]
fn linked_with_lcuda_records_every_exported_function() {
    let run = traced(command(&runner("linked"), &[]));
    // Functions newer than some drivers (cuCtxCreate_v4, CUDA 12.5) are not exported, so that a
    // driver without them does not seem to have them: a -lcuda call to one goes to the driver
    // directly. Every other function is recorded through the exports.
    let exports = shim_exports();
    let mut expected = all_apis();
    expected.retain(|a| exports.contains(*a));
    assert_eq!(expected.len(), all_apis().len() - 1, "only cuCtxCreate_v4 is lookup-only: {exports:?}");
    assert_eq!(check_route_of(&run, |api| exports.contains(api)), expected);
    let t = run.trace();
    // The OOM and the VMM misuse the runner provokes are there, with their error codes.
    assert!(t.events.iter().any(|e| e.api == Api::MemAlloc as u16 && e.result == 2));
    assert!(t.events.iter().any(|e| e.api == Api::MemMap as u16 && e.result == 1));
}

#[test]
fn dlopen_dlsym_records_every_function() {
    let run = traced(command(&runner("dlsym"), &[]));
    assert_eq!(check_route(&run), all_apis());
}

#[test]
fn cudart_replay_through_cugetprocaddress_records_every_function() {
    let lookups = env().repo.join("tests/runners/cudart12-lookups.txt");
    let run = traced(command(&runner("cudart_replay"), &[lookups.to_str().unwrap()]));
    let covered = check_route(&run);
    // cudart asks for cuDevicePrimaryCtxRelease/Reset at version 7000: the pre-11.0 entry points,
    // not the _v2 ones. Everything else arrives through cuGetProcAddress_v2.
    let mut expected = all_apis();
    expected.remove("cuDevicePrimaryCtxRelease_v2");
    expected.remove("cuDevicePrimaryCtxReset_v2");
    assert_eq!(covered, expected, "missing: {:?}", expected.difference(&covered).collect::<Vec<_>>());
    // The per-thread-stream variant was fetched with flags=2 and recorded under its own name.
    assert!(run.trace().events.iter().any(|e| e.api == Api::MemAllocAsyncPtsz as u16));
}

#[test]
fn program_output_is_identical_with_and_without_the_shim() {
    for name in ["linked", "dlsym"] {
        let plain = command(&runner(name), &[]).output().unwrap();
        let run = traced(command(&runner(name), &[]));
        assert_eq!(plain.status.code(), run.output.status.code(), "{name}");
        assert_eq!(normalized(&plain.stdout), normalized(&run.output.stdout), "{name}");
    }
}

#[test]
fn stacks_point_into_the_program_not_the_shim() {
    let run = traced(command(&runner("linked"), &[]));
    let t = run.trace();
    let exe = std::fs::canonicalize(runner("linked")).unwrap();
    let module = t.modules.iter().find(|m| std::path::Path::new(&m.path) == exe).expect("the runner's module is described");
    assert_eq!(module.build_id.len(), 20, "GNU build-id recorded");
    for e in &t.events {
        let frames = &t.stacks[&e.stack_id];
        assert!(frames.len() > 1 && frames.len() <= 32);
        assert!((module.start..module.end).contains(&frames[0]), "innermost frame is the caller in the runner");
    }
    assert_eq!(t.info.stack_depth, 32);
    assert!(t.info.cmdline[0].ends_with("linked"));
}

#[test]
fn stack_depth_zero_turns_stacks_off() {
    let mut c = command(&runner("linked"), &[]);
    c.env("VRAMTRACE_STACK_DEPTH", "0");
    let t = traced(c).trace();
    assert!(!t.events.is_empty());
    assert!(t.events.iter().all(|e| e.stack_id == 0));
    assert!(t.stacks.is_empty() && t.modules.is_empty());
}

/// The fast unwinder (framehop, cached CFI) must give exactly the stacks libgcc's `backtrace()`
/// gives, on a program with deep, frame-pointer-free and frame-pointer code alike. Both runs have
/// address randomization off (`setarch -R`), so the addresses themselves must match.
#[test]
fn fast_unwinder_matches_libgcc_backtrace() {
    let arch = std::env::consts::ARCH;
    for name in ["linked", "llama_shaped", "cudart_replay"] {
        let lookups = env().repo.join("tests/runners/cudart12-lookups.txt");
        let stacks = |unwinder: &str| {
            let mut c = command(std::path::Path::new("setarch"), &[arch, "-R", runner(name).to_str().unwrap(), lookups.to_str().unwrap()]);
            c.env("VRAMTRACE_UNWINDER", unwinder).env("LLAMA_STEPS", "2");
            let run = traced(c);
            assert!(run.output.status.success(), "{}", run.stderr());
            let t = run.trace();
            t.events.iter().map(|e| t.stacks.get(&e.stack_id).cloned().unwrap_or_default()).collect::<Vec<_>>()
        };
        let fast = stacks("framehop");
        let slow = stacks("libgcc");
        assert_eq!(fast.len(), slow.len());
        assert!(fast.iter().all(|s| s.len() >= 3), "{name}: real stacks");
        for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
            assert_eq!(f, s, "{name}: event {i}\nframehop {f:x?}\nlibgcc   {s:x?}");
        }
    }
}

#[test]
fn the_gpu_is_described_once_per_process() {
    let mut c = command(&runner("linked"), &[]);
    c.env("FAKE_CUDA_CAPACITY", "12GiB");
    let t = traced(c).trace();
    assert_eq!(t.gpus.len(), 1, "one Device record although the runner creates several contexts");
    let g = &t.gpus[0];
    assert_eq!((g.ordinal, g.name.as_str(), g.total_bytes, g.driver_version), (0, "Fake CUDA Device", 12 << 30, 12090));
}
