//! Live-session benchmark: a synthetic trace of N events (the `bench` example's) grows in R
//! steps the way the shim writes it (into a zero-filled reserved tail); a `live::Session`
//! refreshes after each step. Prints CPU per refresh (per event read), the cost of a refresh
//! that finds nothing new, and resident memory against the trace's size — which must stay flat
//! (bounded by what is live, not by the trace). Then the batch analysis of the same trace, for
//! comparison.
//!
//! `cargo run --release -p vramtrace-analyzer --example bench_live -- 1000000 [STEPS] [DIR]`
//!
//! Figures are printed, never asserted.

mod common;

use common::{cpu_s, status_kib};
use std::os::unix::fs::FileExt;
use std::time::Instant;
use vramtrace_analyzer::live::Session;
use vramtrace_analyzer::{analyze, load, Options};
use vramtrace_trace::Reader;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.replace('_', "").parse().ok()).unwrap_or(1_000_000);
    let steps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let base = args.next().map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("vramtrace-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vramtrace-4242.vtr");

    // The whole trace is written to a source file first (not kept in this process, whose
    // memory is what is measured); record boundaries, to grow the watched file by whole records.
    let source_path = base.join(format!("vramtrace-bench-live-{}.src", std::process::id()));
    let cuts: Vec<usize> = {
        let bytes = common::write_trace(Vec::new(), n);
        std::fs::write(&source_path, &bytes).unwrap();
        let records = Reader::new(&bytes).unwrap().count();
        let mut r = Reader::new(&bytes).unwrap();
        let mut cuts = Vec::with_capacity(steps);
        for i in 1..=records {
            r.next();
            if i == records * (cuts.len() + 1) / steps {
                cuts.push(r.position());
            }
        }
        cuts
    };
    let source = std::fs::File::open(&source_path).unwrap();
    let size = source.metadata().unwrap().len();
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(size + (8 << 20)).unwrap();
    let rss0 = status_kib("VmRSS:");

    let mut session = Session::new(&dir, Options::default());
    let mut written = 0usize;
    let mut per_refresh = Vec::new();
    let (mut rss_max, mut used_max) = (0u64, 0u64);
    let mut quarters = Vec::new();
    let mut chunk = Vec::new();
    let (t0, cpu0) = (Instant::now(), cpu_s());
    chunk.resize(1 << 20, 0);
    for (k, &to) in cuts.iter().enumerate() {
        let k = k + 1;
        while written < to {
            let piece = &mut chunk[..(to - written).min(1 << 20)];
            source.read_exact_at(piece, written as u64).unwrap();
            f.write_all_at(piece, written as u64).unwrap();
            written += piece.len();
        }
        let r0 = Instant::now();
        session.refresh_until(u64::MAX).unwrap();
        let snap = session.snapshot();
        per_refresh.push(r0.elapsed().as_secs_f64());
        used_max = used_max.max(snap.devices.iter().map(|d| d.used_bytes).sum());
        rss_max = rss_max.max(status_kib("VmRSS:"));
        if (1..=4).any(|q| k == steps * q / 4) {
            quarters.push(status_kib("VmRSS:"));
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let total_cpu = cpu_s() - cpu0;
    let idle_rounds = 50;
    let c0 = cpu_s();
    let i0 = Instant::now();
    for _ in 0..idle_rounds {
        session.refresh_until(u64::MAX).unwrap();
        let _ = session.snapshot();
    }
    let idle_ms = i0.elapsed().as_secs_f64() * 1e3 / idle_rounds as f64;
    let idle_cpu_ms = (cpu_s() - c0) * 1e3 / idle_rounds as f64;
    let s = session.snapshot();
    let rss_live = status_kib("VmRSS:");
    drop(session);

    per_refresh.sort_by(f64::total_cmp);
    let mb = size as f64 / 1e6;
    println!("trace             {} events, {:.1} MB, grown in {} refreshes", s.events, mb, steps);
    println!("following         {:.2} s wall, {:.2} s CPU in all, writing included ({:.2} µs CPU per event)", wall, total_cpu, total_cpu * 1e6 / s.events.max(1) as f64);
    println!("per refresh       median {:.1} ms, max {:.1} ms wall ({} events each, snapshot included)", per_refresh[steps / 2] * 1e3, per_refresh[steps - 1] * 1e3, n / steps as u64);
    println!("idle refresh      {:.3} ms wall, {:.3} ms CPU (nothing new; snapshot included)", idle_ms, idle_cpu_ms);
    println!(
        "resident memory   {:.1} MB before, max {:.1} MB while following, {:.1} MB at the end ({:.2}x the trace)",
        rss0 as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        rss_live as f64 / 1024.0,
        rss_max as f64 * 1024.0 / size as f64
    );
    let q: Vec<String> = quarters.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)).collect();
    println!("resident by quarter {} MB (flat: bounded by what is live, not by the trace)", q.join(" / "));
    println!("VRAM in use, max  {}", vramtrace_analyzer::fmt_bytes(used_max));

    let c0 = cpu_s();
    let report = analyze(&load(std::slice::from_ref(&path)).unwrap(), &Options::default());
    println!("batch load+analyze {:.2} s CPU ({} events)", cpu_s() - c0, report.events);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&source_path);
}
