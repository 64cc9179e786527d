//! Scopes: one per GPU, one for all GPUs, one for pinned host memory. Each keeps its live bytes
//! by category, origin and process, its peak (with the composition at the peak), a downsampled
//! timeline and the fragmentation figures; `Engine::change` applies a byte change to the scopes
//! it lands in.

use super::runtime::RecState;
use super::steps::GrowthOomState;
use super::{add, Cats, Engine, ALL, HOST, NCAT, NONE};
use crate::attribute::Category;
use std::collections::{BTreeMap, VecDeque};

#[derive(Clone, Copy, Default)]
pub(super) struct Point {
    pub t: u64,
    pub total: u64,
    pub cat: Cats,
    pub vmm_reserved: u64,
    pub vmm_mapped: u64,
    pub pool_retained: u64,
    pub bfc: f64,
}

/// Downsampler: per time bucket keeps the lowest, highest and last state, so spikes survive
/// at any zoom and the line ends each bucket where it really was.
pub(super) struct Timeline {
    start: u64,
    width: u64,
    /// Current bucket as [lo, hi) in ns: compared, not divided, on every event.
    bucket: Option<(u64, u64)>,
    min: Point,
    max: Point,
    /// Time of the last observed change (the state held since then is the scope's current one).
    last_t: u64,
    pub out: Vec<Point>,
}

impl Timeline {
    pub fn new(start: u64, end: u64, points: usize) -> Timeline {
        let buckets = (points / 3).max(1) as u64;
        let width = ((end.saturating_sub(start)) / buckets).max(1) + 1;
        Timeline { start, width, bucket: None, min: Point::default(), max: Point::default(), last_t: start, out: Vec::new() }
    }

    /// Whether a change at `t` starts a new bucket (the current one must be flushed first,
    /// with the state as it was).
    fn leaves_bucket(&self, t: u64) -> bool {
        self.bucket.is_some_and(|(lo, hi)| t < lo || t >= hi)
    }

    fn open_bucket(&mut self, t: u64) {
        let b = t.saturating_sub(self.start) / self.width;
        let lo = self.start.saturating_add(b.saturating_mul(self.width));
        self.bucket = Some((lo, lo.saturating_add(self.width)));
    }

    /// `current` is the scope's state now; it has held since `last_t`.
    pub fn flush(&mut self, current: &Point) {
        if self.bucket.is_none() {
            return;
        }
        let mut last = *current;
        last.t = self.last_t;
        let mut pts = [self.min, self.max, last];
        pts.sort_by_key(|p| p.t);
        for p in pts {
            match self.out.last() {
                Some(q) if q.t == p.t && q.total == p.total && q.cat == p.cat => {}
                _ => self.out.push(p),
            }
        }
    }
}

#[derive(Default)]
pub(super) struct PeakTrack {
    pub has: bool,
    pub p: Point,
    pub waste: u64,
    pub snap_origins: Vec<u64>,
    pub snap_procs: Vec<u64>,
    /// Changes since the peak, while the snapshot is still owed.
    pub journal: Vec<(u32, u32, i64)>,
    pub journaling: bool,
}

pub(super) struct Scope {
    pub dev: i32,
    pub cat: Cats,
    pub total: u64,
    pub origins: Vec<u64>,
    pub procs: Vec<u64>,
    pub proc_peak: Vec<u64>,
    pub vmm_reserved: u64,
    pub vmm_mapped: u64,
    pub vmm_free: u64,
    pub largest_holes: BTreeMap<u64, u32>,
    pub bfc_val: f64,
    pub pool_retained: u64,
    pub waste: u64,
    pub peak: PeakTrack,
    pub tl: Timeline,
    pub hist: VecDeque<(u64, Cats)>,
    /// Highest state since the current growth step began, and whether an allocation failed
    /// with out-of-memory in it (such a step is not a sample).
    pub interval: (u64, Cats),
    pub interval_failed: bool,
    pub growth: Vec<(u64, i64, u64, Cats)>,
    pub growth_oom: Option<GrowthOomState>,
    pub capacity: Option<u64>,
    pub capacity_source: &'static str,
    pub rec: RecState,
    pub vmm_reserved_peak: u64,
    pub vmm_mapped_peak: u64,
    pub pool_retained_peak: (u64, u64),
    pub bfc_max: (f64, u64),
    pub touched: bool,
}

impl Scope {
    pub fn new(dev: i32, start: u64, end: u64, points: usize) -> Scope {
        let mut hist = VecDeque::new();
        hist.push_back((start, [0; NCAT]));
        Scope {
            dev,
            cat: [0; NCAT],
            total: 0,
            origins: Vec::new(),
            procs: Vec::new(),
            proc_peak: Vec::new(),
            vmm_reserved: 0,
            vmm_mapped: 0,
            vmm_free: 0,
            largest_holes: BTreeMap::new(),
            bfc_val: 0.0,
            pool_retained: 0,
            waste: 0,
            peak: PeakTrack::default(),
            tl: Timeline::new(start, end, points),
            hist,
            interval: (0, [0; NCAT]),
            interval_failed: false,
            growth: Vec::new(),
            growth_oom: None,
            capacity: None,
            capacity_source: "unknown",
            rec: RecState::new(),
            vmm_reserved_peak: 0,
            vmm_mapped_peak: 0,
            pool_retained_peak: (0, 0),
            bfc_max: (0.0, 0),
            touched: false,
        }
    }

    pub fn bfc(&self) -> f64 {
        self.bfc_val
    }

    /// Recomputes the BFC metric after a VMM change (cached: it is read on every event).
    pub fn update_bfc(&mut self) {
        let largest = self.largest_holes.keys().next_back().copied().unwrap_or(0);
        self.bfc_val = if self.vmm_free == 0 { 0.0 } else { 1.0 - largest.min(self.vmm_free) as f64 / self.vmm_free as f64 };
    }

    pub fn point(&self, t: u64) -> Point {
        Point {
            t,
            total: self.total,
            cat: self.cat,
            vmm_reserved: self.vmm_reserved,
            vmm_mapped: self.vmm_mapped,
            pool_retained: self.pool_retained,
            bfc: self.bfc(),
        }
    }

    pub fn materialize(&mut self) {
        let pk = &mut self.peak;
        pk.snap_origins.clone_from(&self.origins);
        pk.snap_procs.clone_from(&self.procs);
        for &(o, p, d) in pk.journal.iter().rev() {
            if o != NONE {
                if let Some(x) = pk.snap_origins.get_mut(o as usize) {
                    add(x, -d);
                }
            }
            if p != NONE {
                if let Some(x) = pk.snap_procs.get_mut(p as usize) {
                    add(x, -d);
                }
            }
        }
        pk.journal.clear();
        pk.journaling = false;
    }

    pub fn change(&mut self, cat: Category, origin: u32, proc_: u32, d: i64) {
        add(&mut self.cat[cat.index()], d);
        if self.dev == HOST || cat != Category::HostPinned {
            add(&mut self.total, d);
        }
        if origin != NONE {
            let o = origin as usize;
            if self.origins.len() <= o {
                self.origins.resize(o + 1, 0);
            }
            add(&mut self.origins[o], d);
        }
        if proc_ != NONE {
            let p = proc_ as usize;
            if self.procs.len() <= p {
                self.procs.resize(p + 1, 0);
                self.proc_peak.resize(p + 1, 0);
            }
            add(&mut self.procs[p], d);
            self.proc_peak[p] = self.proc_peak[p].max(self.procs[p]);
        }
        if self.peak.journaling && (origin != NONE || proc_ != NONE) {
            self.peak.journal.push((origin, proc_, d));
            if self.peak.journal.len() > 64 + 2 * (self.origins.len() + self.procs.len()) {
                self.materialize();
            }
        }
    }

    /// Before the first change of an event: close the timeline bucket if this event is past it.
    pub fn before(&mut self, t: u64) {
        if self.tl.leaves_bucket(t) {
            let p = self.point(t);
            self.tl.flush(&p);
            self.tl.bucket = None;
        }
    }

    /// After all changes of one event.
    pub fn after(&mut self, t: u64, hist_step: u64, window: u64) {
        if !self.peak.has || self.total > self.peak.p.total {
            self.peak.has = true;
            self.peak.p = self.point(t);
            self.peak.waste = self.waste;
            self.peak.journal.clear();
            self.peak.journaling = true;
        }
        // Timeline: points are built only when they become a bucket's minimum or maximum.
        self.tl.last_t = t;
        if self.tl.bucket.is_none() {
            self.tl.open_bucket(t);
            let p = self.point(t);
            self.tl.min = p;
            self.tl.max = p;
        } else if self.total < self.tl.min.total {
            self.tl.min = self.point(t);
        } else if self.total > self.tl.max.total {
            self.tl.max = self.point(t);
        }
        if self.hist.back().is_none_or(|h| t >= h.0.saturating_add(hist_step)) {
            self.hist.push_back((t, self.cat));
            while self.hist.len() > 2 && self.hist[1].0.saturating_add(window) <= t {
                self.hist.pop_front();
            }
        }
        if self.total >= self.interval.0 {
            self.interval = (self.total, self.cat);
        }
        self.vmm_reserved_peak = self.vmm_reserved_peak.max(self.vmm_reserved);
        self.vmm_mapped_peak = self.vmm_mapped_peak.max(self.vmm_mapped);
        if self.pool_retained > self.pool_retained_peak.0 {
            self.pool_retained_peak = (self.pool_retained, t);
        }
        if self.bfc_val > self.bfc_max.0 {
            self.bfc_max = (self.bfc_val, t);
        }
    }
}


impl Engine<'_> {
    pub(super) fn scope(&mut self, dev: i32) -> usize {
        // Hot path: every valid ordinal and the all-GPUs scope are looked up in a small array.
        let slot = match dev {
            ALL => 0,
            d if vramtrace_trace::record::valid_device(d) => (d + 2) as usize,
            _ => usize::MAX,
        };
        if let Some(&i) = self.dev_slots.get(slot) {
            if i != usize::MAX {
                return i;
            }
        }
        if let Some(&i) = self.scope_ix.get(&dev) {
            return i;
        }
        let i = self.scopes.len();
        let mut s = Scope::new(dev, self.start, self.end, self.opts.timeline_points.max(3));
        if dev != HOST && dev != ALL {
            if let Some(v) = self.opts.vram {
                s.capacity = Some(v);
                s.capacity_source = "option";
            }
        }
        self.scopes.push(s);
        self.scope_ix.insert(dev, i);
        if let Some(x) = self.dev_slots.get_mut(slot) {
            *x = i;
        }
        i
    }


    /// The scopes a change on `dev` lands in: the device and the all-GPUs aggregate — or the
    /// device alone when the traces use one GPU only (the aggregate is then that device).
    pub(super) fn targets(&self, dev: i32) -> [Option<i32>; 2] {
        if dev == HOST {
            [Some(HOST), None]
        } else if self.single_gpu {
            [Some(dev), None]
        } else {
            [Some(dev), Some(ALL)]
        }
    }

    /// Applies `d` bytes of `cat` to device `dev` (and the all-GPUs aggregate), process `pi`.
    pub(super) fn change(&mut self, pi: usize, dev: i32, cat: Category, origin: u32, d: i64) {
        if d == 0 {
            return;
        }
        let t = self.now;
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            let s = &mut self.scopes[si];
            if !s.touched {
                s.touched = true;
                s.before(t);
                self.touched.push(si);
            }
            s.change(cat, origin, if pi == usize::MAX { NONE } else { pi as u32 }, d);
        }
        if origin != NONE {
            let o = &mut self.intern.origins[origin as usize];
            add(&mut o.live, d);
            o.max_live = o.max_live.max(o.live);
        }
        if pi != usize::MAX {
            let p = &mut self.procs[pi];
            if dev == HOST {
                add(&mut p.host, d);
                p.host_peak = p.host_peak.max(p.host);
            } else {
                add(&mut p.cat[cat.index()], d);
                add(&mut p.total, d);
                if p.total > p.peak_total {
                    p.peak_total = p.total;
                    p.peak_t = t;
                    p.peak_cat = p.cat;
                }
            }
        }
    }

    /// Touches a scope whose fragmentation figures change without a byte change.
    pub(super) fn touch(&mut self, dev: i32) {
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            let t = self.now;
            let s = &mut self.scopes[si];
            if !s.touched {
                s.touched = true;
                s.before(t);
                self.touched.push(si);
            }
        }
    }

    pub(super) fn after_event(&mut self) {
        let t = self.now;
        let window = self.opts.oom_window_ns;
        for k in 0..self.touched.len() {
            let s = &mut self.scopes[self.touched[k]];
            s.touched = false;
            s.after(t, self.hist_step, window);
        }
        self.touched.clear();
    }
}
