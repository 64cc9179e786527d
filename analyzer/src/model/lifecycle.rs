//! Lifecycle: contexts, context teardown and process end. When a context goes (destroyed, or
//! its primary context reset or released for the last time) the driver frees everything of it;
//! when a process ends, everything it held. What the program had not freed itself is a leak of
//! that kind (teardown, exit, crash).

use super::{Engine, ALL, HOST, NONE};
use crate::attribute::Category;
use crate::report::{Leak, LeakKind};
use std::collections::HashSet;
use vramtrace_trace::{Api, EventRec};

impl Engine<'_> {
    pub(super) fn on_ctx_create(&mut self, fi: usize, api: Api, e: &EventRec) {
        let p = &mut self.procs[fi];
        *p.ctx_count.entry(e.device).or_insert(0) += 1;
        if e.handle != 0 && api != Api::DevicePrimaryCtxRetain {
            p.ctx_dev.insert(e.handle, e.device);
        }
    }

    pub(super) fn ctx_down(&mut self, fi: usize, dev: i32, reset: bool) {
        let p = &mut self.procs[fi];
        let c = p.ctx_count.entry(dev).or_insert(0);
        *c -= 1;
        if reset || *c <= 0 {
            *c = 0;
            // The driver frees everything of the context: what the program had not freed is a
            // leak, and from now on it is no longer on the device.
            self.release_process(fi, Some(dev), LeakKind::ContextTeardown);
        }
    }

    /// The end of process `fi` at `t` (`clean`: it exited normally).
    pub(super) fn on_end(&mut self, fi: usize, t: u64, clean: bool) {
        self.now = self.now.max(t);
        let kind = if clean { LeakKind::Exit } else { LeakKind::Crash };
        self.release_process(fi, None, kind);
        self.procs[fi].ended = true;
        if self.procs.iter().all(|p| p.ended) {
            // The runtime estimate is the traced processes' contexts, modules and
            // handles: once the last of them is gone, so is it.
            let gpus: Vec<i32> = self.scopes.iter().map(|s| s.dev).filter(|&d| d != HOST && d != ALL).collect();
            for d in gpus {
                let si = self.scope_ix[&d];
                let rt = self.scopes[si].cat[Category::Runtime.index()];
                self.change(usize::MAX, d, Category::Runtime, NONE, -(rt as i64));
            }
        }
        self.after_event();
    }

    /// Drops everything a process holds (on `dev` only, or everywhere), recording what the
    /// program never freed as leaks of `kind`.
    fn release_process(&mut self, fi: usize, dev: Option<i32>, kind: LeakKind) {
        let on = |d: i32| dev.is_none_or(|x| x == d);
        self.release_allocs(fi, dev, kind);
        self.release_vmm(fi, dev, kind);
        let mut res: Vec<u64> = self.procs[fi].reserves.iter().filter(|(_, r)| on(r.dev) || r.dev < 0).map(|(&k, _)| k).collect();
        res.sort_unstable();
        for k in res {
            self.drop_reserve(fi, k);
        }
        self.release_pools(fi, on);
    }

    fn release_allocs(&mut self, fi: usize, dev: Option<i32>, kind: LeakKind) {
        let pid = self.procs[fi].pid;
        let on = |d: i32| dev.is_none_or(|x| x == d);
        let mut ptrs: Vec<u64> = self.procs[fi].allocs.iter().filter(|(_, a)| on(a.dev) || (a.dev == HOST && dev.is_none())).map(|(&k, _)| k).collect();
        ptrs.sort_unstable();
        for ptr in ptrs {
            let (size, d, origin) = {
                let a = &self.procs[fi].allocs[&ptr];
                (a.size, a.dev, a.origin)
            };
            self.leak(pid, d, kind, origin, size);
            self.free_ptr(fi, ptr, false);
            self.procs[fi].freed.remove(&ptr);
        }
    }

    /// Unmaps the mappings and drops the handles of a process (on `dev` only, or everywhere).
    fn release_vmm(&mut self, fi: usize, dev: Option<i32>, kind: LeakKind) {
        let pid = self.procs[fi].pid;
        let on = |d: i32| dev.is_none_or(|x| x == d);
        let p = &self.procs[fi];
        let mut maps: Vec<u64> = p.maps.iter().filter(|(_, m)| p.handles.get(&m.handle).is_none_or(|h| on(h.dev))).map(|(&k, _)| k).collect();
        maps.sort_unstable();
        let mut leaked_handles = HashSet::new();
        for k in maps {
            let hk = self.procs[fi].maps[&k].handle;
            // A mapping never unmapped keeps its memory: a leak even if the handle was released
            // (unmapping it below frees it, so count it now, once per handle).
            if let Some(h) = self.procs[fi].handles.get(&hk) {
                if h.released && leaked_handles.insert(hk) {
                    let (d, o, sz) = (h.dev, h.origin, h.size);
                    self.leak(pid, d, kind, o, sz);
                }
            }
            self.unmap_one(fi, k);
        }
        let mut handles: Vec<u64> = self.procs[fi].handles.iter().filter(|(_, h)| on(h.dev)).map(|(&k, _)| k).collect();
        handles.sort_unstable();
        for hk in handles {
            let h = self.procs[fi].handles.remove(&hk).unwrap();
            self.leak(pid, h.dev, kind, h.origin, h.size);
            self.change(fi, h.dev, h.cat, h.origin, -(h.size as i64));
        }
    }

    fn leak(&mut self, pid: u32, dev: i32, kind: LeakKind, origin: u32, bytes: u64) {
        let e = self.leaks.entry((pid, dev, kind, origin)).or_insert((0, 0));
        e.0 = e.0.saturating_add(bytes);
        e.1 += 1;
        let o = &mut self.intern.origins[origin as usize];
        o.leaked = o.leaked.saturating_add(bytes);
    }

    /// The leaks for the report, largest first.
    pub(super) fn leak_rows(&self) -> Vec<Leak> {
        let mut leaks: Vec<Leak> = self
            .leaks
            .iter()
            .map(|(&(pid, dev, kind, origin), &(bytes, allocations))| {
                let o = &self.intern.origins[origin as usize];
                Leak { pid, device: (dev != HOST).then_some(dev), kind, site: o.site as usize, rule: o.rule.clone(), category: o.category, bytes, allocations }
            })
            .collect();
        leaks.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.pid.cmp(&b.pid)).then(a.site.cmp(&b.site)));
        leaks
    }
}
