//! Pointer allocations (cuMemAlloc and friends, stream-ordered and pinned host memory) and
//! their frees.

use super::{add, Engine, HOST};
use crate::attribute::{Category, RuleSource};
use crate::load::Loaded;
use crate::MIB;
use vramtrace_trace::{Api, ApiKind, EventRec};

/// Allocation granularity assumed for the rounding-waste estimate (large-page size of current
/// NVIDIA GPUs; small allocations are packed by the driver and assumed 512-byte aligned).
const ROUNDING_GRANULARITY: u64 = 2 * MIB;
const SMALL_ALIGN: u64 = 512;
/// How many freed pointers (not yet reused) are remembered to tell double frees from frees of
/// never-seen pointers.
const FREED_MEMORY: usize = 1 << 16;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AllocKind {
    Device,
    /// From a stream-ordered pool (handle; 0 = the device's default pool).
    Async(u64),
    Host,
}

pub(super) struct Alloc {
    pub size: u64,
    pub dev: i32,
    pub origin: u32,
    pub cat: Category,
    pub kind: AllocKind,
    /// When it was allocated (for the address-space map).
    pub t: u64,
}

fn rounding_waste(size: u64) -> u64 {
    let g = if size >= MIB { ROUNDING_GRANULARITY } else { SMALL_ALIGN };
    size.div_ceil(g).checked_mul(g).map_or(0, |r| r - size)
}

impl Engine<'_> {
    pub(super) fn on_alloc(&mut self, src: &Loaded, fi: usize, api: Api, kind: ApiKind, e: &EventRec) {
        let pid = self.procs[fi].pid;
        if e.ptr == 0 {
            self.anomaly("null_pointer_alloc", pid, Some(e), e.t_ns, "successful allocation returned a null pointer".into());
            return;
        }
        if self.procs[fi].allocs.contains_key(&e.ptr) {
            self.anomaly("alloc_over_live", pid, Some(e), e.t_ns, "pointer returned again while still live; the earlier allocation is dropped".into());
            self.free_ptr(fi, e.ptr, false);
        }
        let host = matches!(kind, ApiKind::HostAlloc | ApiKind::HostRegister);
        let dev = if host { HOST } else { e.device };
        let sa = self.stack_attr(src, fi, e);
        let (origin, cat) = if host {
            let o = self.intern.origin(sa.site, "builtin:pinned_host_api", RuleSource::Builtin, Category::HostPinned, Some(api.name().into()));
            (o, Category::HostPinned)
        } else {
            self.attribute(fi, e, kind, sa, dev)
        };
        let akind = match kind {
            ApiKind::AllocAsync => AllocKind::Async(e.handle),
            _ if host => AllocKind::Host,
            _ => AllocKind::Device,
        };
        if let AllocKind::Async(pool) = akind {
            self.pool_alloc(fi, dev, pool, e.size);
        }
        self.intern.count_alloc(origin, e.size);
        let p = &mut self.procs[fi];
        p.freed.remove(&e.ptr);
        p.allocs.insert(e.ptr, Alloc { size: e.size, dev, origin, cat, kind: akind, t: e.t_ns });
        self.change(fi, dev, cat, origin, e.size as i64);
        if !host && akind == AllocKind::Device {
            self.waste_delta(dev, rounding_waste(e.size) as i64);
        }
    }

    fn waste_delta(&mut self, dev: i32, d: i64) {
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            add(&mut self.scopes[si].waste, d);
        }
    }

    pub(super) fn on_free(&mut self, fi: usize, kind: ApiKind, e: &EventRec) {
        if e.ptr == 0 {
            return; // freeing NULL is a no-op
        }
        let host_call = kind == ApiKind::HostFree;
        let pid = self.procs[fi].pid;
        match self.procs[fi].allocs.remove(&e.ptr) {
            Some(a) if (a.kind == AllocKind::Host) != host_call => {
                self.procs[fi].allocs.insert(e.ptr, a);
                let what = if host_call { "host free of a device pointer" } else { "device free of a host pointer" };
                self.anomaly("mismatched_free", pid, Some(e), e.t_ns, what.into());
            }
            Some(a) => self.free_alloc(fi, e.ptr, a, true),
            None => {
                let (kind, detail) = if self.procs[fi].freed.contains_key(&e.ptr) {
                    ("double_free", "pointer was already freed")
                } else {
                    ("unknown_free", "pointer was never allocated in this trace")
                };
                self.anomaly(kind, pid, Some(e), e.t_ns, detail.into());
            }
        }
    }

    /// Removes a live allocation; `to_pool` sends stream-ordered memory back to its pool.
    pub(super) fn free_ptr(&mut self, fi: usize, ptr: u64, to_pool: bool) {
        if let Some(a) = self.procs[fi].allocs.remove(&ptr) {
            self.free_alloc(fi, ptr, a, to_pool);
        }
    }

    /// Accounts for an allocation already removed from the live map.
    fn free_alloc(&mut self, fi: usize, ptr: u64, a: Alloc, to_pool: bool) {
        self.change(fi, a.dev, a.cat, a.origin, -(a.size as i64));
        if a.kind != AllocKind::Host {
            self.spans.entry(a.dev).or_default().push(a.size, ptr, a.t, self.now, a.cat, false);
        }
        match a.kind {
            AllocKind::Device => self.waste_delta(a.dev, -(rounding_waste(a.size) as i64)),
            AllocKind::Async(pool) => {
                if !self.pool_free(fi, &a, pool, to_pool) {
                    return;
                }
            }
            AllocKind::Host => {}
        }
        let p = &mut self.procs[fi];
        if p.freed.len() >= FREED_MEMORY {
            p.freed.clear(); // bounded memory: a double free of an older pointer reads as unknown
        }
        p.freed.insert(ptr, ());
    }
}
