//! Stream-ordered pools (cudaMallocAsync): a free returns memory to its pool, which keeps it
//! ("retained") until an allocation reuses it or the pool is trimmed.

use super::alloc::Alloc;
use super::{add, Engine, NONE};
use crate::attribute::{Category, RuleSource};
use crate::report::PoolReport;
use vramtrace_trace::EventRec;

pub(super) struct Pool {
    pub used: u64,
    pub retained: u64,
    /// The origin retained memory is counted under (interned at the first free into the pool).
    pub retained_origin: u32,
    pub retained_cat: Category,
    pub peak_reserved: u64,
    pub peak_used: u64,
    pub trims: u64,
}

impl Engine<'_> {
    /// An allocation of `size` from `pool`: memory the pool kept from earlier frees is reused
    /// before the pool grows.
    pub(super) fn pool_alloc(&mut self, fi: usize, dev: i32, pool: u64, size: u64) {
        let (reuse, ro, rc) = {
            let p = self.procs[fi].pools.entry((dev, pool)).or_insert(Pool {
                used: 0,
                retained: 0,
                retained_origin: NONE,
                retained_cat: Category::ScratchPool,
                peak_reserved: 0,
                peak_used: 0,
                trims: 0,
            });
            let reuse = p.retained.min(size);
            p.retained -= reuse;
            p.used = p.used.saturating_add(size);
            p.peak_used = p.peak_used.max(p.used);
            p.peak_reserved = p.peak_reserved.max(p.used.saturating_add(p.retained));
            (reuse, p.retained_origin, p.retained_cat)
        };
        if reuse > 0 {
            self.change(fi, dev, rc, ro, -(reuse as i64));
            self.pool_retained_delta(dev, -(reuse as i64));
        }
    }

    /// A freed allocation of `pool`, retained by it when `to_pool`. False when the pool is not
    /// known (then the free is not remembered either).
    pub(super) fn pool_free(&mut self, fi: usize, a: &Alloc, pool: u64, to_pool: bool) -> bool {
        let Some(p) = self.procs[fi].pools.get_mut(&(a.dev, pool)) else { return false };
        p.used = p.used.saturating_sub(a.size);
        if to_pool {
            if p.retained_origin == NONE {
                // What a pool retains is counted in the category of its users' memory
                // kind: a framework's cache stays framework_cache, anything else is a
                // scratch pool (see docs/report-schema.md).
                let (cat, rule) = if a.cat == Category::FrameworkCache {
                    (Category::FrameworkCache, "builtin:async_pool_retention_framework")
                } else {
                    (Category::ScratchPool, "builtin:async_pool_retention")
                };
                let site = self.intern.site(format!("(stream-ordered pool {pool:#x} retention)"), Vec::new);
                p.retained_origin = self.intern.origin(site, rule, RuleSource::Builtin, cat, None);
                p.retained_cat = cat;
            }
            p.retained = p.retained.saturating_add(a.size);
            let (ro, rc) = (p.retained_origin, p.retained_cat);
            self.change(fi, a.dev, rc, ro, a.size as i64);
            self.pool_retained_delta(a.dev, a.size as i64);
        }
        true
    }

    pub(super) fn pool_retained_delta(&mut self, dev: i32, d: i64) {
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            add(&mut self.scopes[si].pool_retained, d);
        }
    }

    pub(super) fn on_trim(&mut self, fi: usize, e: &EventRec) {
        let keep = e.size;
        let mut keys: Vec<(i32, u64)> = self.procs[fi].pools.keys().filter(|k| k.1 == e.handle).copied().collect();
        if keys.is_empty() {
            // The default pool is recorded as handle 0 at allocation, but trimmed through its
            // real handle, which the trace never saw: apply to this process's default pools.
            keys = self.procs[fi].pools.keys().filter(|k| k.1 == 0 && (e.device < 0 || k.0 == e.device)).copied().collect();
        }
        keys.sort();
        for k in keys {
            let (d, ro, rc) = {
                let p = self.procs[fi].pools.get_mut(&k).unwrap();
                p.trims += 1;
                let reserved = p.used.saturating_add(p.retained);
                let new_reserved = p.used.max(reserved.min(keep));
                let new_retained = new_reserved - p.used;
                let d = p.retained - new_retained;
                p.retained = new_retained;
                (d, p.retained_origin, p.retained_cat)
            };
            if d > 0 {
                self.change(fi, k.0, rc, ro, -(d as i64));
                self.pool_retained_delta(k.0, -(d as i64));
            }
        }
    }

    /// Empties the pools of process `fi` on the devices `on` selects (the driver frees them
    /// with the context or the process).
    pub(super) fn release_pools(&mut self, fi: usize, on: impl Fn(i32) -> bool) {
        let mut pools: Vec<(i32, u64)> = self.procs[fi].pools.keys().filter(|k| on(k.0)).copied().collect();
        pools.sort();
        for k in pools {
            let p = self.procs[fi].pools.get_mut(&k).unwrap();
            let r = std::mem::take(&mut p.retained);
            p.used = 0;
            let (ro, rc) = (p.retained_origin, p.retained_cat);
            if r > 0 {
                self.change(fi, k.0, rc, ro, -(r as i64));
                self.pool_retained_delta(k.0, -(r as i64));
            }
        }
    }

    /// The pools of every process on `dev`, for the device's fragmentation report.
    pub(super) fn pool_reports(&self, dev: i32) -> Vec<PoolReport> {
        let mut pools: Vec<PoolReport> = Vec::new();
        for p in &self.procs {
            for (&(d, h), pool) in &p.pools {
                if d == dev {
                    pools.push(PoolReport {
                        pid: p.pid,
                        pool: h,
                        device: d,
                        peak_reserved_bytes: pool.peak_reserved,
                        peak_used_bytes: pool.peak_used,
                        retained_at_end_bytes: pool.retained,
                        trims: pool.trims,
                    });
                }
            }
        }
        pools.sort_by_key(|p| (p.pid, p.pool));
        pools
    }
}
