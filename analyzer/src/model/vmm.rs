//! Virtual memory management: address reservations (address space only), physical handles
//! (memory from cuMemCreate until released and unmapped, counted once however often mapped)
//! and their mappings, with the free holes of every reservation for the fragmentation figures.

use super::process::Proc;
use super::Engine;
use crate::attribute::{Category, RuleSource};
use crate::load::Loaded;
use std::collections::BTreeMap;
use vramtrace_trace::{ApiKind, EventRec};

pub(super) struct Handle {
    pub size: u64,
    pub dev: i32,
    pub origin: u32,
    pub cat: Category,
    pub maps: u32,
    pub released: bool,
}

pub(super) struct Mapping {
    pub size: u64,
    pub handle: u64,
    /// When it was mapped (for the address-space map).
    pub t: u64,
    /// Start of the reservation the mapping lies in.
    pub reserve: Option<u64>,
}

pub(super) struct Reserve {
    pub size: u64,
    pub dev: i32,
    pub mapped: u64,
    /// Free holes by size (size → count), for the largest free block.
    pub holes: BTreeMap<u64, u32>,
}

impl Reserve {
    fn largest(&self) -> u64 {
        self.holes.keys().next_back().copied().unwrap_or(0)
    }
    fn add_hole(&mut self, s: u64) {
        if s > 0 {
            *self.holes.entry(s).or_insert(0) += 1;
        }
    }
    fn del_hole(&mut self, s: u64) {
        if s == 0 {
            return;
        }
        if let Some(c) = self.holes.get_mut(&s) {
            *c -= 1;
            if *c == 0 {
                self.holes.remove(&s);
            }
        }
    }
}

impl Engine<'_> {
    pub(super) fn on_reserve(&mut self, fi: usize, e: &EventRec) {
        if e.size == 0 || e.ptr == 0 {
            return;
        }
        let pid = self.procs[fi].pid;
        if self.procs[fi].reserves.contains_key(&e.ptr) {
            self.anomaly("reserve_over_live", pid, Some(e), e.t_ns, "address range reserved again while reserved".into());
            self.drop_reserve(fi, e.ptr);
        }
        let size = e.size.min(u64::MAX - e.ptr);
        let mut r = Reserve { size, dev: e.device, mapped: 0, holes: BTreeMap::new() };
        r.add_hole(size);
        self.procs[fi].reserves.insert(e.ptr, r);
        self.reserve_acct(e.device, size, size, size, true);
    }

    /// Adds (or removes) one reservation's figures to its device's scope: reserved bytes,
    /// free bytes and its largest hole. A change to a reservation is a removal of its old
    /// figures followed by an addition of the new ones, so moves between devices stay exact.
    fn reserve_acct(&mut self, dev: i32, size: u64, free: u64, largest: u64, plus: bool) {
        self.touch(dev);
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            let s = &mut self.scopes[si];
            if plus {
                s.vmm_reserved = s.vmm_reserved.saturating_add(size);
                s.vmm_free = s.vmm_free.saturating_add(free);
                *s.largest_holes.entry(largest).or_insert(0) += 1;
            } else {
                s.vmm_reserved = s.vmm_reserved.saturating_sub(size);
                s.vmm_free = s.vmm_free.saturating_sub(free);
                if let Some(c) = s.largest_holes.get_mut(&largest) {
                    *c -= 1;
                    if *c == 0 {
                        s.largest_holes.remove(&largest);
                    }
                }
            }
            s.update_bfc();
        }
    }

    fn reserve_figures(r: &Reserve) -> (i32, u64, u64, u64) {
        (r.dev, r.size, r.size.saturating_sub(r.mapped), r.largest())
    }

    /// Changes reservation `rstart` with `f`, moving its figures in the scopes from the old
    /// values to the new.
    fn update_reserve(&mut self, fi: usize, rstart: u64, f: impl FnOnce(&mut Reserve)) {
        let Some(r) = self.procs[fi].reserves.get(&rstart) else { return };
        let old = Self::reserve_figures(r);
        self.reserve_acct(old.0, old.1, old.2, old.3, false);
        let r = self.procs[fi].reserves.get_mut(&rstart).unwrap();
        f(r);
        let new = Self::reserve_figures(r);
        self.reserve_acct(new.0, new.1, new.2, new.3, true);
    }

    pub(super) fn drop_reserve(&mut self, fi: usize, start: u64) {
        let Some(r) = self.procs[fi].reserves.remove(&start) else { return };
        let end = start.saturating_add(r.size);
        let inner: Vec<u64> = self.procs[fi].maps.range(start..end).map(|(&k, _)| k).collect();
        for k in inner {
            if let Some(m) = self.procs[fi].maps.get_mut(&k) {
                m.reserve = None;
            }
        }
        let (d, size, free, largest) = Self::reserve_figures(&r);
        self.reserve_acct(d, size, free, largest, false);
    }

    pub(super) fn on_address_free(&mut self, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        match self.procs[fi].reserves.get(&e.ptr) {
            None => self.anomaly("unknown_address_free", pid, Some(e), e.t_ns, "range was not reserved in this trace".into()),
            Some(r) => {
                if r.mapped > 0 {
                    self.anomaly("address_free_while_mapped", pid, Some(e), e.t_ns, format!("{} bytes still mapped in the range", r.mapped));
                }
                self.drop_reserve(fi, e.ptr);
            }
        }
    }

    pub(super) fn on_create(&mut self, src: &Loaded, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        if self.procs[fi].handles.contains_key(&e.handle) {
            self.anomaly("handle_over_live", pid, Some(e), e.t_ns, "handle returned again while alive; the earlier one is dropped".into());
            if let Some(h) = self.procs[fi].handles.remove(&e.handle) {
                self.change(fi, h.dev, h.cat, h.origin, -(h.size as i64));
            }
        }
        let sa = self.stack_attr(src, fi, e);
        let (origin, cat) = self.attribute(fi, e, ApiKind::Create, sa, e.device);
        self.intern.count_alloc(origin, e.size);
        self.procs[fi].handles.insert(e.handle, Handle { size: e.size, dev: e.device, origin, cat, maps: 0, released: false });
        self.change(fi, e.device, cat, origin, e.size as i64);
    }

    pub(super) fn on_release(&mut self, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        let Some(h) = self.procs[fi].handles.get_mut(&e.handle) else {
            self.anomaly("unknown_release", pid, Some(e), e.t_ns, "handle was never created in this trace".into());
            return;
        };
        if h.released {
            self.anomaly("double_release", pid, Some(e), e.t_ns, "handle released twice".into());
            return;
        }
        h.released = true;
        // Released while mapped: the memory stays until the last unmap (ggml releases right
        // after mapping).
        if h.maps == 0 {
            let h = self.procs[fi].handles.remove(&e.handle).unwrap();
            self.change(fi, h.dev, h.cat, h.origin, -(h.size as i64));
        }
    }

    fn reserve_of(p: &Proc, va: u64) -> Option<u64> {
        let (&s, r) = p.reserves.range(..=va).next_back()?;
        (va < s.saturating_add(r.size)).then_some(s)
    }

    /// (end of the previous mapping or reservation start, start of the next or reservation end)
    fn gap_around(p: &Proc, rstart: u64, rend: u64, va: u64, end: u64) -> (u64, u64) {
        let prev_end = p.maps.range(rstart..va).next_back().map_or(rstart, |(&k, m)| k.saturating_add(m.size).min(va).max(rstart));
        let next_start = p.maps.range(end..rend).next().map_or(rend, |(&k, _)| k).max(end);
        (prev_end, next_start)
    }

    pub(super) fn on_map(&mut self, src: &Loaded, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        let (va, size) = (e.ptr, e.size.min(u64::MAX - e.ptr));
        if size == 0 {
            return;
        }
        if !self.procs[fi].handles.contains_key(&e.handle) {
            self.anomaly("map_unknown_handle", pid, Some(e), e.t_ns, "handle created before the trace started; its size is taken from the mapping".into());
            let sa = self.stack_attr(src, fi, e);
            let o = self.intern.origin(sa.site, "default:handle_created_before_trace", RuleSource::Default, Category::Unknown, None);
            self.procs[fi].handles.insert(e.handle, Handle { size, dev: e.device, origin: o, cat: Category::Unknown, maps: 0, released: false });
            self.change(fi, e.device, Category::Unknown, o, size as i64);
        }
        if self.procs[fi].maps.range(va..va + size).next().is_some()
            || self.procs[fi].maps.range(..va).next_back().is_some_and(|(&k, m)| k.saturating_add(m.size) > va)
        {
            self.anomaly("map_overlaps_mapping", pid, Some(e), e.t_ns, "range overlaps an existing mapping".into());
            return;
        }
        let dev = {
            let h = self.procs[fi].handles.get_mut(&e.handle).unwrap();
            h.maps += 1;
            h.dev
        };
        let rs = Self::reserve_of(&self.procs[fi], va);
        if rs.is_none() {
            self.anomaly("map_outside_reservation", pid, Some(e), e.t_ns, "mapping outside any reserved range of this trace".into());
        }
        if let Some(rstart) = rs {
            let p = &self.procs[fi];
            let r = &p.reserves[&rstart];
            let rend = rstart + r.size;
            let end = (va + size).min(rend);
            let (prev_end, next_start) = Self::gap_around(p, rstart, rend, va, end);
            self.update_reserve(fi, rstart, |r| {
                if r.dev < 0 && dev >= 0 {
                    r.dev = dev; // reserved without a device context: it belongs where it is mapped
                }
                r.del_hole(next_start.saturating_sub(prev_end));
                r.add_hole(va.saturating_sub(prev_end));
                r.add_hole(next_start.saturating_sub(end));
                r.mapped = r.mapped.saturating_add(end - va);
            });
        }
        self.procs[fi].maps.insert(va, Mapping { size, handle: e.handle, t: e.t_ns, reserve: rs });
        self.touch(dev);
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            self.scopes[si].vmm_mapped = self.scopes[si].vmm_mapped.saturating_add(size);
        }
    }

    pub(super) fn on_unmap(&mut self, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        let (va, size) = (e.ptr, e.size.max(1));
        let mut keys: Vec<u64> = self.procs[fi].maps.range(va..va.saturating_add(size)).map(|(&k, _)| k).collect();
        if let Some((&k, m)) = self.procs[fi].maps.range(..va).next_back() {
            if k.saturating_add(m.size) > va {
                self.anomaly("partial_unmap", pid, Some(e), e.t_ns, "range starts inside a mapping".into());
                keys.insert(0, k);
            }
        }
        if keys.is_empty() {
            self.anomaly("unmap_unknown_range", pid, Some(e), e.t_ns, "nothing mapped in this range".into());
            return;
        }
        for k in keys {
            self.unmap_one(fi, k);
        }
    }

    pub(super) fn unmap_one(&mut self, fi: usize, k: u64) {
        let Some(m) = self.procs[fi].maps.remove(&k) else { return };
        if let Some(h) = self.procs[fi].handles.get(&m.handle) {
            let (dev, cat, now) = (h.dev, h.cat, self.now);
            self.spans.entry(dev).or_default().push(m.size, k, m.t, now, cat, true);
        }
        if let Some(rstart) = m.reserve {
            if let Some(r) = self.procs[fi].reserves.get(&rstart) {
                let rend = rstart + r.size;
                let end = k.saturating_add(m.size).min(rend);
                let (prev_end, next_start) = Self::gap_around(&self.procs[fi], rstart, rend, k, end);
                self.update_reserve(fi, rstart, |r| {
                    r.del_hole(k.saturating_sub(prev_end));
                    r.del_hole(next_start.saturating_sub(end));
                    r.add_hole(next_start.saturating_sub(prev_end));
                    r.mapped = r.mapped.saturating_sub(end.saturating_sub(k));
                });
            }
        }
        let mut drop_handle = None;
        let mut dev = -1;
        if let Some(h) = self.procs[fi].handles.get_mut(&m.handle) {
            h.maps = h.maps.saturating_sub(1);
            dev = h.dev;
            if h.maps == 0 && h.released {
                drop_handle = Some(m.handle);
            }
        }
        self.touch(dev);
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            let s = &mut self.scopes[si];
            s.vmm_mapped = s.vmm_mapped.saturating_sub(m.size);
        }
        if let Some(hk) = drop_handle {
            let h = self.procs[fi].handles.remove(&hk).unwrap();
            self.change(fi, h.dev, h.cat, h.origin, -(h.size as i64));
        }
    }
}
