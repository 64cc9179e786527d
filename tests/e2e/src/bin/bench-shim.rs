//! `cargo run --release -p vramtrace-e2e --bin bench-shim [-- ITER ROUNDS]`: added cost per
//! intercepted call, shim vs no shim on the fake driver, with stacks off and at depth 32, and the
//! cost of a call the shim does not hook. Runs the variants interleaved in one invocation and
//! reports the median of each, so machine noise hits all of them alike.

use std::process::Command;
use vramtrace_e2e::env;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iter: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
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
    let variants: [(&str, Option<&str>); 3] = [("no shim", None), ("shim, stacks off", Some("0")), ("shim, depth 32", Some("32"))];
    let mut hooked: Vec<Vec<f64>> = vec![vec![]; 3];
    let mut unhooked: Vec<Vec<f64>> = vec![vec![]; 3];
    for _ in 0..rounds {
        for (i, (_, depth)) in variants.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let mut c = Command::new(&bin);
            c.arg(iter.to_string()).env("VRAMTRACE_DIR", dir.path());
            if let Some(d) = depth {
                c.env("LD_PRELOAD", &e.shim).env("VRAMTRACE_STACK_DEPTH", d);
            }
            let out = c.output().expect("run bench");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let mut it = l.split_whitespace();
                match (it.next(), it.next().and_then(|v| v.parse::<f64>().ok())) {
                    (Some("hooked_ns_per_call"), Some(v)) => hooked[i].push(v),
                    (Some("unhooked_ns_per_call"), Some(v)) => unhooked[i].push(v),
                    _ => {}
                }
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let base = median(&mut hooked[0].clone());
    let base_unhooked = median(&mut unhooked[0].clone());
    println!("shim overhead on the fake driver ({iter} alloc+free pairs × {rounds} rounds, median)");
    println!("{:<20} {:>16} {:>14} {:>18}", "variant", "hooked ns/call", "added ns", "unhooked ns/call");
    for (i, (name, _)) in variants.iter().enumerate() {
        let h = median(&mut hooked[i]);
        let u = median(&mut unhooked[i]);
        println!("{name:<20} {h:>16.1} {:>14.1} {u:>18.1}", h - base);
    }
    println!("(unhooked calls: {base_unhooked:.1} ns without the shim)");
}
