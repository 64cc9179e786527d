//! `cargo run --release -p vramtrace-e2e --bin bench-shim-memory [-- PAIRS]`: the traced
//! process's anonymous resident memory after 1 million and after PAIRS × 2 (default 10 million)
//! events from one call site, with stacks on (depth 32), against the same run without the shim.
//! Flat means the shim keeps nothing per event: stacks are deduplicated and records go to the
//! file mapping, of which only the current chunk is mapped. The trace is written to a temporary
//! directory (about 1 GiB for 10 million events) and removed.

use std::process::Command;
use vramtrace_e2e::{env, runner, stub_dir};

fn rss_lines(out: &[u8]) -> Vec<(u64, u64)> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.strip_prefix("RSS pairs="))
        .filter_map(|l| {
            let (pairs, kib) = l.split_once(" anon_kib=")?;
            Some((pairs.parse().ok()?, kib.parse().ok()?))
        })
        .collect()
}

fn main() {
    let pairs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5_000_000);
    let first = 500_000.min(pairs);
    let steady = runner("steady");
    let args = [pairs.to_string(), first.to_string(), pairs.to_string()];
    let run = |shim: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new(&steady);
        c.args(&args).env("LD_LIBRARY_PATH", stub_dir()).env_remove("LD_PRELOAD").env("VRAMTRACE_DIR", dir.path());
        if shim {
            c.env("LD_PRELOAD", &env().shim).env("VRAMTRACE_STACK_DEPTH", "32");
        }
        let t0 = std::time::Instant::now();
        let out = c.output().expect("run steady");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let secs = t0.elapsed().as_secs_f64();
        let trace: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        (rss_lines(&out.stdout), secs, trace)
    };
    let (plain, plain_s, _) = run(false);
    let (traced, traced_s, bytes) = run(true);
    println!("anonymous RSS of a process making {} events from one call site (stub driver, stack depth 32)", pairs * 2);
    println!("{:<10} {:>20} {:>20} {:>10} {:>8}", "", format!("at {} events", first * 2), format!("at {} events", pairs * 2), "growth", "wall");
    for (name, r, s) in [("no shim", &plain, plain_s), ("shim", &traced, traced_s)] {
        println!("{name:<10} {:>16} KiB {:>16} KiB {:>6} KiB {s:>7.1}s", r[0].1, r[1].1, r[1].1 as i64 - r[0].1 as i64);
    }
    println!("trace file: {:.1} MiB ({:.1} bytes/event)", bytes as f64 / (1 << 20) as f64, bytes as f64 / (pairs * 2) as f64);
}
