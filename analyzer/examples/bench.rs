//! Analyzer benchmark: writes a synthetic trace of N events with the
//! trace crate's writer, then times `load` + `analyze` and prints throughput and peak memory.
//!
//! `cargo run --release -p vramtrace-analyzer --example bench -- 10000000 [DIR]`
//!
//! The event mix imitates a long inference run (`common::write_trace`). Figures are printed,
//! never asserted.

mod common;

use common::{cpu_s, status_kib};
use std::io::{BufWriter, Write};
use std::time::Instant;
use vramtrace_analyzer::{analyze, load, Options};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.replace('_', "").parse().ok()).unwrap_or(10_000_000);
    let dir = args.next().map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("vramtrace-bench-{}.vtr", std::process::id()));

    let t_gen = Instant::now();
    {
        let f = std::fs::File::create(&path).expect("create trace");
        common::write_trace(BufWriter::with_capacity(1 << 20, f), n).flush().unwrap();
    }
    let gen_s = t_gen.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).unwrap().len();
    let rss_before = status_kib("VmRSS:");
    let hwm_before = status_kib("VmHWM:");

    let cpu0 = cpu_s();
    let t0 = Instant::now();
    let loaded = load(std::slice::from_ref(&path)).expect("load");
    let t_load = t0.elapsed().as_secs_f64();
    let report = analyze(&loaded, &Options::default());
    let total = t0.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu0;
    let hwm = status_kib("VmHWM:");
    // The event stream alone (no model), to tell I/O and decoding from modelling.
    let t1 = Instant::now();
    let n_iter: usize = loaded.traces.iter().map(|t| t.events().count()).sum();
    let iter_s = t1.elapsed().as_secs_f64();
    drop(loaded);
    let _ = std::fs::remove_file(&path);

    let mb = bytes as f64 / 1e6;
    println!("events            {}", report.events);
    println!("file              {:.1} MB ({} bytes; written in {:.2} s)", mb, bytes, gen_s);
    println!("load (scan)       {:.3} s", t_load);
    println!("analyze           {:.3} s", total - t_load);
    println!("total             {:.3} s wall, {:.2} s CPU", total, cpu);
    println!("event stream only {:.3} s ({} events, no model)", iter_s, n_iter);
    println!("throughput        {:.1} MB/s, {:.2} M events/s", mb / total, report.events as f64 / total / 1e6);
    println!("peak RSS (VmHWM)  {:.1} MB ({:.2}x the trace; before load: RSS {:.1} MB, HWM {:.1} MB)", hwm as f64 / 1024.0, hwm as f64 * 1024.0 / bytes as f64, rss_before as f64 / 1024.0, hwm_before as f64 / 1024.0);
    println!("peak VRAM         {} ({} timeline points, {} anomalies kinds)", vramtrace_analyzer::fmt_bytes(report.peak.total_bytes), report.devices.first().map_or(0, |d| d.timeline.len()), report.anomalies.len());
}
