//! Synthetic traces for the analyzer's tests, written with the trace crate's `TraceWriter`
//! exactly as the shim lays them out, plus a way to name stack addresses without real binaries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use vramtrace_analyzer::{analyze, load_traces, Frame, Loaded, Options, Report, Symbols};
use vramtrace_trace::{Api, EventRec, Info, Module, TraceWriter};

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const T0: u64 = 1_000_000_000_000;
pub const MS: u64 = 1_000_000;
pub const SEC: u64 = 1_000_000_000;

pub struct Tr {
    pub w: TraceWriter<Vec<u8>>,
    pub pid: u32,
    pub t: u64,
    next_stack: u32,
}

impl Tr {
    pub fn new(pid: u32) -> Tr {
        let info = Info {
            pid,
            ppid: 1,
            mono_ns: T0,
            realtime_ns: 1_700_000_000_000_000_000,
            stack_depth: 32,
            exe: "/usr/bin/runner".into(),
            cmdline: vec!["runner".into(), "-m".into(), "model.gguf".into()],
            version: "0.1.0".into(),
            hostname: "test".into(),
        };
        Tr { w: TraceWriter::new(Vec::new(), &info).unwrap(), pid, t: T0, next_stack: 1 }
    }

    pub fn module(&mut self, id: u32, path: &str, base: u64, start: u64, end: u64, build_id: &[u8]) {
        self.w.module(&Module { id, base, start, end, build_id: build_id.to_vec(), path: path.into() }).unwrap();
    }

    /// Registers a stack of return addresses (innermost first); returns its id.
    pub fn stack(&mut self, frames: &[u64]) -> u32 {
        let id = self.next_stack;
        self.next_stack += 1;
        self.w.stack(id, frames).unwrap();
        id
    }

    pub fn at(&mut self, t: u64) -> &mut Self {
        self.t = t;
        self
    }

    /// Advances time by `dt` and writes one event.
    pub fn ev(&mut self, dt: u64, api: Api, f: impl FnOnce(&mut EventRec)) {
        self.t += dt;
        let mut e = EventRec { t_ns: self.t, api: api as u16, device: 0, tid: self.pid, ..EventRec::default() };
        f(&mut e);
        self.w.event(&e).unwrap();
    }

    pub fn alloc(&mut self, ptr: u64, size: u64, stack: u32) {
        self.ev(MS, Api::MemAlloc, |e| {
            e.ptr = ptr;
            e.size = size;
            e.stack_id = stack;
        });
    }
    pub fn alloc_dev(&mut self, ptr: u64, size: u64, dev: i32, stack: u32) {
        self.ev(MS, Api::MemAlloc, |e| {
            e.ptr = ptr;
            e.size = size;
            e.device = dev;
            e.stack_id = stack;
        });
    }
    pub fn free(&mut self, ptr: u64) {
        self.ev(MS, Api::MemFree, |e| e.ptr = ptr);
    }
    pub fn reserve(&mut self, va: u64, size: u64) {
        self.ev(MS, Api::MemAddressReserve, |e| {
            e.ptr = va;
            e.size = size;
        });
    }
    pub fn address_free(&mut self, va: u64, size: u64) {
        self.ev(MS, Api::MemAddressFree, |e| {
            e.ptr = va;
            e.size = size;
        });
    }
    pub fn create(&mut self, handle: u64, size: u64, stack: u32) {
        self.ev(MS, Api::MemCreate, |e| {
            e.handle = handle;
            e.size = size;
            e.stack_id = stack;
        });
    }
    pub fn release(&mut self, handle: u64) {
        self.ev(MS, Api::MemRelease, |e| e.handle = handle);
    }
    pub fn map(&mut self, va: u64, size: u64, handle: u64) {
        self.ev(MS, Api::MemMap, |e| {
            e.ptr = va;
            e.size = size;
            e.handle = handle;
        });
    }
    pub fn unmap(&mut self, va: u64, size: u64) {
        self.ev(MS, Api::MemUnmap, |e| {
            e.ptr = va;
            e.size = size;
        });
    }
    pub fn get_info(&mut self, free: u64, total: u64) {
        self.ev(MS, Api::MemGetInfo, |e| {
            e.free = free;
            e.total = total;
        });
    }
    pub fn marker(&mut self, dt: u64, label: &str, value: i64) {
        self.t += dt;
        self.w.marker(self.t, self.pid, label, value).unwrap();
    }
    pub fn end(&mut self) {
        self.t += MS;
        self.w.end(self.t).unwrap();
    }

    pub fn bytes(self) -> Vec<u8> {
        self.w.into_inner()
    }

    pub fn write(self, dir: &Path) -> PathBuf {
        let p = dir.join(format!("vramtrace-{}.vtr", self.pid));
        std::fs::write(&p, self.bytes()).unwrap();
        p
    }
}

/// A fresh temporary directory (removed when dropped).
/// A temporary directory, removed when dropped.
pub struct TempDir(tempfile::TempDir);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(tempfile::Builder::new().prefix(&format!("vramtrace-an-{tag}-")).tempdir().unwrap())
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Loads `paths` and names stack addresses from `names` (address → function), as if a
/// symbolizer had resolved them.
pub fn load_named(paths: &[PathBuf], names: &[(u64, &str)]) -> Loaded {
    let mut l = load_traces(paths).unwrap();
    l.symbols = Symbols::resolve_with(&l, |_, a| {
        names.iter().find(|(x, _)| *x == a).map(|(_, n)| Frame {
            addr: a,
            function: Some(n.to_string()),
            source: vramtrace_analyzer::symbolize::NameSource::Injected,
            ..Frame::default()
        })
    });
    l
}

pub fn run_named(paths: &[PathBuf], names: &[(u64, &str)], opts: &Options) -> Report {
    analyze(&load_named(paths, names), opts)
}

/// Bytes of `rule` at the overall peak according to the audit table.
pub fn at_peak(r: &Report, rule: &str) -> u64 {
    r.attribution.iter().filter(|a| a.rule == rule).map(|a| a.bytes_at_peak).sum()
}

pub fn anomaly_count(r: &Report, kind: &str) -> u64 {
    r.anomalies.iter().find(|a| a.kind == kind).map_or(0, |a| a.count)
}
