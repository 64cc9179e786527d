//! The memory model: replays the merged event stream of every traced process and keeps, per
//! device, what is live and why, over time.
//!
//! Pure: events, markers and log lines in; a `Report` out. Nothing here opens a file (the
//! traces are memory maps and symbols were resolved beforehand), so the model can be tested on
//! synthetic traces and re-run with other options. Memory is bounded by the live set (plus a
//! few fixed-size summaries), never by the number of events: peaks keep a journal of changes
//! instead of snapshotting, timelines are downsampled while they are built.
//!
//! Accounting:
//! - `cuMemAddressReserve` is address space only (fragmentation figures, never VRAM);
//! - `cuMemCreate` is physical memory from creation until it is both released and unmapped,
//!   counted once however many times it is mapped; one `cuMemUnmap` may cover many mappings;
//! - stream-ordered frees return memory to the pool, which keeps it (`pool retention`) until it
//!   is reused or trimmed;
//! - pinned host memory lives in a separate `host` scope and never in a VRAM total;
//! - failed calls change nothing; inconsistent calls become anomalies, never panics;
//! - runtime = driver-reported used − traced, refreshed at every driver reading.
//!
//! One `Engine` holds the state; each concern is one file with its own `impl Engine` block:
//! `intern` (call sites and origins), `process` (per-process state), `alloc` (pointer
//! allocations), `vmm` (reservations, handles, mappings), `pool` (stream-ordered pools),
//! `runtime` (driver readings), `failure` (failed calls and OOM verdicts), `steps` (markers,
//! steps and growth), `lifecycle` (context teardown, process end, leaks), `scope` (per-device
//! totals, peaks, timelines), `spans` (the address-space map), `finish` (the `Report`) and
//! `live` (a snapshot while the traces are still written).
//! What an allocation is comes from `crate::attribute`: its stack, else its fallbacks.

mod alloc;
mod failure;
mod finish;
mod intern;
mod lifecycle;
mod live;
mod pool;
mod process;
mod runtime;
mod scope;
mod spans;
mod steps;
mod vmm;

use crate::attribute::fallback::Fallbacks;
use crate::attribute::Category;
use crate::load::Loaded;
use crate::report::*;
use crate::stream::StreamItem;
use crate::Options;
use intern::{Interner, StackTable};
use process::Proc;
use scope::Scope;
use spans::SpanSet;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use steps::Steps;
use vramtrace_trace::record::{valid_device, MAX_DEVICES};
use vramtrace_trace::{Api, ApiKind, EventRec};

const NCAT: usize = Category::COUNT;
type Cats = [u64; NCAT];
/// Scope key of pinned host memory.
const HOST: i32 = i32::MIN;
/// Scope key of the all-GPUs aggregate.
const ALL: i32 = i32::MAX;
const NONE: u32 = u32::MAX;
const MAX_EXAMPLES: usize = 10;
const DEV_SLOTS: usize = MAX_DEVICES as usize + 2;
/// Larger sizes (4 PiB) are corruption or garbage out-params, not memory: such events become
/// anomalies. The cap also keeps every byte delta within i64.
const MAX_PLAUSIBLE: u64 = 1 << 52;

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

#[derive(Default)]
struct Anomalies {
    kinds: BTreeMap<&'static str, (u64, Vec<AnomalyExample>)>,
}

/// The model's state. It reads the traces' descriptions (stacks for attribution, processes
/// and GPUs for the report) from the `Loaded` passed to each call rather than holding one, so
/// a live session can keep feeding it while its traces grow (`live`); the options are borrowed
/// by a batch analysis and owned by a live session.
pub(crate) struct Engine<'a> {
    opts: Cow<'a, Options>,
    start: u64,
    end: u64,
    now: u64,
    events: u64,
    intern: Interner,
    stacks: StackTable,
    fallbacks: Fallbacks,
    procs: Vec<Proc>,
    scopes: Vec<Scope>,
    scope_ix: FastMap<i32, usize>,
    /// Scope of each device ordinal -1..MAX_DEVICES, at index ordinal + 2; index 0: all GPUs.
    dev_slots: [usize; DEV_SLOTS],
    /// At most one GPU in all traces (from the scan): no separate all-GPUs scope is kept.
    single_gpu: bool,
    /// Scopes changed by the event being applied.
    touched: Vec<usize>,
    steps: Steps,
    ooms: Vec<Oom>,
    leaks: BTreeMap<(u32, i32, LeakKind, u32), (u64, u64)>,
    anomalies: Anomalies,
    hist_step: u64,
    /// Per device, the largest address ranges seen (allocations and VMM mappings), for the
    /// address-space map; bounded so a huge trace stays small.
    spans: FastMap<i32, SpanSet>,
}

impl<'a> Engine<'a> {
    /// The model for a batch analysis of `loaded`: every trace file's process known up front.
    pub(crate) fn new(loaded: &Loaded, opts: &'a Options) -> Engine<'a> {
        let (start, end) = time_range(loaded);
        let mut d: Vec<i32> = loaded.traces.iter().flat_map(|t| t.devices.iter().copied()).collect();
        d.sort_unstable();
        d.dedup();
        let mut e = Engine::empty(Cow::Borrowed(opts), start, end, d.len() <= 1);
        for tf in &loaded.traces {
            e.add_file(tf.info.pid);
        }
        e.fallbacks.add_output(&loaded.output);
        e.stacks.decide_native(loaded, &mut e.intern);
        e
    }

    /// A model with no trace file yet, over `start..end` (timeline buckets); `single_gpu` when
    /// the traces are known to use one GPU only (see `targets`).
    fn empty(opts: Cow<'a, Options>, start: u64, end: u64, single_gpu: bool) -> Engine<'a> {
        let mut intern = Interner::default();
        let stacks = StackTable::new(opts.rules.as_ref(), &mut intern);
        let hist_step = (opts.oom_window_ns / 32).max(1);
        let mut e = Engine {
            start,
            end,
            now: start,
            events: 0,
            intern,
            stacks,
            fallbacks: Fallbacks::new(&[], 0),
            procs: Vec::new(),
            scopes: Vec::new(),
            scope_ix: FastMap::default(),
            dev_slots: [usize::MAX; DEV_SLOTS],
            single_gpu,
            opts,
            touched: Vec::new(),
            steps: Steps::default(),
            ooms: Vec::new(),
            leaks: BTreeMap::new(),
            anomalies: Anomalies::default(),
            hist_step,
            spans: FastMap::default(),
        };
        e.scope(ALL);
        e
    }

    /// A trace file (process `pid`) joins: its index is the next file index of the stream.
    pub(crate) fn add_file(&mut self, pid: u32) {
        self.procs.push(Proc::new(pid));
        self.fallbacks.add_file();
        self.stacks.add_file();
    }

    pub(crate) fn run(mut self, loaded: &Loaded) -> Report {
        for item in loaded.stream() {
            self.feed(loaded, item);
        }
        self.finish(loaded)
    }

    /// Applies one item of the merged stream; `src` holds the description (stacks) of the
    /// item's trace file.
    pub(crate) fn feed(&mut self, src: &Loaded, item: StreamItem) {
        match item {
            StreamItem::Event { file, event } => {
                self.events += 1;
                self.on_event(src, file, &event);
                self.after_event();
            }
            StreamItem::End { file, t_ns, clean } => self.on_end(file, t_ns, clean),
            StreamItem::Marker { file, marker } => self.on_marker(marker.t_ns, Some(file), &marker.label, marker.value),
            StreamItem::SideMarker(m) => self.on_marker(m.t_ns, None, &m.label, m.value),
        }
    }

    fn on_event(&mut self, src: &Loaded, fi: usize, e: &EventRec) {
        let pid = self.procs[fi].pid;
        let Some(api) = Api::from_id(e.api) else { return };
        if !valid_device(e.device) {
            self.anomaly("implausible_device", pid, Some(e), e.t_ns, format!("device ordinal {} is not a GPU (-1..{MAX_DEVICES}); event ignored", e.device));
            return;
        }
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
            self.on_failure(src, fi, api, e);
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
                self.on_alloc(src, fi, api, kind, e)
            }
            ApiKind::Free | ApiKind::FreeAsync | ApiKind::HostFree => self.on_free(fi, kind, e),
            ApiKind::AddressReserve => self.on_reserve(fi, e),
            ApiKind::AddressFree => self.on_address_free(fi, e),
            ApiKind::Create => self.on_create(src, fi, e),
            ApiKind::Release => self.on_release(fi, e),
            ApiKind::Map => self.on_map(src, fi, e),
            ApiKind::Unmap => self.on_unmap(fi, e),
            ApiKind::SetAccess | ApiKind::GetInfo => {}
            ApiKind::PoolTrim => self.on_trim(fi, e),
            ApiKind::CtxCreate => self.on_ctx_create(fi, api, e),
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
}

/// The time range of all traces and side markers: from the earliest process start, event or
/// marker to the latest event, marker or end.
fn time_range(loaded: &Loaded) -> (u64, u64) {
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
    (start, end.max(start))
}
