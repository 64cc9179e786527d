//! The merged event stream: its order (the one the model replays and `vramtrace events`
//! prints), stack frames of a file, and the out-of-memory window query.

mod common;
use common::*;
use vramtrace_analyzer::*;
use vramtrace_trace::Api;

/// (what, file, time after T0 in µs) of every item, in stream order.
fn order(l: &Loaded) -> Vec<(String, Option<usize>, u64)> {
    l.stream()
        .map(|it| {
            let what = match &it {
                StreamItem::Event { event, .. } => Api::from_id(event.api).unwrap().name().to_string(),
                StreamItem::End { clean, .. } => format!("end clean={clean}"),
                StreamItem::Marker { marker, .. } => format!("marker {}", marker.label),
                StreamItem::SideMarker(m) => format!("side {}", m.label),
            };
            (what, it.file(), (it.t_ns() - T0) / 1000)
        })
        .collect()
}

#[test]
fn ties_go_events_then_ends_then_markers_then_file_order() {
    let dir = TempDir::new("stream-order");
    let mut a = Tr::new(1);
    a.alloc(0x1000, MIB, 0); // T0 + 1 ms
    a.marker(0, "a", 1); // same ns as the allocation
    a.alloc(0x2000, MIB, 0); // 2 ms
    a.end(); // 3 ms
    let mut b = Tr::new(2);
    b.alloc(0x9000, MIB, 0); // 1 ms: same ns as a's first allocation
    b.marker(0, "b", 1);
    b.at(T0 + 2 * MS).free(0x9000); // 3 ms: same ns as a's end
    b.at(T0).ev(MS / 2, Api::MemGetInfo, |e| e.total = GIB); // 0.5 ms: back in time
    // b has no End record: it ends at its last event (3 ms), not cleanly.
    a.write(dir.path());
    b.write(dir.path());
    let side = |t: u64, label: &str| format!("{{\"t_ns\": {t}, \"label\": \"{label}\", \"value\": 1}}\n");
    std::fs::write(dir.path().join("markers-x.jsonl"), side(T0 + MS, "s") + &side(T0 + 3 * MS, "t")).unwrap();
    let l = load_traces(&[dir.path().to_path_buf()]).unwrap();
    let got = order(&l);
    let want: Vec<(String, Option<usize>, u64)> = [
        ("cuMemAlloc_v2", Some(0), 1000),
        ("cuMemAlloc_v2", Some(1), 1000),
        ("marker a", Some(0), 1000),
        ("marker b", Some(1), 1000),
        ("side s", None, 1000),
        ("cuMemAlloc_v2", Some(0), 2000),
        ("cuMemFree_v2", Some(1), 3000),
        // A file keeps its own order: the event stamped earlier comes after the one before it.
        ("cuMemGetInfo_v2", Some(1), 500),
        ("end clean=true", Some(0), 3000),
        ("end clean=false", Some(1), 3000),
        ("side t", None, 3000),
    ]
    .into_iter()
    .map(|(w, f, t)| (w.to_string(), f, t))
    .collect();
    assert_eq!(got, want);
    // The model replays the same stream: every event counted once.
    assert_eq!(analyze(&l, &Options::default()).events, 5);
}

#[test]
fn frames_of_a_stack_are_symbolized_or_module_offsets() {
    let dir = TempDir::new("stream-frames");
    let mut t = Tr::new(7);
    t.module(1, "/opt/app/librunner.so", 0x7000_0000, 0x7000_0000, 0x7100_0000, b"");
    let s = t.stack(&[0x7000_1234, 0x7000_5678, 0x9999_0000]);
    t.alloc(0x1000, MIB, s);
    t.end();
    let p = t.write(dir.path());
    let l = load_named(&[p], &[(0x7000_1234, "alloc_buffer")]);
    let frames = l.frames(0, s);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].function.as_deref(), Some("alloc_buffer"));
    assert_eq!((frames[1].function.as_deref(), frames[1].module.as_deref(), frames[1].module_offset), (None, Some("/opt/app/librunner.so"), Some(0x5678)));
    assert_eq!((frames[2].module.as_deref(), frames[2].addr), (None, 0x9999_0000));
    assert!(l.frames(0, 0).is_empty() && l.frames(0, 99).is_empty() && l.frames(5, s).is_empty());
}

#[test]
fn device_oom_between_looks_only_at_gpu_out_of_memory_in_the_window() {
    let dir = TempDir::new("stream-oom");
    let mut t = Tr::new(3);
    t.at(T0 + SEC).ev(0, Api::MemAlloc, |e| {
        e.size = 8 * GIB;
        e.result = 2; // CUDA_ERROR_OUT_OF_MEMORY
    });
    t.at(T0 + 2 * SEC).ev(0, Api::MemAlloc, |e| {
        e.size = GIB;
        e.result = 1; // another error
    });
    t.at(T0 + 3 * SEC).ev(0, Api::MemHostAlloc, |e| {
        e.size = GIB;
        e.result = 2;
        e.device = -1; // not on a GPU
    });
    t.end();
    let l = load_traces(&[t.write(dir.path())]).unwrap();
    assert!(l.device_oom_between(T0, T0 + SEC));
    assert!(l.device_oom_between(T0 + SEC, T0 + SEC));
    assert!(!l.device_oom_between(T0 + SEC + 1, T0 + 10 * SEC));
    assert!(!l.device_oom_between(T0, T0 + SEC - 1));
}
