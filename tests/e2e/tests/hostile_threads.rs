//! The shim under concurrency: threads racing on the very first call, signal handlers calling in
//! while the thread is inside the shim, forks while other threads are inside it, many threads ×
//! many calls with forks in between, and millions of events in flat memory. Programs that could
//! hang run under a deadline; the fork and signal tests use the lock-free stub driver, so a hang
//! can only be the shim's.

use std::collections::{BTreeMap, BTreeSet};
use vramtrace_e2e::*;
use vramtrace_trace::{Api, Record};

fn summary(run: &Run, prefix: &str) -> BTreeMap<String, String> {
    let line = run.stdout().lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    let line = line.unwrap_or_else(|| panic!("no {prefix} line:\n{}\n{}", run.stdout(), run.stderr()));
    line.split_whitespace().skip(1).filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn num(s: &BTreeMap<String, String>, k: &str) -> u64 {
    s[k].parse().unwrap()
}

fn count_records(path: &std::path::Path, f: impl Fn(&Record) -> bool) -> usize {
    vramtrace_trace::read_file(path).unwrap().0.iter().filter(|r| f(r)).count()
}

/// 32 threads make the process's first recorded calls at once (by the linked exports, or after
/// racing dlopen + dlsym lookups): one trace file (threads that lost the race to create it
/// removed theirs), one Info and one Device record, every call recorded once.
#[test]
fn threads_racing_on_the_very_first_call_share_one_file() {
    const T: usize = 32;
    const K: usize = 200;
    for round in 0..4 {
        for route in [&[][..], &["dlsym"][..]] {
            let mut args = vec![T.to_string(), K.to_string()];
            args.extend(route.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = traced_within(command(&runner("race"), &args), 60);
            assert!(run.output.status.success(), "round {round} {route:?}: {}", run.stderr());
            let t = run.trace(); // exactly one file
            assert_eq!(t.api_events("cuDevicePrimaryCtxRetain").len(), T, "{route:?}");
            assert_eq!(t.api_events("cuMemAlloc_v2").len(), T * K, "{route:?}");
            assert_eq!(t.api_events("cuMemFree_v2").len(), T * K, "{route:?}");
            let tids: BTreeSet<u32> = t.events.iter().map(|e| e.tid).collect();
            assert_eq!(tids.len(), T);
            assert_eq!(count_records(&t.path, |r| matches!(r, Record::Info(_))), 1);
            assert_eq!(count_records(&t.path, |r| matches!(r, Record::Device(_))), 1);
            let mut ptrs: Vec<u64> = t.api_events("cuMemAlloc_v2").iter().map(|e| e.ptr).collect();
            ptrs.sort();
            ptrs.dedup();
            assert_eq!(ptrs.len(), T * K, "no event recorded twice");
        }
    }
}

/// `sigcall MODE`: a 20 µs timer signal whose handler calls in while the main thread allocates
/// (and, for the lookup modes, looks functions up) through the shim. A call that arrives while
/// the thread is inside the shim's own code must neither wait for a lock the thread may hold (a
/// deadlock) nor be recorded half-way: it passes through and is counted in the Lost record.
fn signal_handler_calls_in(mode: &str) -> (Run, Trace, BTreeMap<String, String>) {
    const N: u64 = 50_000;
    let run = traced_within(stub_command(&runner("sigcall"), &[mode, &N.to_string()]), 120);
    assert!(run.output.status.success(), "{mode}: {}", run.stderr());
    assert_eq!(run.stderr(), "", "{mode}");
    let s = summary(&run, "SIGCALL");
    assert_eq!(num(&s, "failures"), 0);
    assert!(num(&s, "handled") > 1000, "{mode}: the timer fired: {s:?}");
    // The main process's file: the one with the main loop's 4096-byte allocations.
    let t = run.traces().into_iter().find(|t| t.api_events("cuMemAlloc_v2").iter().any(|e| e.size == 4096)).expect("main trace");
    // The interrupted thread's own calls are all there.
    let main_allocs: Vec<u64> = t.api_events("cuMemAlloc_v2").iter().filter(|e| e.size == 4096).map(|e| e.ptr).collect();
    assert_eq!(main_allocs.len() as u64, N, "{mode}");
    let main_ptrs: BTreeSet<u64> = main_allocs.into_iter().collect();
    let main_frees = t.api_events("cuMemFree_v2").iter().filter(|e| main_ptrs.contains(&e.ptr)).count() as u64;
    assert_eq!(main_frees, N, "{mode}");
    (run, t, s)
}

#[test]
fn a_signal_handler_calling_the_driver_inside_the_shim_is_let_through_and_counted() {
    let (_run, t, s) = signal_handler_calls_in("call");
    let handler_allocs = t.api_events("cuMemAlloc_v2").iter().filter(|e| e.size == 512).count() as u64;
    let all_frees = t.api_events("cuMemFree_v2").len() as u64;
    let recorded = handler_allocs + all_frees - 50_000;
    let lost = t.notes.lost.calls;
    assert!(lost > 0, "no handler call landed inside the shim: the test did not provoke anything ({s:?})");
    // A handler call that interrupts the driver itself is the driver's business: neither
    // recorded nor counted. Everything else is one or the other.
    assert!(recorded + lost <= num(&s, "handler_calls"), "recorded {recorded} + lost {lost}: {s:?}");
    assert!(recorded > 0, "handler calls outside the shim are recorded");
}

#[test]
fn a_signal_handler_calling_vramtrace_mark_inside_the_shim_is_counted() {
    let (_run, t, s) = signal_handler_calls_in("mark");
    let lost = t.notes.lost.calls;
    assert!(lost > 0, "{s:?}");
    // A marker never comes from the driver: every one is recorded or counted.
    assert_eq!(t.markers.len() as u64 + lost, num(&s, "handler_calls"), "{s:?}");
}

#[test]
fn a_signal_handler_looking_up_driver_functions_inside_the_shim_is_let_through() {
    for mode in ["dlsym", "procaddr"] {
        let (_run, t, s) = signal_handler_calls_in(mode);
        let lost = t.notes.lost.lookups;
        assert!(lost > 0 && lost <= num(&s, "handler_calls"), "{mode}: {:?} {s:?}", t.notes.lost);
    }
}

/// Per thread of a `forkstorm` run: its allocation sizes in file order, and whether each free
/// follows its allocation.
fn per_thread_order(t: &Trace) -> BTreeMap<u32, Vec<u64>> {
    let mut sizes: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut last_alloc: BTreeMap<u32, u64> = BTreeMap::new();
    for e in &t.events {
        match Api::from_id(e.api).unwrap().name() {
            "cuMemAlloc_v2" => {
                sizes.entry(e.tid).or_default().push(e.size);
                last_alloc.insert(e.tid, e.ptr);
            }
            "cuMemFree_v2" => assert_eq!(last_alloc.get(&e.tid), Some(&e.ptr), "a thread's free follows its allocation"),
            _ => {}
        }
    }
    sizes
}

/// The children of a `forkstorm` run: each recorded exactly its own allocation and free (nothing
/// inherited from the parent's threads) into its own file, and ended it.
fn check_children(traces: &[Trace], parent_pid: u32, forks: usize) {
    let children: Vec<&Trace> = traces.iter().filter(|t| t.info.ppid == parent_pid).collect();
    assert_eq!(children.len(), forks, "one file per child");
    for c in children {
        let sizes: Vec<u64> = c.api_events("cuMemAlloc_v2").iter().map(|e| e.size).collect();
        assert_eq!(sizes, [777], "{}", c.path.display());
        assert_eq!(c.api_events("cuMemFree_v2").len(), 1);
        assert_eq!(c.events.len(), 2, "nothing of the parent's threads");
        assert!(c.ended, "{}", c.path.display());
    }
}

/// fork() while other threads are inside the shim (holding its locks, walking the loader's
/// list, growing the file): no child may deadlock. Children end with exit() or _exit().
#[test]
fn forks_while_other_threads_are_inside_the_shim_never_deadlock_the_child() {
    for ending in ["exit", "_exit"] {
        let run = traced_within(stub_command(&runner("forkstorm"), &["2", "20000", "100", ending]), 120);
        assert!(run.output.status.success(), "{ending}: {}", run.stderr());
        assert_eq!(num(&summary(&run, "FORKSTORM"), "children_ok"), 100);
        let traces = run.traces();
        let parent = traces.iter().find(|t| t.info.ppid != 0 && traces.iter().all(|o| o.info.pid != t.info.ppid)).unwrap();
        assert_eq!(parent.api_events("cuMemAlloc_v2").len(), 2 * 20_000);
        check_children(&traces, parent.info.pid, 100);
    }
}

/// 16 threads × 100,000 alloc/free pairs with 20 forks in between: every event present and each
/// thread's events in the order it made them.
#[test]
fn sixteen_threads_times_100k_calls_with_forks_keep_every_event_in_order() {
    const T: usize = 16;
    const N: u64 = 100_000;
    let mut c = stub_command(&runner("forkstorm"), &[&T.to_string(), &N.to_string(), "20"]);
    c.env("VRAMTRACE_STACK_DEPTH", "4");
    let run = traced_within(c, 300);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(num(&summary(&run, "FORKSTORM"), "children_ok"), 20);
    let traces = run.traces();
    let parent = traces.iter().max_by_key(|t| t.events.len()).unwrap();
    assert!(parent.notes.cut.is_none() && parent.notes.lost == Default::default());
    let order = per_thread_order(parent);
    let workers: Vec<&Vec<u64>> = order.iter().filter(|(&tid, _)| tid != parent.info.pid).map(|(_, v)| v).collect();
    assert_eq!(workers.len(), T);
    let expected: Vec<u64> = (1..=N).map(|i| 512 * i).collect();
    for sizes in workers {
        assert!(sizes == &expected, "every pair, in order ({} recorded)", sizes.len());
    }
    assert_eq!(parent.api_events("cuMemFree_v2").len() as u64, T as u64 * N);
    check_children(&traces, parent.info.pid, 20);
}

/// A million events from one call site leave the process's anonymous memory flat: a leak of even
/// one byte per event would add a megabyte. (`cargo run --release -p vramtrace-e2e --bin
/// bench-shim-memory` measures 10 million.)
#[test]
fn a_million_events_leave_memory_flat() {
    let run = traced_within(stub_command(&runner("steady"), &["600000", "100000", "600000"]), 300);
    assert!(run.output.status.success(), "{}", run.stderr());
    let rss: Vec<u64> = run
        .stdout()
        .lines()
        .filter_map(|l| l.strip_prefix("RSS "))
        .map(|l| l.split("anon_kib=").nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(rss.len(), 2);
    let growth = rss[1].saturating_sub(rss[0]);
    assert!(growth < 512, "anonymous memory grew by {growth} KiB over 1,000,000 events ({rss:?} KiB)");
    assert_eq!(run.trace().api_events("cuMemAlloc_v2").len(), 600_000);
}

/// A signal handler that forks while its thread is inside the shim (holding some of its locks):
/// the fork handlers take every other lock and skip the ones the thread holds; the child returns
/// into the interrupted code, which completes, then records its own calls in a file of its own.
/// Neither process blocks, the parent's file holds exactly the parent's calls, each child's
/// exactly its own.
#[test]
fn a_signal_handler_that_forks_inside_the_shim_leaves_both_processes_recording() {
    let (run, t, s) = signal_handler_calls_in("fork");
    assert_eq!(num(&s, "handler_calls"), 50, "50 forks: {s:?}");
    assert!(t.events.iter().all(|e| e.tid == t.info.pid), "no child's event in the parent's file");
    let traces = run.traces();
    let children: Vec<&Trace> = traces.iter().filter(|c| c.info.ppid == t.info.pid).collect();
    assert_eq!(children.len(), 50);
    for c in children {
        // The child's own pair, after what is left of the loop iteration the signal interrupted,
        // which the child runs itself (at most one alloc and one free of 4096 bytes). A call whose
        // driver part ran before the fork is the parent's, recorded by the parent only.
        let own = *c.api_events("cuMemAlloc_v2").iter().find(|e| e.size == 333).expect("the child's allocation");
        assert_eq!(c.api_events("cuMemFree_v2").iter().filter(|e| e.ptr == own.ptr).count(), 1, "{}", c.path.display());
        let rest: Vec<_> = c.events.iter().filter(|e| e.ptr != own.ptr).collect();
        assert!(rest.len() <= 2, "{}: {rest:?}", c.path.display());
        assert!(rest.iter().all(|e| e.tid == c.info.pid && (e.size == 4096 || e.api == Api::MemFree as u16)), "{rest:?}");
        assert!(c.ended);
    }
}
