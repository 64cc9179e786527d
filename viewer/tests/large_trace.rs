//! A large trace through the real analyzer and the viewer: the HTML stays under 5 MB because the
//! analyzer bounds its timelines and the viewer bounds every series and table, whatever the
//! number of events (400 000 here; a 10-million-event trace gave a 431 KB report.html).

mod common;
use common::*;
use vramtrace_analyzer::{analyze, load_traces, Options};
use vramtrace_trace::{Api, EventRec, Info, TraceWriter};
use vramtrace_viewer::{render_all, RenderOptions};

/// `events` events: alloc/free churn from 500 distinct call sites on two GPUs, a growing
/// resident set, token markers, and driver readings.
fn write_big(dir: &std::path::Path, events: u64) -> std::path::PathBuf {
    let info = Info {
        pid: 9,
        ppid: 1,
        mono_ns: T0,
        realtime_ns: 0,
        stack_depth: 8,
        exe: "/usr/bin/big".into(),
        cmdline: vec!["big".into()],
        version: "0.1.0".into(),
        hostname: "h".into(),
    };
    let path = dir.join("vramtrace-9.vtr");
    let f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let mut w = TraceWriter::new(f, &info).unwrap();
    for s in 1..=500u32 {
        w.stack(s, &[0x1000 + s as u64 * 16, 0x9000]).unwrap();
    }
    let mut t = T0;
    let mut live: Vec<(u64, i32)> = Vec::new();
    let mut n = 0u64;
    let mut ptr = 0x10_0000_0000u64;
    while n < events {
        t += 10_000;
        let dev = (n % 2) as i32;
        let e = if n % 3 == 2 && !live.is_empty() {
            let (p, d) = live.swap_remove((n as usize * 7919) % live.len());
            EventRec { t_ns: t, api: Api::MemFree as u16, ptr: p, device: d, tid: 9, ..EventRec::default() }
        } else if n.is_multiple_of(50_000) {
            EventRec { t_ns: t, api: Api::MemGetInfo as u16, free: 40 << 30, total: 80 << 30, device: dev, tid: 9, ..EventRec::default() }
        } else {
            ptr += 1 << 21;
            live.push((ptr, dev));
            EventRec { t_ns: t, api: Api::MemAlloc as u16, ptr, size: 4096 + (n % 997) * 512, stack_id: (n % 500) as u32 + 1, device: dev, tid: 9, ..EventRec::default() }
        };
        w.event(&e).unwrap();
        if n.is_multiple_of(100_000) {
            w.marker(t, 9, "tokens", (n / 100) as i64).unwrap();
        }
        n += 1;
    }
    w.end(t + 1).unwrap();
    drop(w.into_inner());
    path
}

fn run(events: u64) {
    let dir = TempDir::new("large");
    let p = write_big(dir.path(), events);
    let t0 = std::time::Instant::now();
    let r = analyze(&load_traces(&[p]).unwrap(), &Options::default());
    let t_an = t0.elapsed();
    assert_eq!(r.events, events, "every event analysed");
    let out = dir.path().join("out");
    let w = render_all(&r, &out, &RenderOptions::default()).unwrap();
    let html = std::fs::metadata(&w.html).unwrap().len();
    eprintln!("{events} events: analysis {t_an:?}, render {:?}, report.html {html} bytes, {} charts", t0.elapsed() - t_an, w.charts.len());
    assert!(html < 5 * 1024 * 1024, "report.html is {html} bytes");
    assert!(w.charts.len() >= 4);
}

#[test]
fn large_trace_html_under_5_mb() {
    run(400_000);
}
