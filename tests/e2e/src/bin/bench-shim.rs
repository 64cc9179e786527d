//! `cargo run --release -p vramtrace-e2e --bin bench-shim [-- ITER ROUNDS]`: added cost per
//! intercepted call, shim vs no shim on the fake driver.
//!
//! 1. A C program (no Python in the process): stacks off, depth 32, and depth 32 with
//!    `VRAMTRACE_PYTHON=0` (the difference between the last two is what the Python capture costs a
//!    process without Python), plus the cost of a call the shim does not hook.
//! 2. A Python program on every CPython 3.10–3.13 here, calling through ctypes from 20 Python
//!    frames: no shim, depth 32 with `VRAMTRACE_PYTHON=0`, depth 32 with Python stacks (their
//!    difference is the Python capture's cost per event).
//!
//! Variants run interleaved in one invocation and each reports its median, so machine noise hits
//! all of them alike; an added cost is the median of the differences within each round. Programs
//! time themselves in thread CPU time, so other processes on a busy machine do not count.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use vramtrace_e2e::env;
use vramtrace_e2e::python::{interpreters, program};

/// Python frames on the stack at each call of the Python benchmark.
const PY_FRAMES: usize = 20;

struct Variant {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    /// `None`: no shim; else the extra environment of a run under the shim.
    shim: Option<Vec<(&'static str, &'static str)>>,
}

/// The figures (`<name> <value>` lines) each variant printed, per round: `[round][variant]`.
type Figures = Vec<Vec<BTreeMap<String, f64>>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The median over rounds of `figure` for variant `i`.
fn med(f: &Figures, i: usize, figure: &str) -> f64 {
    median(f.iter().map(|r| r[i][figure]).collect())
}

/// The median over rounds of `figure`, variant `j` minus variant `i` in the same round.
fn med_diff(f: &Figures, i: usize, j: usize, figure: &str) -> f64 {
    median(f.iter().map(|r| r[j][figure] - r[i][figure]).collect())
}

/// Runs every variant `rounds` times, interleaved.
fn run_rounds(variants: &[Variant], rounds: usize) -> Figures {
    let e = env();
    let mut got = Vec::new();
    for _ in 0..rounds {
        let mut round = Vec::new();
        for v in variants {
            let dir = tempfile::tempdir().unwrap();
            let mut c = Command::new(&v.program);
            c.args(&v.args).env("VRAMTRACE_DIR", dir.path()).env("LD_LIBRARY_PATH", &e.fake_dir).env_remove("LD_PRELOAD");
            if let Some(extra) = &v.shim {
                c.env("LD_PRELOAD", &e.shim).envs(extra.iter().copied());
            }
            let out = c.output().expect("run bench");
            assert!(out.status.success(), "{}: {}", v.name, String::from_utf8_lossy(&out.stderr));
            let mut figures = BTreeMap::new();
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let mut it = l.split_whitespace();
                if let (Some(k), Some(x)) = (it.next(), it.next().and_then(|x| x.parse::<f64>().ok())) {
                    figures.insert(k.to_string(), x);
                }
            }
            round.push(figures);
        }
        got.push(round);
    }
    got
}

fn native(iter: usize, rounds: usize) {
    let e = env();
    let bin = e.runners.join("shim_bench");
    let src = e.repo.join("tests/e2e/bench/shim_bench.c");
    let ok = Command::new("gcc")
        .args(["-O2", "-g", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg(format!("-L{}", e.fake_dir.display()))
        .arg(format!("-Wl,-rpath,{}", e.fake_dir.display()))
        .arg("-lcuda")
        .status()
        .expect("gcc");
    assert!(ok.success(), "gcc failed");
    let v = |name: &str, shim: Option<Vec<(&'static str, &'static str)>>| Variant { name: name.into(), program: bin.clone(), args: vec![iter.to_string()], shim };
    let variants = [
        v("no shim", None),
        v("shim, stacks off", Some(vec![("VRAMTRACE_STACK_DEPTH", "0")])),
        v("shim, depth 32", Some(vec![("VRAMTRACE_STACK_DEPTH", "32")])),
        v("depth 32, PYTHON=0", Some(vec![("VRAMTRACE_STACK_DEPTH", "32"), ("VRAMTRACE_PYTHON", "0")])),
    ];
    let f = run_rounds(&variants, rounds);
    let hooked = "hooked_ns_per_call";
    println!("shim overhead on the fake driver, C program ({iter} alloc+free pairs × {rounds} rounds, median)");
    println!("{:<22} {:>16} {:>14} {:>18}", "variant", "hooked ns/call", "added ns", "unhooked ns/call");
    for (i, v) in variants.iter().enumerate() {
        println!("{:<22} {:>16.1} {:>14.1} {:>18.1}", v.name, med(&f, i, hooked), med_diff(&f, 0, i, hooked), med(&f, i, "unhooked_ns_per_call"));
    }
    let absent = med_diff(&f, 3, 2, hooked);
    println!("Python capture in a process without Python: {absent:+.1} ns/call (depth 32 vs depth 32 with VRAMTRACE_PYTHON=0)");
}

fn python(iter: usize, rounds: usize) {
    println!();
    println!("Python capture, ctypes calls from {PY_FRAMES} Python frames ({iter} alloc+free pairs × {rounds} rounds, median ns/call)");
    println!("{:<48} {:>9} {:>12} {:>12} {:>14}", "interpreter", "no shim", "Python off", "Python on", "Python added");
    let script = program("bench_alloc.py");
    for py in interpreters() {
        let v = |name: &str, shim: Option<Vec<(&'static str, &'static str)>>| Variant {
            name: format!("{} {name}", py.label()),
            program: py.exe.clone(),
            args: vec![script.display().to_string(), iter.to_string(), PY_FRAMES.to_string()],
            shim,
        };
        let variants = [
            v("no shim", None),
            v("Python off", Some(vec![("VRAMTRACE_STACK_DEPTH", "32"), ("VRAMTRACE_PYTHON", "0")])),
            v("Python on", Some(vec![("VRAMTRACE_STACK_DEPTH", "32")])),
        ];
        let f = run_rounds(&variants, rounds);
        let h = "hooked_ns_per_call";
        println!("{:<48} {:>9.1} {:>12.1} {:>12.1} {:>14.1}", py.label(), med(&f, 0, h), med(&f, 1, h), med(&f, 2, h), med_diff(&f, 1, 2, h));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iter: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(15);
    native(iter, rounds);
    python(iter / 2, rounds);
}
