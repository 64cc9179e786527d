//! What the analyzer's benchmarks share: a synthetic trace and this process's own figures.
#![allow(dead_code)]

use std::io::Write;
use vramtrace_trace::{Api, EventRec, Info, Module, TraceWriter};

/// A field of /proc/self/status, in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of this process so far (less sensitive than wall time to other
/// work on a shared machine).
pub fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Writes a trace of `n` events imitating a long inference run: a churning live set of
/// cudaMalloc'd buffers from a few dozen call sites, a ggml-style VMM pool that grows and is
/// unmapped, stream-ordered allocations, cuMemGetInfo readings and tokens markers. Returns the
/// writer.
pub fn write_trace<W: Write>(out: W, n: u64) -> W {
    let info = Info {
        pid: 4242,
        ppid: 1,
        mono_ns: 1_000_000_000,
        stack_depth: 16,
        exe: "/usr/bin/llama-server".into(),
        cmdline: vec!["llama-server".into(), "-m".into(), "model.gguf".into()],
        version: env!("CARGO_PKG_VERSION").into(),
        hostname: "bench".into(),
        ..Info::default()
    };
    let mut w = TraceWriter::new(out, &info).unwrap();
    w.module(&Module { id: 1, base: 0x5555_0000_0000, start: 0x5555_0000_0000, end: 0x5555_1000_0000, build_id: vec![], path: "/nonexistent/llama-server".into() })
        .unwrap();
    for s in 1..=64u32 {
        let frames: Vec<u64> = (0..12u64).map(|d| 0x5555_0000_0000 + (s as u64) * 0x1_0000 + d * 0x100).collect();
        w.stack(s, &frames).unwrap();
    }
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut t = 2_000_000_000u64;
    let live_cap = 16_384usize;
    let mut live: Vec<u64> = Vec::with_capacity(live_cap);
    let mut next_ptr = 0x7000_0000_0000u64;
    let mut handle = 1u64;
    let pool_va = 0x7f00_0000_0000u64;
    let mut pool_mapped = 0u64;
    let mut ev = EventRec { tid: 4242, ..EventRec::default() };
    w.event(&EventRec { t_ns: t, api: Api::MemAddressReserve as u16, ptr: pool_va, size: 32 << 30, ..ev }).unwrap();
    let mut written = 1u64;
    while written < n {
        t += 1 + next() % 2000;
        let r = next();
        ev.t_ns = t;
        ev.stack_id = (r % 64) as u32 + 1;
        ev.device = 0;
        ev.result = 0;
        ev.free = 0;
        ev.total = 0;
        match r % 1000 {
            0..=9 => {
                ev.api = Api::MemGetInfo as u16;
                ev.total = 80 << 30;
                ev.free = 40 << 30;
            }
            10..=13 if pool_mapped < (8 << 30) => {
                // ggml's pool grows: create, map, release.
                let sz = 2 << 20;
                for (api, ptr) in [(Api::MemCreate, 0), (Api::MemMap, pool_va + pool_mapped), (Api::MemRelease, 0)] {
                    w.event(&EventRec { api: api as u16, ptr, size: sz, handle, ..ev }).unwrap();
                    written += 1;
                }
                handle += 1;
                pool_mapped += sz;
                continue;
            }
            14 if pool_mapped > 0 => {
                ev.api = Api::MemUnmap as u16;
                ev.ptr = pool_va;
                ev.size = pool_mapped;
                pool_mapped = 0;
            }
            15..=40 => {
                let p = next_ptr;
                next_ptr += 1 << 21;
                w.event(&EventRec { api: Api::MemAllocAsync as u16, ptr: p, size: (1 + r % 64) << 16, ..ev }).unwrap();
                ev.api = Api::MemFreeAsync as u16;
                ev.ptr = p;
                t += 100;
                ev.t_ns = t;
                written += 1;
            }
            41 => {
                w.marker(t, 4242, "tokens", (t / 1_000_000) as i64).unwrap();
                continue;
            }
            _ => {
                if live.len() >= live_cap || (!live.is_empty() && r & 0x10000 != 0) {
                    let i = (next() as usize) % live.len();
                    ev.api = Api::MemFree as u16;
                    ev.ptr = live.swap_remove(i);
                } else {
                    ev.api = Api::MemAlloc as u16;
                    ev.ptr = next_ptr;
                    next_ptr += 1 << 21;
                    ev.size = (1 + r % 4096) << 10;
                    live.push(ev.ptr);
                }
            }
        }
        w.event(&ev).unwrap();
        written += 1;
    }
    w.end(t + 1).unwrap();
    w.into_inner()
}
