//! The memory model: replays the merged event streams of every traced process and keeps, per
//! device, what is live and why, over time.
//!
//! Pure: events, markers and log lines in; a `Report` out. Nothing here opens a file (the
//! traces are memory maps and symbols were resolved beforehand), so the model can be tested on
//! synthetic traces and re-run with other options. Memory is bounded by the live set (plus a
//! few fixed-size summaries), never by the number of events: peaks keep a journal of changes
//! instead of snapshotting, timelines are downsampled while they are built.
//!
//! Accounting (DESIGN.md §3 "VMM accounting traps", issue 4 item 2):
//! - `cuMemAddressReserve` is address space only (fragmentation figures, never VRAM);
//! - `cuMemCreate` is physical memory from creation until it is both released and unmapped,
//!   counted once however many times it is mapped; one `cuMemUnmap` may cover many mappings;
//! - stream-ordered frees return memory to the pool, which keeps it (`pool retention`) until it
//!   is reused or trimmed;
//! - pinned host memory lives in a separate `host` scope and never in a VRAM total;
//! - failed calls change nothing; inconsistent calls become anomalies, never panics;
//! - runtime = driver-reported used − traced, refreshed at every driver reading.

use crate::attribute::{Attributor, Category, RuleSource};
use crate::load::{EventIter, Loaded, TraceFile};
use crate::logs::{self, BufferLine};
use crate::report::*;
use crate::symbolize::Frame;
use crate::Options;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use vramtrace_trace::api::cu;
use vramtrace_trace::{Api, ApiKind, EventRec};

const NCAT: usize = Category::COUNT;
type Cats = [u64; NCAT];
/// Scope key of pinned host memory.
const HOST: i32 = i32::MIN;
/// Scope key of the all-GPUs aggregate.
const ALL: i32 = i32::MAX;
const NONE: u32 = u32::MAX;
const MIB: u64 = 1 << 20;
/// Allocation granularity assumed for the rounding-waste estimate (large-page size of current
/// NVIDIA GPUs; small allocations are packed by the driver and assumed 512-byte aligned).
pub const ROUNDING_GRANULARITY: u64 = 2 * MIB;
const SMALL_ALIGN: u64 = 512;
const MAX_EXAMPLES: usize = 10;
const MAX_MARKERS: usize = 10_000;
const MAX_REC_SAMPLES: usize = 2000;
/// Log lines match allocations made up to this long before them (and 1 s after, for clock
/// skew between the runner's pipe reader and the driver call).
const LOG_BEFORE_NS: u64 = 120_000_000_000;
const LOG_AFTER_NS: u64 = 1_000_000_000;
const VLLM_WINDOW_NS: u64 = 300_000_000_000;
const GROWTH_LABELS: [&str; 3] = ["tokens", "n_tokens", "prompt_tokens"];
/// Markers that open a step whose token count a later tokens marker gives.
const STEP_START_LABELS: [&str; 2] = ["step_start", "request_start"];
/// Ends an open step without a sample (the request failed); its value is the token count the
/// step was for, named as the OOM step if an allocation failed for lack of memory during it.
const STEP_FAILED_LABEL: &str = "request_failed";
/// Larger sizes (4 PiB) are corruption or garbage out-params, not memory: such events become
/// anomalies. The cap also keeps every byte delta within i64.
const MAX_PLAUSIBLE: u64 = 1 << 52;
/// How many freed pointers (not yet reused) are remembered to tell double frees from frees of
/// never-seen pointers.
const FREED_MEMORY: usize = 1 << 16;

/// Multiplicative hasher for integer keys (pointers, handles, ids): the std SipHash costs more
/// than the rest of the per-event work. The final fold spreads the product's high bits into the
/// low bits hashbrown indexes with (pointers have their low bits zero).
#[derive(Default, Clone, Copy)]
pub(crate) struct IntHasher(u64);
impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64)
    }
    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u32 as u64)
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64)
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

fn add(x: &mut u64, d: i64) {
    if d >= 0 {
        *x = x.saturating_add(d as u64);
    } else {
        *x = x.saturating_sub(d.unsigned_abs());
    }
}


fn rounding_waste(size: u64) -> u64 {
    let g = if size >= MIB { ROUNDING_GRANULARITY } else { SMALL_ALIGN };
    size.div_ceil(g).checked_mul(g).map_or(0, |r| r - size)
}

// ---------------------------------------------------------------------------------------------
// Call sites and origins (site × rule)

struct SiteInfo {
    key: String,
    frames: Vec<String>,
}

struct OriginInfo {
    site: u32,
    rule: String,
    source: RuleSource,
    category: Category,
    frame: Option<String>,
    allocs: u64,
    bytes: u64,
    live: u64,
    max_live: u64,
    leaked: u64,
}

#[derive(Default)]
struct Interner {
    sites: Vec<SiteInfo>,
    site_ix: HashMap<String, u32>,
    origins: Vec<OriginInfo>,
    origin_ix: HashMap<(u32, String), u32>,
}

impl Interner {
    fn site(&mut self, key: String, frames: impl FnOnce() -> Vec<String>) -> u32 {
        if let Some(&i) = self.site_ix.get(&key) {
            return i;
        }
        let i = self.sites.len() as u32;
        self.sites.push(SiteInfo { key: key.clone(), frames: frames() });
        self.site_ix.insert(key, i);
        i
    }

    fn origin(&mut self, site: u32, rule: &str, source: RuleSource, category: Category, frame: Option<String>) -> u32 {
        if let Some(&i) = self.origin_ix.get(&(site, rule.to_string())) {
            return i;
        }
        let i = self.origins.len() as u32;
        self.origins.push(OriginInfo {
            site,
            rule: rule.to_string(),
            source,
            category,
            frame,
            allocs: 0,
            bytes: 0,
            live: 0,
            max_live: 0,
            leaked: 0,
        });
        self.origin_ix.insert((site, rule.to_string()), i);
        i
    }
}

#[derive(Clone, Copy)]
struct StackAttr {
    site: u32,
    origin: u32,
    category: Category,
}

// ---------------------------------------------------------------------------------------------
// Per-process state

#[derive(Clone, Copy, PartialEq, Eq)]
enum AllocKind {
    Device,
    /// From a stream-ordered pool (handle; 0 = the device's default pool).
    Async(u64),
    Host,
}

struct Alloc {
    size: u64,
    dev: i32,
    origin: u32,
    cat: Category,
    kind: AllocKind,
    /// When it was allocated (for the address-space map).
    t: u64,
}

struct Handle {
    size: u64,
    dev: i32,
    origin: u32,
    cat: Category,
    maps: u32,
    released: bool,
}

struct Mapping {
    size: u64,
    handle: u64,
    /// When it was mapped (for the address-space map).
    t: u64,
    /// Start of the reservation the mapping lies in.
    reserve: Option<u64>,
}

struct Reserve {
    size: u64,
    dev: i32,
    mapped: u64,
    /// Free holes by size (size → count), for the largest free block.
    holes: BTreeMap<u64, u32>,
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

struct Pool {
    used: u64,
    retained: u64,
    retained_origin: u32,
    retained_cat: Category,
    peak_reserved: u64,
    peak_used: u64,
    trims: u64,
}

struct Proc {
    pid: u32,
    allocs: FastMap<u64, Alloc>,
    freed: FastMap<u64, ()>,
    handles: FastMap<u64, Handle>,
    maps: BTreeMap<u64, Mapping>,
    reserves: BTreeMap<u64, Reserve>,
    pools: FastMap<(i32, u64), Pool>,
    ctx_count: FastMap<i32, i64>,
    ctx_dev: FastMap<u64, i32>,
    phases: Vec<Category>,
    /// Devices on which the cuBLAS workspace size fingerprint was used already.
    workspace_seen: Vec<i32>,
    last_t: u64,
    cat: Cats,
    total: u64,
    peak_total: u64,
    peak_t: u64,
    peak_cat: Cats,
    host: u64,
    host_peak: u64,
    ended: bool,
}

// ---------------------------------------------------------------------------------------------
// Scopes: one per GPU, one for all GPUs, one for pinned host memory

#[derive(Clone, Copy, Default)]
struct Point {
    t: u64,
    total: u64,
    cat: Cats,
    vmm_reserved: u64,
    vmm_mapped: u64,
    pool_retained: u64,
    bfc: f64,
}

/// Downsampler: per time bucket keeps the lowest, highest and last state, so spikes survive
/// at any zoom and the line ends each bucket where it really was.
struct Timeline {
    start: u64,
    width: u64,
    /// Current bucket as [lo, hi) in ns: compared, not divided, on every event.
    bucket: Option<(u64, u64)>,
    min: Point,
    max: Point,
    /// Time of the last observed change (the state held since then is the scope's current one).
    last_t: u64,
    out: Vec<Point>,
}

impl Timeline {
    fn new(start: u64, end: u64, points: usize) -> Timeline {
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
    fn flush(&mut self, current: &Point) {
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
struct PeakTrack {
    has: bool,
    p: Point,
    waste: u64,
    snap_origins: Vec<u64>,
    snap_procs: Vec<u64>,
    /// Changes since the peak, while the snapshot is still owed.
    journal: Vec<(u32, u32, i64)>,
    journaling: bool,
}

struct GrowthOomState {
    t: u64,
    step: Option<i64>,
    last_done: Option<i64>,
    /// The failure happened after a step-start marker: the closing tokens marker names the step.
    awaiting_close: bool,
}

struct RecState {
    readings: u64,
    samples: Vec<RecSample>,
    stride: u64,
    last: u64,
    min: u64,
    max: u64,
    exceeds: u64,
}

struct Scope {
    dev: i32,
    cat: Cats,
    total: u64,
    origins: Vec<u64>,
    procs: Vec<u64>,
    proc_peak: Vec<u64>,
    vmm_reserved: u64,
    vmm_mapped: u64,
    vmm_free: u64,
    largest_holes: BTreeMap<u64, u32>,
    bfc_val: f64,
    pool_retained: u64,
    waste: u64,
    peak: PeakTrack,
    tl: Timeline,
    hist: VecDeque<(u64, Cats)>,
    /// Highest state since the current growth step began, and whether an allocation failed
    /// with out-of-memory in it (such a step is not a sample).
    interval: (u64, Cats),
    interval_failed: bool,
    growth: Vec<(u64, i64, u64, Cats)>,
    growth_oom: Option<GrowthOomState>,
    capacity: Option<u64>,
    capacity_source: &'static str,
    rec: RecState,
    vmm_reserved_peak: u64,
    vmm_mapped_peak: u64,
    pool_retained_peak: (u64, u64),
    bfc_max: (f64, u64),
    touched: bool,
}

impl Scope {
    fn new(dev: i32, start: u64, end: u64, points: usize) -> Scope {
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
            rec: RecState { readings: 0, samples: Vec::new(), stride: 1, last: 0, min: u64::MAX, max: 0, exceeds: 0 },
            vmm_reserved_peak: 0,
            vmm_mapped_peak: 0,
            pool_retained_peak: (0, 0),
            bfc_max: (0.0, 0),
            touched: false,
        }
    }

    fn bfc(&self) -> f64 {
        self.bfc_val
    }

    /// Recomputes the BFC metric after a VMM change (cached: it is read on every event).
    fn update_bfc(&mut self) {
        let largest = self.largest_holes.keys().next_back().copied().unwrap_or(0);
        self.bfc_val = if self.vmm_free == 0 { 0.0 } else { 1.0 - largest.min(self.vmm_free) as f64 / self.vmm_free as f64 };
    }

    fn point(&self, t: u64) -> Point {
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

    fn materialize(&mut self) {
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

    fn change(&mut self, cat: Category, origin: u32, proc_: u32, d: i64) {
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

    /// After all changes of one event.
    /// Before the first change of an event: close the timeline bucket if this event is past it.
    fn before(&mut self, t: u64) {
        if self.tl.leaves_bucket(t) {
            let p = self.point(t);
            self.tl.flush(&p);
            self.tl.bucket = None;
        }
    }

    fn after(&mut self, t: u64, hist_step: u64, window: u64) {
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

// ---------------------------------------------------------------------------------------------
// Inputs merged by time

enum Item {
    Event(usize, EventRec),
    End(usize, u64),
    Marker(usize),
}

impl Item {
    fn key(&self) -> (u64, u8) {
        match self {
            Item::Event(_, e) => (e.t_ns, 0),
            Item::End(_, t) => (*t, 1),
            Item::Marker(_) => (0, 2), // replaced by the caller with the marker's time
        }
    }
}

struct FileSource<'a> {
    fi: usize,
    iter: EventIter<'a>,
    events_done: bool,
    end_t: u64,
    end_sent: bool,
}

struct MarkerItem {
    t: u64,
    pid: Option<u32>,
    file: Option<usize>,
    label: String,
    value: i64,
    sidecar: bool,
}

struct LogLine {
    b: BufferLine,
    matched: Option<LogAlloc>,
}

#[derive(Default)]
struct Anomalies {
    kinds: BTreeMap<&'static str, (u64, Vec<AnomalyExample>)>,
}

// ---------------------------------------------------------------------------------------------
// The engine

pub(crate) struct Engine<'a> {
    loaded: &'a Loaded,
    opts: &'a Options,
    start: u64,
    end: u64,
    now: u64,
    events: u64,
    intern: Interner,
    stacks: Vec<FastMap<u32, StackAttr>>,
    no_stack: StackAttr,
    procs: Vec<Proc>,
    scopes: Vec<Scope>,
    scope_ix: FastMap<i32, usize>,
    dev_slots: [usize; 65],
    /// At most one GPU in all traces (from the scan): no separate all-GPUs scope is kept.
    single_gpu: bool,
    touched: Vec<usize>,
    markers: Vec<MarkerItem>,
    marker_reports: Vec<MarkerReport>,
    markers_dropped: u64,
    global_phases: Vec<Category>,
    logs: Vec<LogLine>,
    log_lo: usize,
    ggml_runner: bool,
    last_compute_line: Option<u64>,
    vllm_arms: Vec<u64>,
    vllm_next: usize,
    vllm: Option<(u64, Option<u64>)>,
    /// A tokens marker announcing the step that follows it: (time, tokens).
    growth_open: Option<(u64, i64)>,
    /// A step-start marker whose tokens marker has not come yet.
    growth_start: Option<u64>,
    last_done_tokens: Option<i64>,
    ooms: Vec<Oom>,
    leaks: BTreeMap<(u32, i32, LeakKind, u32), (u64, u64)>,
    anomalies: Anomalies,
    hist_step: u64,
    /// Per device, the largest address ranges seen (allocations and VMM mappings), for the
    /// address-space map; bounded so a huge trace stays small.
    spans: FastMap<i32, SpanSet>,
}

/// (size, ptr, start, end, category, vmm): size first, so the heap orders by it.
type SpanKey = (u64, u64, u64, u64, u8, bool);

/// The `cap` largest spans of one device (min-heap on size), plus how many were left out.
#[derive(Default)]
struct SpanSet {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<SpanKey>>,
    dropped: u64,
}

const ADDRESS_MAP_SPANS: usize = 4096;

impl SpanSet {
    fn push(&mut self, size: u64, ptr: u64, start: u64, end: u64, cat: Category, vmm: bool) {
        // Full and not bigger than the smallest kept: the common case in a long trace, O(1).
        if self.heap.len() >= ADDRESS_MAP_SPANS && self.heap.peek().is_some_and(|m| m.0 .0 >= size) {
            self.dropped += 1;
            return;
        }
        self.heap.push(std::cmp::Reverse((size, ptr, start, end, cat as u8, vmm)));
        if self.heap.len() > ADDRESS_MAP_SPANS {
            self.heap.pop();
            self.dropped += 1;
        }
    }
}

impl<'a> Engine<'a> {
    pub(crate) fn new(loaded: &'a Loaded, opts: &'a Options) -> Engine<'a> {
        let mut start = u64::MAX;
        let mut end = 0u64;
        for t in &loaded.traces {
            let s = if t.info.mono_ns > 0 { t.info.mono_ns.min(t.first_ns) } else { t.first_ns };
            start = start.min(s);
            end = end.max(t.last_ns).max(t.end_ns.unwrap_or(0));
        }
        for m in &loaded.markers {
            start = start.min(m.t_ns);
            end = end.max(m.t_ns);
        }
        if start == u64::MAX {
            start = 0;
        }
        end = end.max(start);

        let mut e = Engine {
            loaded,
            opts,
            start,
            end,
            now: start,
            spans: FastMap::default(),
            events: 0,
            intern: Interner::default(),
            stacks: Vec::new(),
            no_stack: StackAttr { site: 0, origin: 0, category: Category::Unknown },
            procs: Vec::new(),
            scopes: Vec::new(),
            scope_ix: FastMap::default(),
            dev_slots: [usize::MAX; 65],
            single_gpu: {
                let mut d: Vec<i32> = loaded.traces.iter().flat_map(|t| t.devices.iter().copied()).collect();
                d.sort_unstable();
                d.dedup();
                d.len() <= 1
            },
            touched: Vec::new(),
            markers: Vec::new(),
            marker_reports: Vec::new(),
            markers_dropped: 0,
            global_phases: Vec::new(),
            logs: Vec::new(),
            log_lo: 0,
            ggml_runner: false,
            last_compute_line: None,
            vllm_arms: Vec::new(),
            vllm_next: 0,
            vllm: None,
            growth_open: None,
            growth_start: None,
            last_done_tokens: None,
            ooms: Vec::new(),
            leaks: BTreeMap::new(),
            anomalies: Anomalies::default(),
            hist_step: (opts.oom_window_ns / 32).max(1),
        };
        e.scope(ALL);
        e.prepare_stacks();
        e.prepare_inputs();
        e
    }

    fn prepare_stacks(&mut self) {
        let att = Attributor::new(self.opts.rules.as_ref());
        let site = self.intern.site("(no stack)".into(), Vec::new);
        let origin = self.intern.origin(site, "default:no_stack", RuleSource::Default, Category::Unknown, None);
        self.no_stack = StackAttr { site, origin, category: Category::Unknown };
        for (fi, tf) in self.loaded.traces.iter().enumerate() {
            let mut map = FastMap::default();
            let mut ids: Vec<&u32> = tf.stacks.keys().collect();
            ids.sort();
            for id in ids {
                let addrs = &tf.stacks[id];
                let mut frames: Vec<Frame> = addrs
                    .iter()
                    .map(|&a| self.loaded.symbols.frame(fi, a).cloned().unwrap_or_else(|| Frame::unresolved(a, &tf.modules)))
                    .collect();
                // The shim's own frames say nothing about the caller.
                let own = frames.iter().take_while(|f| f.module.as_deref().is_some_and(|m| m.contains("libvramtrace"))).count();
                frames.drain(..own);
                if frames.is_empty() {
                    map.insert(*id, self.no_stack);
                    continue;
                }
                let d = att.decide(&frames);
                let key = frames.iter().map(Frame::key).collect::<Vec<_>>().join(" <- ");
                let site = self.intern.site(key, || frames.iter().take(24).map(|f| f.to_string()).collect());
                let origin = self.intern.origin(site, &d.rule, d.source, d.category, d.frame);
                map.insert(*id, StackAttr { site, origin, category: d.category });
            }
            self.stacks.push(map);
        }
    }

    fn prepare_inputs(&mut self) {
        for (fi, tf) in self.loaded.traces.iter().enumerate() {
            self.procs.push(Proc {
                pid: tf.info.pid,
                allocs: FastMap::default(),
                freed: FastMap::default(),
                handles: FastMap::default(),
                maps: BTreeMap::new(),
                reserves: BTreeMap::new(),
                pools: FastMap::default(),
                ctx_count: FastMap::default(),
                ctx_dev: FastMap::default(),
                phases: Vec::new(),
                workspace_seen: Vec::new(),
                last_t: 0,
                cat: [0; NCAT],
                total: 0,
                peak_total: 0,
                peak_t: 0,
                peak_cat: [0; NCAT],
                host: 0,
                host_peak: 0,
                ended: false,
            });
            for m in &tf.markers {
                self.markers.push(MarkerItem {
                    t: m.t_ns,
                    pid: Some(tf.info.pid),
                    file: Some(fi),
                    label: m.label.clone(),
                    value: m.value,
                    sidecar: false,
                });
            }
        }
        for m in &self.loaded.markers {
            self.markers.push(MarkerItem { t: m.t_ns, pid: None, file: None, label: m.label.clone(), value: m.value, sidecar: true });
        }
        self.markers.sort_by_key(|m| m.t);
        for l in &self.loaded.output {
            if let Some((category, device, mib)) = logs::parse_buffer_line(&l.line) {
                self.ggml_runner = true;
                if category == Category::Compute {
                    self.last_compute_line = Some(self.last_compute_line.unwrap_or(0).max(l.t_ns));
                }
                self.logs.push(LogLine {
                    b: BufferLine { t_ns: l.t_ns, pid: l.pid, category, device, mib, line: l.line.trim().to_string() },
                    matched: None,
                });
            } else if logs::is_vllm_kv_line(&l.line) {
                self.vllm_arms.push(l.t_ns);
            }
        }
        self.logs.sort_by_key(|l| l.b.t_ns);
        self.vllm_arms.sort();
    }

    fn scope(&mut self, dev: i32) -> usize {
        // Hot path: ordinals -1..=62 and the all-GPUs scope are looked up in a small array.
        let slot = match dev {
            ALL => 0,
            -1..=62 => (dev + 2) as usize,
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

    fn anomaly(&mut self, kind: &'static str, pid: u32, e: Option<&EventRec>, t: u64, detail: String) {
        let entry = self.anomalies.kinds.entry(kind).or_insert((0, Vec::new()));
        entry.0 += 1;
        if entry.1.len() < MAX_EXAMPLES {
            entry.1.push(AnomalyExample {
                pid,
                t_ns: t,
                t_rel_ns: t.saturating_sub(self.start),
                api: e.and_then(|e| Api::from_id(e.api)).map(|a| a.name().to_string()).unwrap_or_default(),
                ptr: e.map_or(0, |e| e.ptr),
                handle: e.map_or(0, |e| e.handle),
                size: e.map_or(0, |e| e.size),
                detail,
            });
        }
    }

    /// The scopes a change on `dev` lands in: the device and the all-GPUs aggregate — or the
    /// device alone when the traces use one GPU only (the aggregate is then that device).
    fn targets(&self, dev: i32) -> [Option<i32>; 2] {
        if dev == HOST {
            [Some(HOST), None]
        } else if self.single_gpu {
            [Some(dev), None]
        } else {
            [Some(dev), Some(ALL)]
        }
    }

    /// Applies `d` bytes of `cat` to device `dev` (and the all-GPUs aggregate), process `pi`.
    fn change(&mut self, pi: usize, dev: i32, cat: Category, origin: u32, d: i64) {
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
    fn touch(&mut self, dev: i32) {
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

    fn after_event(&mut self) {
        let t = self.now;
        let window = self.opts.oom_window_ns;
        for k in 0..self.touched.len() {
            let s = &mut self.scopes[self.touched[k]];
            s.touched = false;
            s.after(t, self.hist_step, window);
        }
        self.touched.clear();
    }

    // -----------------------------------------------------------------------------------------
    // The merged stream

    pub(crate) fn run(mut self) -> Report {
        let loaded = self.loaded;
        let mut sources: Vec<FileSource> = loaded
            .traces
            .iter()
            .enumerate()
            .map(|(fi, tf)| FileSource {
                fi,
                iter: tf.events(),
                events_done: false,
                end_t: tf.end_ns.unwrap_or(0).max(tf.last_ns),
                end_sent: false,
            })
            .collect();
        let nfiles = sources.len();
        let nmarkers = self.markers.len();
        let mut marker_pos = 0usize;
        let mut heads: Vec<Option<Item>> = Vec::with_capacity(nfiles + 1);
        let next_of = |s: &mut FileSource| -> Option<Item> {
            if !s.events_done {
                if let Some(e) = s.iter.next() {
                    return Some(Item::Event(s.fi, e));
                }
                s.events_done = true;
            }
            if !s.end_sent {
                s.end_sent = true;
                return Some(Item::End(s.fi, s.end_t));
            }
            None
        };
        for s in sources.iter_mut() {
            heads.push(next_of(s));
        }
        let marker_key = |this: &Self, i: usize| (this.markers[i].t, 2u8);
        heads.push((nmarkers > 0).then_some(Item::Marker(0)));
        let key_of = |this: &Self, it: &Item| match it {
            Item::Marker(i) => marker_key(this, *i),
            it => it.key(),
        };
        let mut heap: BinaryHeap<Reverse<(u64, u8, u32)>> = BinaryHeap::new();
        for (i, h) in heads.iter().enumerate() {
            if let Some(it) = h {
                let (t, o) = key_of(&self, it);
                heap.push(Reverse((t, o, i as u32)));
            }
        }
        while let Some(Reverse((_, _, src))) = heap.pop() {
            let src = src as usize;
            while let Some(item) = heads[src].take() {
                self.handle(item);
                let next = if src < nfiles {
                    next_of(&mut sources[src])
                } else {
                    marker_pos += 1;
                    (marker_pos < nmarkers).then_some(Item::Marker(marker_pos))
                };
                let Some(next) = next else { break };
                let (t, o) = key_of(&self, &next);
                heads[src] = Some(next);
                let key = (t, o, src as u32);
                if heap.peek().is_none_or(|Reverse(top)| key <= *top) {
                    continue;
                }
                heap.push(Reverse(key));
                break;
            }
        }
        self.finish()
    }

    fn handle(&mut self, item: Item) {
        match item {
            Item::Event(fi, e) => {
                self.events += 1;
                self.on_event(fi, &e);
                self.after_event();
            }
            Item::End(fi, t) => {
                self.now = self.now.max(t);
                let kind = if self.loaded.traces[fi].end_ns.is_some() { LeakKind::Exit } else { LeakKind::Crash };
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
            Item::Marker(i) => {
                self.now = self.now.max(self.markers[i].t);
                self.on_marker(i);
            }
        }
    }

    fn on_marker(&mut self, i: usize) {
        let m = &self.markers[i];
        let t = self.now;
        if self.marker_reports.len() < MAX_MARKERS {
            self.marker_reports.push(MarkerReport {
                t_ns: m.t,
                t_rel_ns: m.t.saturating_sub(self.start),
                pid: m.pid,
                label: m.label.clone(),
                value: m.value,
                source: if m.sidecar { "sidecar" } else { "trace" }.into(),
            });
        } else {
            self.markers_dropped += 1;
        }
        if GROWTH_LABELS.contains(&m.label.as_str()) {
            let tokens = m.value;
            if self.growth_start.take().is_some() {
                // step_start … tokens: the marker closes the step it names.
                self.close_growth(t, tokens);
            } else {
                // A tokens marker alone announces the step that follows it (how a runner marks
                // a batch before decoding it); it runs until the next growth marker.
                if let Some((t0, tok)) = self.growth_open.take() {
                    self.close_growth(t0, tok);
                }
                self.growth_open = Some((t, tokens));
                self.open_growth();
            }
        } else if m.label == STEP_FAILED_LABEL {
            if self.growth_start.take().is_some() {
                let tokens = m.value;
                for s in self.scopes.iter_mut().filter(|s| s.dev != HOST && s.dev != ALL) {
                    if s.interval_failed {
                        if let Some(o) = s.growth_oom.as_mut().filter(|o| o.awaiting_close) {
                            o.step = Some(tokens);
                            o.awaiting_close = false;
                        }
                    }
                    s.interval_failed = false;
                }
            }
        } else if STEP_START_LABELS.contains(&m.label.as_str()) {
            if let Some((t0, tok)) = self.growth_open.take() {
                self.close_growth(t0, tok);
            }
            self.growth_start = Some(t);
            self.open_growth();
        } else if let Some(name) = m.label.strip_prefix("phase:") {
            if let Some(c) = Category::from_name(name) {
                let open = m.value != 0;
                let phases = match m.file {
                    Some(fi) => &mut self.procs[fi].phases,
                    None => &mut self.global_phases,
                };
                if open {
                    phases.push(c);
                } else if let Some(pos) = phases.iter().rposition(|&x| x == c) {
                    phases.remove(pos);
                }
            }
        }
    }

    fn open_growth(&mut self) {
        for s in self.scopes.iter_mut().filter(|s| s.dev != HOST && s.dev != ALL) {
            s.interval = (s.total, s.cat);
            s.interval_failed = false;
        }
    }

    /// Ends a growth step: each GPU gets a sample (its peak during the step) unless an
    /// allocation failed for lack of memory during it.
    fn close_growth(&mut self, t: u64, tokens: i64) {
        let mut any_failed = false;
        for s in self.scopes.iter_mut().filter(|s| s.dev != HOST && s.dev != ALL) {
            if s.interval_failed {
                any_failed = true;
                if let Some(o) = s.growth_oom.as_mut().filter(|o| o.awaiting_close) {
                    o.step = Some(tokens);
                    o.awaiting_close = false;
                }
            } else {
                s.growth.push((t, tokens, s.interval.0, s.interval.1));
            }
            s.interval_failed = false;
        }
        if !any_failed {
            self.last_done_tokens = Some(tokens);
        }
    }

    fn stack_attr(&self, fi: usize, stack_id: u32) -> StackAttr {
        if stack_id == 0 {
            return self.no_stack;
        }
        self.stacks[fi].get(&stack_id).copied().unwrap_or(self.no_stack)
    }

    /// Fallbacks for allocations whose stack did not decide (or only said "some framework's
    /// cache"): phase markers, vLLM's KV window, runner log lines, ggml heuristics.
    fn refine(&mut self, fi: usize, e: &EventRec, kind: ApiKind, sa: StackAttr, dev: i32) -> (u32, Category) {
        let t = e.t_ns;
        if matches!(sa.category, Category::Unknown | Category::FrameworkCache) && dev != HOST {
            if let Some(&c) = self.procs[fi].phases.last().or(self.global_phases.last()) {
                let o = self.intern.origin(sa.site, &format!("phase:{c}"), RuleSource::Phase, c, None);
                return (o, c);
            }
            while self.vllm_next < self.vllm_arms.len() && self.vllm_arms[self.vllm_next] <= t {
                self.vllm = Some((self.vllm_arms[self.vllm_next], None));
                self.vllm_next += 1;
            }
            if let Some((armed_at, size)) = self.vllm {
                if t > armed_at.saturating_add(VLLM_WINDOW_NS) {
                    self.vllm = None;
                } else if e.size >= MIB {
                    if size.is_none_or(|s| s == e.size) {
                        self.vllm = Some((armed_at, Some(e.size)));
                        let o = self.intern.origin(sa.site, "heuristic:vllm_kv_after_log", RuleSource::Heuristic, Category::KvCache, None);
                        return (o, Category::KvCache);
                    }
                    self.vllm = None;
                }
            }
        }
        if sa.category != Category::Unknown || dev == HOST {
            return (sa.origin, sa.category);
        }
        if !self.logs.is_empty() {
            while self.log_lo < self.logs.len() && self.logs[self.log_lo].b.t_ns.saturating_add(LOG_AFTER_NS) < t {
                self.log_lo += 1;
            }
            let mut j = self.log_lo;
            while j < self.logs.len() && self.logs[j].b.t_ns <= t.saturating_add(LOG_BEFORE_NS) {
                let l = &self.logs[j];
                let (lo, hi) = l.b.byte_range();
                if l.matched.is_none() && l.b.device.is_none_or(|d| d == dev) && (lo..=hi).contains(&e.size) {
                    let c = l.b.category;
                    let rule = format!("log:{}", l.b.kind());
                    self.logs[j].matched = Some(LogAlloc { t_ns: t, pid: self.procs[fi].pid, device: dev, size_bytes: e.size, site: sa.site as usize });
                    let o = self.intern.origin(sa.site, &rule, RuleSource::Log, c, Some(self.logs[j].b.line.clone()));
                    return (o, c);
                }
                j += 1;
            }
        }
        if self.ggml_runner {
            // Size fingerprint: ggml creates one cuBLAS handle per device, whose workspace is
            // 4 MiB (32 MiB on Hopper) — sizes ggml's own pools practically never produce.
            if kind != ApiKind::Create && (e.size == 4 * MIB || e.size == 32 * MIB) && !self.procs[fi].workspace_seen.contains(&dev) {
                self.procs[fi].workspace_seen.push(dev);
                let o = self.intern.origin(sa.site, "heuristic:cublas_workspace_size", RuleSource::Heuristic, Category::Workspace, None);
                return (o, Category::Workspace);
            }
            if kind == ApiKind::Create {
                let o = self.intern.origin(sa.site, "heuristic:ggml_vmm_pool", RuleSource::Heuristic, Category::ScratchPool, None);
                return (o, Category::ScratchPool);
            }
            if self.last_compute_line.is_some_and(|lc| t > lc) {
                let o = self.intern.origin(sa.site, "heuristic:ggml_after_setup", RuleSource::Heuristic, Category::ScratchPool, None);
                return (o, Category::ScratchPool);
            }
        }
        (sa.origin, sa.category)
    }

    fn on_event(&mut self, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        let Some(api) = Api::from_id(e.api) else { return };
        if e.t_ns < self.procs[fi].last_t {
            let prev = self.procs[fi].last_t;
            self.anomaly("out_of_order", pid, Some(e), e.t_ns, format!("event time is {} ns before the previous event of this process", prev - e.t_ns));
        } else {
            self.procs[fi].last_t = e.t_ns;
        }
        self.now = self.now.max(e.t_ns);
        if self.procs[fi].ended {
            self.anomaly("event_after_exit", pid, Some(e), e.t_ns, "event after the process's End record".into());
            return;
        }
        if e.result != 0 {
            self.on_failure(fi, api, e);
            return;
        }
        let kind = api.kind();
        let sized = !matches!(
            kind,
            ApiKind::Free | ApiKind::FreeAsync | ApiKind::HostFree | ApiKind::Release | ApiKind::GetInfo | ApiKind::PoolTrim | ApiKind::CtxCreate | ApiKind::CtxDestroy | ApiKind::CtxRelease
        );
        if sized && e.size > MAX_PLAUSIBLE {
            self.anomaly("implausible_size", pid, Some(e), e.t_ns, "size beyond any device; event ignored".into());
            return;
        }
        match kind {
            ApiKind::Alloc | ApiKind::AllocManaged | ApiKind::AllocAsync | ApiKind::HostAlloc | ApiKind::HostRegister => {
                self.on_alloc(fi, api, kind, e)
            }
            ApiKind::Free | ApiKind::FreeAsync | ApiKind::HostFree => self.on_free(fi, kind, e),
            ApiKind::AddressReserve => self.on_reserve(fi, e),
            ApiKind::AddressFree => self.on_address_free(fi, e),
            ApiKind::Create => self.on_create(fi, e),
            ApiKind::Release => self.on_release(fi, e),
            ApiKind::Map => self.on_map(fi, e),
            ApiKind::Unmap => self.on_unmap(fi, e),
            ApiKind::SetAccess | ApiKind::GetInfo => {}
            ApiKind::PoolTrim => self.on_trim(fi, e),
            ApiKind::CtxCreate => {
                let p = &mut self.procs[fi];
                *p.ctx_count.entry(e.device).or_insert(0) += 1;
                if e.handle != 0 && api != Api::DevicePrimaryCtxRetain {
                    p.ctx_dev.insert(e.handle, e.device);
                }
            }
            ApiKind::CtxDestroy => {
                let dev = self.procs[fi].ctx_dev.remove(&e.handle).unwrap_or(e.device);
                self.ctx_down(fi, dev, false);
            }
            ApiKind::CtxRelease => self.ctx_down(fi, e.device, api == Api::DevicePrimaryCtxReset),
        }
        // Driver readings: cuMemGetInfo's answer, and the baseline the shim takes when a
        // context is created (docs/trace-format.md).
        if e.total > 0 && !matches!(kind, ApiKind::HostAlloc | ApiKind::HostRegister | ApiKind::HostFree) {
            self.on_reading(fi, e.device, e.free, e.total);
        }
    }

    fn ctx_down(&mut self, fi: usize, dev: i32, reset: bool) {
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

    fn on_alloc(&mut self, fi: usize, api: Api, kind: ApiKind, e: &EventRec) {
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
        let sa = self.stack_attr(fi, e.stack_id);
        let (origin, cat) = if host {
            let o = self.intern.origin(sa.site, "builtin:pinned_host_api", RuleSource::Builtin, Category::HostPinned, Some(api.name().into()));
            (o, Category::HostPinned)
        } else {
            self.refine(fi, e, kind, sa, dev)
        };
        let akind = match kind {
            ApiKind::AllocAsync => AllocKind::Async(e.handle),
            _ if host => AllocKind::Host,
            _ => AllocKind::Device,
        };
        if let AllocKind::Async(pool) = akind {
            // Memory the pool kept from earlier frees is reused before the pool grows.
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
                let reuse = p.retained.min(e.size);
                p.retained -= reuse;
                p.used = p.used.saturating_add(e.size);
                p.peak_used = p.peak_used.max(p.used);
                p.peak_reserved = p.peak_reserved.max(p.used.saturating_add(p.retained));
                (reuse, p.retained_origin, p.retained_cat)
            };
            if reuse > 0 {
                self.change(fi, dev, rc, ro, -(reuse as i64));
                self.pool_retained_delta(dev, -(reuse as i64));
            }
        }
        {
            let o = &mut self.intern.origins[origin as usize];
            o.allocs += 1;
            o.bytes = o.bytes.saturating_add(e.size);
        }
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

    fn pool_retained_delta(&mut self, dev: i32, d: i64) {
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            add(&mut self.scopes[si].pool_retained, d);
        }
    }

    /// Removes a live allocation; `to_pool` sends stream-ordered memory back to its pool.
    fn free_ptr(&mut self, fi: usize, ptr: u64, to_pool: bool) -> Option<()> {
        let a = self.procs[fi].allocs.remove(&ptr)?;
        self.free_alloc(fi, ptr, a, to_pool)
    }

    /// Accounts for an allocation already removed from the live map.
    fn free_alloc(&mut self, fi: usize, ptr: u64, a: Alloc, to_pool: bool) -> Option<()> {
        self.change(fi, a.dev, a.cat, a.origin, -(a.size as i64));
        if a.kind != AllocKind::Host {
            self.spans.entry(a.dev).or_default().push(a.size, ptr, a.t, self.now, a.cat, false);
        }
        match a.kind {
            AllocKind::Device => self.waste_delta(a.dev, -(rounding_waste(a.size) as i64)),
            AllocKind::Async(pool) => {
                let key = (a.dev, pool);
                let Some(p) = self.procs[fi].pools.get_mut(&key) else { return Some(()) };
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
            }
            AllocKind::Host => {}
        }
        let p = &mut self.procs[fi];
        if p.freed.len() >= FREED_MEMORY {
            p.freed.clear(); // bounded memory: a double free of an older pointer reads as unknown
        }
        p.freed.insert(ptr, ());
        Some(())
    }

    fn on_free(&mut self, fi: usize, kind: ApiKind, e: &EventRec) {
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
            Some(a) => {
                self.free_alloc(fi, e.ptr, a, true);
            }
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

    fn on_reserve(&mut self, fi: usize, e: &EventRec) {
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

    fn drop_reserve(&mut self, fi: usize, start: u64) {
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

    fn on_address_free(&mut self, fi: usize, e: &EventRec) {
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

    fn on_create(&mut self, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        if self.procs[fi].handles.contains_key(&e.handle) {
            self.anomaly("handle_over_live", pid, Some(e), e.t_ns, "handle returned again while alive; the earlier one is dropped".into());
            if let Some(h) = self.procs[fi].handles.remove(&e.handle) {
                self.change(fi, h.dev, h.cat, h.origin, -(h.size as i64));
            }
        }
        let sa = self.stack_attr(fi, e.stack_id);
        let (origin, cat) = self.refine(fi, e, ApiKind::Create, sa, e.device);
        {
            let o = &mut self.intern.origins[origin as usize];
            o.allocs += 1;
            o.bytes = o.bytes.saturating_add(e.size);
        }
        self.procs[fi].handles.insert(e.handle, Handle { size: e.size, dev: e.device, origin, cat, maps: 0, released: false });
        self.change(fi, e.device, cat, origin, e.size as i64);
    }

    fn on_release(&mut self, fi: usize, e: &EventRec) {
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

    fn on_map(&mut self, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        let (va, size) = (e.ptr, e.size.min(u64::MAX - e.ptr));
        if size == 0 {
            return;
        }
        if !self.procs[fi].handles.contains_key(&e.handle) {
            self.anomaly("map_unknown_handle", pid, Some(e), e.t_ns, "handle created before the trace started; its size is taken from the mapping".into());
            let sa = self.stack_attr(fi, e.stack_id);
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
            let old = Self::reserve_figures(r);
            self.reserve_acct(old.0, old.1, old.2, old.3, false);
            let r = self.procs[fi].reserves.get_mut(&rstart).unwrap();
            if r.dev < 0 && dev >= 0 {
                r.dev = dev; // reserved without a device context: it belongs where it is mapped
            }
            r.del_hole(next_start.saturating_sub(prev_end));
            r.add_hole(va.saturating_sub(prev_end));
            r.add_hole(next_start.saturating_sub(end));
            r.mapped = r.mapped.saturating_add(end - va);
            let new = Self::reserve_figures(r);
            self.reserve_acct(new.0, new.1, new.2, new.3, true);
        }
        self.procs[fi].maps.insert(va, Mapping { size, handle: e.handle, t: e.t_ns, reserve: rs });
        self.touch(dev);
        for dv in self.targets(dev).into_iter().flatten() {
            let si = self.scope(dv);
            self.scopes[si].vmm_mapped = self.scopes[si].vmm_mapped.saturating_add(size);
        }
    }

    fn on_unmap(&mut self, fi: usize, e: &EventRec) {
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

    fn unmap_one(&mut self, fi: usize, k: u64) {
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
                let old = Self::reserve_figures(r);
                self.reserve_acct(old.0, old.1, old.2, old.3, false);
                let r = self.procs[fi].reserves.get_mut(&rstart).unwrap();
                r.del_hole(k.saturating_sub(prev_end));
                r.del_hole(next_start.saturating_sub(end));
                r.add_hole(next_start.saturating_sub(prev_end));
                r.mapped = r.mapped.saturating_sub(end.saturating_sub(k));
                let new = Self::reserve_figures(r);
                self.reserve_acct(new.0, new.1, new.2, new.3, true);
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

    fn on_trim(&mut self, fi: usize, e: &EventRec) {
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

    /// A driver reading (cuMemGetInfo, or free/total recorded with a failed call).
    fn on_reading(&mut self, fi: usize, dev: i32, free: u64, total: u64) {
        if total == 0 || total > MAX_PLAUSIBLE || free > total {
            return;
        }
        let t = self.now;
        let pid = self.procs[fi].pid;
        let si = self.scope(dev);
        let used = total.saturating_sub(free);
        let (traced, old_rt) = {
            let s = &mut self.scopes[si];
            if s.capacity_source != "option" {
                s.capacity = Some(s.capacity.unwrap_or(0).max(total));
                s.capacity_source = "cuMemGetInfo";
            }
            let rt = s.cat[Category::Runtime.index()];
            (s.total.saturating_sub(rt), rt)
        };
        let runtime = used.saturating_sub(traced);
        {
            let start = self.start;
            let s = &mut self.scopes[si];
            let r = &mut s.rec;
            r.readings += 1;
            r.last = runtime;
            r.min = r.min.min(runtime);
            r.max = r.max.max(runtime);
            if traced > used {
                r.exceeds += 1;
            }
            if (r.readings - 1).is_multiple_of(r.stride) {
                r.samples.push(RecSample {
                    t_ns: t,
                    t_rel_ns: t.saturating_sub(start),
                    pid,
                    free_bytes: free,
                    total_bytes: total,
                    used_bytes: used,
                    traced_bytes: traced,
                    runtime_bytes: runtime,
                });
                if r.samples.len() >= MAX_REC_SAMPLES {
                    // Keep every other sample and halve the rate from now on.
                    let mut i = 0;
                    r.samples.retain(|_| {
                        i += 1;
                        i % 2 == 1
                    });
                    r.stride *= 2;
                }
            }
        }
        self.change(usize::MAX, dev, Category::Runtime, NONE, runtime as i64 - old_rt as i64);
    }

    fn on_failure(&mut self, fi: usize, api: Api, e: &EventRec) {
        let kind = api.kind();
        if e.total > 0 && kind != ApiKind::HostAlloc && kind != ApiKind::HostRegister {
            self.on_reading(fi, e.device, e.free, e.total);
        }
        if !api.allocates() {
            return;
        }
        let pid = self.procs[fi].pid;
        if kind == ApiKind::AddressReserve {
            self.anomaly("failed_address_reserve", pid, Some(e), e.t_ns, format!("CUresult {}", e.result));
            return;
        }
        let t = self.now;
        let host = matches!(kind, ApiKind::HostAlloc | ApiKind::HostRegister);
        let dev = if host { HOST } else { e.device };
        let sa = self.stack_attr(fi, e.stack_id);
        let (cat_try, rule) = {
            let o = &self.intern.origins[sa.origin as usize];
            (o.category, o.rule.clone())
        };
        let si = self.scope(dev);
        let s = &mut self.scopes[si];
        if e.result == cu::ERROR_OUT_OF_MEMORY && !host {
            s.interval_failed = true;
            if s.growth_oom.is_none() {
                s.growth_oom = Some(GrowthOomState {
                    t,
                    step: self.growth_open.map(|g| g.1),
                    last_done: self.last_done_tokens,
                    awaiting_close: self.growth_start.is_some(),
                });
            }
        }
        let cats = s.cat;
        let traced = s.total.saturating_sub(cats[Category::Runtime.index()]);
        // Composition at the start of the window: the oldest snapshot not older than it.
        let window = self.opts.oom_window_ns;
        let base = s.hist.iter().rev().find(|h| h.0.saturating_add(window) <= t).or(s.hist.front()).map(|h| (h.0, h.1));
        let grew_most = base.and_then(|(bt, b)| {
            Category::ALL
                .iter()
                .map(|&c| (c, cats[c.index()].saturating_sub(b[c.index()])))
                .filter(|&(_, g)| g > 0)
                .max_by_key(|&(_, g)| g)
                .map(|(category, bytes)| GrewMost { category, bytes, window_ns: t.saturating_sub(bt) })
        });
        let (free, total, free_source) = if e.total > 0 {
            (Some(e.free), Some(e.total), "driver")
        } else if let (Some(cap), false) = (s.capacity, host) {
            (Some(cap.saturating_sub(s.total)), Some(cap), "estimated")
        } else {
            (None, None, "unknown")
        };
        let retained: u64 = self.procs[fi].pools.iter().filter(|(k, _)| k.0 == dev).map(|(_, p)| p.retained).sum();
        let fw = self.procs[fi].cat[Category::FrameworkCache.index()];
        let need = e.size;
        let gib = |b: u64| crate::fmt_bytes(b);
        let (verdict, reason) = if e.result != cu::ERROR_OUT_OF_MEMORY {
            (Verdict::NotOutOfMemory, format!("{} failed with CUresult {}, not cu::ERROR_OUT_OF_MEMORY", api.name(), e.result))
        } else if host {
            (Verdict::Exhausted, format!("pinned host allocation of {} failed: host memory that can be pinned is exhausted", gib(need)))
        } else {
            match free {
                Some(f) if f >= need => (
                    Verdict::PoolOrFragmentation,
                    format!("driver reported {} free >= {} requested: the free memory is not usable in one piece (fragmentation or allocation granularity)", gib(f), gib(need)),
                ),
                Some(f) if f.saturating_add(retained) >= need => (
                    Verdict::PoolOrFragmentation,
                    format!("{} free + {} freed but retained by stream-ordered pools >= {} requested: the pools held the memory (trim them or lower their release threshold)", gib(f), gib(retained), gib(need)),
                ),
                Some(f) => (
                    Verdict::Exhausted,
                    format!(
                        "{} free + {} retained by pools < {} requested (short by {}): the device was full ({} traced, {} runtime{})",
                        gib(f),
                        gib(retained),
                        gib(need),
                        gib(need - f.saturating_add(retained)),
                        gib(traced),
                        gib(cats[Category::Runtime.index()]),
                        grew_most.as_ref().map(|g| format!("; {} grew by {} in the last {:.1} s", g.category, gib(g.bytes), g.window_ns as f64 / 1e9)).unwrap_or_default()
                    ),
                ),
                None if retained >= need => (
                    Verdict::PoolOrFragmentation,
                    format!("{} retained by stream-ordered pools >= {} requested (driver free memory unknown)", gib(retained), gib(need)),
                ),
                None => (
                    Verdict::Exhausted,
                    format!("driver free memory unknown; {} retained by pools < {} requested, {} traced on the device", gib(retained), gib(need), gib(traced)),
                ),
            }
        };
        self.ooms.push(Oom {
            t_ns: t,
            t_rel_ns: t.saturating_sub(self.start),
            pid,
            device: if host { -1 } else { dev },
            api: api.name().to_string(),
            result: e.result,
            requested_bytes: need,
            driver_free_bytes: free,
            driver_total_bytes: total,
            free_source: free_source.into(),
            by_category: Categories::from_array(&cats),
            traced_bytes: traced,
            pool_retained_bytes: retained,
            framework_cache_bytes: fw,
            grew_most,
            verdict,
            reason,
            site: (sa.site != self.no_stack.site).then_some(sa.site as usize),
            category: cat_try,
            rule,
        });
    }

    /// Drops everything a process holds (on `dev` only, or everywhere), recording what the
    /// program never freed as leaks of `kind`.
    fn release_process(&mut self, fi: usize, dev: Option<i32>, kind: LeakKind) {
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
        let mut maps: Vec<u64> = self
            .procs[fi]
            .maps
            .iter()
            .filter(|(_, m)| self.procs[fi].handles.get(&m.handle).is_none_or(|h| on(h.dev)))
            .map(|(&k, _)| k)
            .collect();
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
        let mut res: Vec<u64> = self.procs[fi].reserves.iter().filter(|(_, r)| on(r.dev) || r.dev < 0).map(|(&k, _)| k).collect();
        res.sort_unstable();
        for k in res {
            self.drop_reserve(fi, k);
        }
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

    fn leak(&mut self, pid: u32, dev: i32, kind: LeakKind, origin: u32, bytes: u64) {
        let e = self.leaks.entry((pid, dev, kind, origin)).or_insert((0, 0));
        e.0 = e.0.saturating_add(bytes);
        e.1 += 1;
        let o = &mut self.intern.origins[origin as usize];
        o.leaked = o.leaked.saturating_add(bytes);
    }

    // -----------------------------------------------------------------------------------------
    // Results

    fn rel(&self, t: u64) -> u64 {
        t.saturating_sub(self.start)
    }

    fn tl_point(&self, p: &Point) -> TimelinePoint {
        TimelinePoint {
            t_ns: p.t,
            t_rel_ns: self.rel(p.t),
            total_bytes: p.total,
            by_category: Categories::from_array(&p.cat),
            vmm_reserved_bytes: p.vmm_reserved,
            vmm_mapped_bytes: p.vmm_mapped,
            pool_retained_bytes: p.pool_retained,
            bfc: p.bfc,
        }
    }

    fn peak_report(&self, si: usize) -> Peak {
        let s = &self.scopes[si];
        let pk = &s.peak;
        let mut top: Vec<SiteBytes> = pk
            .snap_origins
            .iter()
            .enumerate()
            .filter(|(_, &b)| b > 0)
            .map(|(o, &b)| {
                let oi = &self.intern.origins[o];
                SiteBytes { site: oi.site as usize, rule: oi.rule.clone(), category: oi.category, bytes: b }
            })
            .collect();
        top.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.site.cmp(&b.site)));
        top.truncate(self.opts.top_sites);
        let by_process = pk
            .snap_procs
            .iter()
            .enumerate()
            .filter(|(_, &b)| b > 0)
            .map(|(p, &b)| PidBytes { pid: self.procs[p].pid, bytes: b })
            .collect();
        Peak {
            t_ns: pk.p.t,
            t_rel_ns: self.rel(pk.p.t),
            total_bytes: pk.p.total,
            by_category: Categories::from_array(&pk.p.cat),
            top_sites: top,
            by_process,
            vmm_reserved_bytes: pk.p.vmm_reserved,
            vmm_mapped_bytes: pk.p.vmm_mapped,
            pool_retained_bytes: pk.p.pool_retained,
            rounding_waste_bytes: pk.waste,
        }
    }

    fn finish(mut self) -> Report {
        if let Some((t0, tok)) = self.growth_open.take() {
            self.close_growth(t0, tok);
        }
        // Whatever is still allocated or mapped ends with the trace (end = u64::MAX: open).
        for p in &self.procs {
            for (&ptr, a) in p.allocs.iter().filter(|(_, a)| a.kind != AllocKind::Host) {
                self.spans.entry(a.dev).or_default().push(a.size, ptr, a.t, u64::MAX, a.cat, false);
            }
            for (&va, m) in &p.maps {
                if let Some(h) = p.handles.get(&m.handle) {
                    self.spans.entry(h.dev).or_default().push(m.size, va, m.t, u64::MAX, h.cat, true);
                }
            }
        }
        // Settle what is still pending.
        for si in 0..self.scopes.len() {
            let t = self.end.max(self.now);
            let s = &mut self.scopes[si];
            if s.peak.journaling {
                s.materialize();
            }
            let p = s.point(t);
            s.tl.flush(&p);
            if s.tl.out.last().is_some_and(|q| q.t < t) {
                s.tl.out.push(p);
            }
        }
        let mut devices = Vec::new();
        let mut gpu_ix: Vec<(i32, usize)> = self.scope_ix.iter().filter(|(&d, _)| d != HOST && d != ALL).map(|(&d, &i)| (d, i)).collect();
        gpu_ix.sort();
        for &(dev, si) in &gpu_ix {
            devices.push(self.device_report(dev, si));
        }
        let mut extra_warnings = Vec::new();
        let all = if !self.single_gpu {
            self.scope_ix[&ALL]
        } else {
            match gpu_ix.as_slice() {
                [] => self.scope_ix[&ALL],
                [(_, i)] => *i,
                many => {
                    // Cannot happen when the scan saw every device; stay useful if it does.
                    extra_warnings.push("overall peak approximated by the largest device peak (device set changed during analysis)".to_string());
                    many.iter().map(|&(_, i)| i).max_by_key(|&i| self.scopes[i].peak.p.total).unwrap()
                }
            }
        };
        let peak = self.peak_report(all);
        let overall_snap = self.scopes[all].peak.snap_origins.clone();
        let host = match self.scope_ix.get(&HOST) {
            Some(&hi) => {
                let s = &self.scopes[hi];
                HostReport {
                    peak_bytes: s.peak.p.total,
                    peak_t_ns: s.peak.p.t,
                    peak_t_rel_ns: self.rel(s.peak.p.t),
                    by_process: s.proc_peak.iter().enumerate().filter(|(_, &b)| b > 0).map(|(p, &b)| PidBytes { pid: self.procs[p].pid, bytes: b }).collect(),
                    timeline: s.tl.out.iter().map(|p| self.tl_point(p)).collect(),
                }
            }
            None => HostReport::default(),
        };
        let processes = self
            .loaded
            .traces
            .iter()
            .zip(&self.procs)
            .map(|(tf, p)| process_report(tf, p, self.start))
            .collect();
        let sites = self.intern.sites.iter().enumerate().map(|(i, s)| Site { id: i, key: s.key.clone(), frames: s.frames.clone() }).collect();
        let mut attribution: Vec<AttributionRow> = self
            .intern
            .origins
            .iter()
            .enumerate()
            .filter(|(_, o)| o.allocs > 0 || o.max_live > 0)
            .map(|(i, o)| AttributionRow {
                site: o.site as usize,
                rule: o.rule.clone(),
                source: o.source,
                category: o.category,
                frame: o.frame.clone(),
                allocations: o.allocs,
                bytes_allocated: o.bytes,
                max_live_bytes: o.max_live,
                bytes_at_peak: overall_snap.get(i).copied().unwrap_or(0),
                bytes_leaked: o.leaked,
            })
            .collect();
        attribution.sort_by(|a, b| b.max_live_bytes.cmp(&a.max_live_bytes).then(a.site.cmp(&b.site)).then(a.rule.cmp(&b.rule)));
        let mut rules: BTreeMap<String, RuleUse> = BTreeMap::new();
        for a in &attribution {
            let r = rules.entry(a.rule.clone()).or_insert(RuleUse {
                rule: a.rule.clone(),
                source: a.source,
                category: a.category,
                allocations: 0,
                bytes_allocated: 0,
                bytes_at_peak: 0,
            });
            r.allocations += a.allocations;
            r.bytes_allocated = r.bytes_allocated.saturating_add(a.bytes_allocated);
            r.bytes_at_peak = r.bytes_at_peak.saturating_add(a.bytes_at_peak);
        }
        let mut rules: Vec<RuleUse> = rules.into_values().collect();
        rules.sort_by(|a, b| b.bytes_allocated.cmp(&a.bytes_allocated).then(a.rule.cmp(&b.rule)));
        let mut leaks: Vec<Leak> = self
            .leaks
            .iter()
            .map(|(&(pid, dev, kind, origin), &(bytes, allocations))| {
                let o = &self.intern.origins[origin as usize];
                Leak { pid, device: (dev != HOST).then_some(dev), kind, site: o.site as usize, rule: o.rule.clone(), category: o.category, bytes, allocations }
            })
            .collect();
        leaks.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.pid.cmp(&b.pid)).then(a.site.cmp(&b.site)));
        let anomalies = self
            .anomalies
            .kinds
            .iter()
            .map(|(k, (count, ex))| Anomaly { kind: (*k).to_string(), count: *count, examples: ex.clone() })
            .collect();
        let growth = gpu_ix.iter().filter_map(|&(dev, si)| self.growth_report(dev, si)).collect();
        let log_lines = self
            .logs
            .iter()
            .map(|l| LogMatch {
                t_ns: l.b.t_ns,
                t_rel_ns: self.rel(l.b.t_ns),
                pid: l.b.pid,
                line: l.b.line.clone(),
                category: l.b.category,
                device: l.b.device,
                logged_bytes: (l.b.mib * 1048576.0).round() as u64,
                matched: l.matched.clone(),
            })
            .collect();
        let mut warnings = self.loaded.warnings.clone();
        warnings.extend(self.loaded.symbols.warnings.iter().cloned());
        warnings.extend(extra_warnings);
        Report {
            schema_version: SCHEMA_VERSION,
            vramtrace_version: env!("CARGO_PKG_VERSION").to_string(),
            trace_start_ns: self.start,
            trace_end_ns: self.end.max(self.now),
            duration_ns: self.end.max(self.now) - self.start,
            events: self.events,
            processes,
            devices,
            peak,
            host,
            sites,
            attribution,
            rules,
            ooms: std::mem::take(&mut self.ooms),
            leaks,
            anomalies,
            markers: std::mem::take(&mut self.marker_reports),
            markers_dropped: self.markers_dropped,
            growth,
            log_lines,
            warnings,
            summary: Summary::default(),
        }
    }

    fn device_report(&self, dev: i32, si: usize) -> DeviceReport {
        let s = &self.scopes[si];
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
        let peak = self.peak_report(si);
        let gpu = self.loaded.traces.iter().flat_map(|t| &t.gpus).find(|g| g.ordinal == dev);
        let (capacity, capacity_source) = match (s.capacity, gpu) {
            (None, Some(g)) if g.total_bytes > 0 => (Some(g.total_bytes), "cuDeviceTotalMem"),
            _ => (s.capacity, s.capacity_source),
        };
        let address_map = self.spans.get(&dev).map(|set| {
            let mut spans: Vec<AddressSpan> = set
                .heap
                .iter()
                .map(|std::cmp::Reverse((size, ptr, start, end, cat, vmm))| AddressSpan {
                    ptr: *ptr,
                    size: *size,
                    start_rel_ns: self.rel(*start),
                    end_rel_ns: (*end != u64::MAX).then(|| self.rel(*end)),
                    category: Category::ALL[*cat as usize],
                    vmm: *vmm,
                })
                .collect();
            spans.sort_by_key(|s| (s.start_rel_ns, s.ptr));
            AddressMap { spans, dropped: set.dropped }
        });
        DeviceReport {
            device: dev,
            address_map: address_map.unwrap_or_default(),
            name: gpu.map(|g| g.name.clone()).filter(|n| !n.is_empty()),
            driver_version: gpu.filter(|g| g.driver_version > 0).map(|g| format!("{}.{}", g.driver_version / 1000, g.driver_version % 1000 / 10)),
            uuid: gpu.filter(|g| g.uuid != [0; 16]).map(|g| {
                let h: String = g.uuid.iter().map(|b| format!("{b:02x}")).collect();
                format!("GPU-{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
            }),
            capacity_bytes: capacity,
            capacity_source: capacity_source.into(),
            fragmentation: Fragmentation {
                vmm_reserved_peak_bytes: s.vmm_reserved_peak,
                vmm_mapped_peak_bytes: s.vmm_mapped_peak,
                pool_retained_peak_bytes: s.pool_retained_peak.0,
                pool_retained_peak_t_ns: s.pool_retained_peak.1,
                bfc_max: s.bfc_max.0,
                bfc_max_t_ns: s.bfc_max.1,
                bfc_at_peak: s.peak.p.bfc,
                rounding_waste_at_peak_bytes: s.peak.waste,
                pools,
            },
            reconciliation: Reconciliation {
                readings: s.rec.readings,
                samples: s.rec.samples.clone(),
                runtime_last_bytes: s.rec.last,
                runtime_min_bytes: if s.rec.readings > 0 { s.rec.min } else { 0 },
                runtime_max_bytes: s.rec.max,
                traced_exceeds_used: s.rec.exceeds,
            },
            processes: s
                .proc_peak
                .iter()
                .enumerate()
                .filter(|(_, &b)| b > 0)
                .map(|(p, &b)| ProcessShare { pid: self.procs[p].pid, peak_bytes: b, bytes_at_device_peak: s.peak.snap_procs.get(p).copied().unwrap_or(0) })
                .collect(),
            timeline: s.tl.out.iter().map(|p| self.tl_point(p)).collect(),
            live_at_end: Categories::from_array(&s.cat),
            peak,
        }
    }

    fn growth_report(&self, dev: i32, si: usize) -> Option<GrowthReport> {
        let s = &self.scopes[si];
        if s.growth.is_empty() && s.growth_oom.is_none() {
            return None;
        }
        let mut labels: Vec<String> = self.markers.iter().filter(|m| GROWTH_LABELS.contains(&m.label.as_str())).map(|m| m.label.clone()).collect();
        labels.sort();
        labels.dedup();
        let points: Vec<GrowthPoint> = s
            .growth
            .iter()
            .map(|&(t, tokens, total, cat)| GrowthPoint { t_ns: t, t_rel_ns: self.rel(t), tokens, total_bytes: total, by_category: Categories::from_array(&cat) })
            .collect();
        let xs: Vec<f64> = points.iter().map(|p| p.tokens as f64).collect();
        let mut fits = Vec::new();
        for c in Category::ALL {
            if c == Category::HostPinned || points.iter().all(|p| p.by_category.get(c) == 0) {
                continue;
            }
            let ys: Vec<f64> = points.iter().map(|p| p.by_category.get(c) as f64).collect();
            if let Some(fit) = crate::growth::fit(&xs, &ys) {
                fits.push(CategoryFit { category: c, fit });
            }
        }
        let ys: Vec<f64> = points.iter().map(|p| p.total_bytes as f64).collect();
        let total_fit = crate::growth::fit(&xs, &ys);
        let capacity = self.opts.vram.or(s.capacity);
        let predicted_max_tokens = match (&total_fit, capacity) {
            (Some(f), Some(cap)) => crate::growth::predict_max_tokens(f, cap),
            _ => None,
        };
        let oom = s.growth_oom.as_ref().map(|o| GrowthOom {
            t_ns: o.t,
            t_rel_ns: self.rel(o.t),
            step_tokens: o.step,
            last_completed_tokens: o.last_done,
        });
        Some(GrowthReport {
            device: dev,
            labels,
            points,
            fits,
            total_fit,
            capacity_bytes: capacity,
            predicted_max_tokens,
            runtime_included: s.rec.readings > 0,
            oom,
        })
    }
}

fn process_report(tf: &TraceFile, p: &Proc, start: u64) -> ProcessReport {
    ProcessReport {
        pid: tf.info.pid,
        ppid: tf.info.ppid,
        exe: tf.info.exe.clone(),
        cmdline: tf.info.cmdline.clone(),
        shim_version: tf.info.version.clone(),
        hostname: tf.info.hostname.clone(),
        trace_file: tf.path.display().to_string(),
        start_ns: if tf.info.mono_ns > 0 { tf.info.mono_ns } else { tf.first_ns },
        end_ns: tf.end_ns.unwrap_or(tf.last_ns),
        clean_exit: tf.end_ns.is_some(),
        truncated: tf.truncated,
        events: tf.events,
        stack_depth: tf.info.stack_depth,
        peak_bytes: p.peak_total,
        peak_t_ns: p.peak_t,
        peak_t_rel_ns: p.peak_t.saturating_sub(start),
        peak_by_category: Categories::from_array(&p.peak_cat),
        host_pinned_peak_bytes: p.host_peak,
    }
}
