//! `vramtrace diff`: what changed between two runs. Pure: two [`Report`]s in, one
//! [`Diff`] out (serde; docs/diff-schema.md), no I/O.
//!
//! - **Call sites are matched by `Site::key`** (function names of the stack), never by address:
//!   a rebuild moves every address, the symbols stay. Rows of the attribution table are summed
//!   per key, so a site split over several rules is one site here.
//! - **Noise is folded**: a byte delta whose magnitude is below the threshold (default
//!   max(1 MiB, 0.5% of the old peak)) is reported as unchanged. Slopes are compared in bytes at
//!   the largest token count either run reached, so the same threshold applies to them. New and
//!   vanished call sites are always listed: a code path that appears is not noise.
//! - The **gate** (`--max-peak-increase`, `--max-increase CAT=LIMIT`) compares the raw deltas,
//!   unfolded: a limit of 0 means "not one byte more".

use crate::attribute::Category;
use crate::fmt_bytes;
use crate::report::{Report, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Version of the diff.json layout; fields are only ever added within a version.
pub const DIFF_SCHEMA_VERSION: u32 = 1;

const MIB: u64 = 1 << 20;
/// At most this many marker anchors are kept in [`Alignment::anchors`] (evenly thinned).
const MAX_ANCHORS: usize = 1000;

/// A byte amount given either absolutely or as a percentage of a base (the old peak for the
/// threshold and `--max-peak-increase`, the old category for `--max-increase`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    Bytes(u64),
    Percent(f64),
}

impl Amount {
    /// The amount in bytes for `base` (percentages round down).
    pub fn resolve(&self, base: u64) -> u64 {
        match *self {
            Amount::Bytes(b) => b,
            Amount::Percent(p) => (base as f64 * p.max(0.0) / 100.0).floor() as u64,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Bytes(b) => f.write_str(&fmt_bytes(*b)),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What to compare and how strictly.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// Names shown for the two sides (the paths given on the command line).
    pub old_name: String,
    pub new_name: String,
    /// Deltas smaller than this are folded into "unchanged"; a percentage is of the old peak.
    /// `None`: max(1 MiB, 0.5% of the old peak).
    pub threshold: Option<Amount>,
    /// Gate: the overall peak may grow by at most this (a percentage is of the old peak).
    pub max_peak_increase: Option<Amount>,
    /// Gate per category (at the peak; `host_pinned`: its own peak); a percentage is of the
    /// old value of that category.
    pub max_increase: Vec<(Category, Amount)>,
}

/// Old and new value of one byte figure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub old: u64,
    pub new: u64,
    /// new − old.
    pub delta: i64,
    /// delta / old × 100; `null` when old is 0.
    pub delta_pct: Option<f64>,
    /// The delta is not zero and at least the threshold.
    pub changed: bool,
}

impl Change {
    fn new(old: u64, new: u64, threshold: u64) -> Change {
        let delta = signed_delta(old, new);
        Change { old, new, delta, delta_pct: pct(delta as f64, old as f64), changed: delta != 0 && delta.unsigned_abs() >= threshold }
    }
}

fn signed_delta(old: u64, new: u64) -> i64 {
    (new as i128 - old as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn pct(delta: f64, old: f64) -> Option<f64> {
    (old != 0.0).then(|| delta / old * 100.0)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoryChange {
    pub category: Category,
    #[serde(flatten)]
    pub change: Change,
}

/// One side of the comparison, as a reader needs it to know what was compared.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SideInfo {
    pub name: String,
    pub vramtrace_version: String,
    /// Executable and command line of the first traced root process (empty when unknown).
    pub exe: String,
    pub cmdline: Vec<String>,
    pub processes: usize,
    pub events: u64,
    pub duration_ns: u64,
    pub peak_bytes: u64,
    pub markers: usize,
    pub warnings: usize,
}

impl SideInfo {
    fn of(r: &Report, name: &str) -> SideInfo {
        let pids: Vec<u32> = r.processes.iter().map(|p| p.pid).collect();
        let root = r.processes.iter().filter(|p| !pids.contains(&p.ppid)).min_by_key(|p| p.start_ns).or(r.processes.first());
        SideInfo {
            name: name.to_string(),
            vramtrace_version: r.vramtrace_version.clone(),
            exe: root.map(|p| p.exe.clone()).unwrap_or_default(),
            cmdline: root.map(|p| p.cmdline.clone()).unwrap_or_default(),
            processes: r.processes.len(),
            events: r.events,
            duration_ns: r.duration_ns,
            peak_bytes: r.peak.total_bytes,
            markers: r.markers.len(),
            warnings: r.warnings.len(),
        }
    }
}

/// Peak of one GPU on both sides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceChange {
    pub device: i32,
    pub in_old: bool,
    pub in_new: bool,
    pub old_capacity_bytes: Option<u64>,
    pub new_capacity_bytes: Option<u64>,
    /// Live VRAM at the device's peak (runtime included).
    pub peak: Change,
}

/// One call site on one side: its attribution rows summed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteSide {
    /// Category and rule of the row that held the most bytes.
    pub category: Category,
    pub rule: String,
    pub allocations: u64,
    pub bytes_allocated: u64,
    pub max_live_bytes: u64,
    pub bytes_at_peak: u64,
    pub bytes_leaked: u64,
}

/// A call site matched by key (or present on one side only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteChange {
    pub key: String,
    /// The frame that decided the category, as displayed (new side, else old): the readable
    /// name of the site. `null` when no stack rule decided it.
    pub frame: Option<String>,
    /// The new side's category, else the old one's.
    pub category: Category,
    pub old: Option<SiteSide>,
    pub new: Option<SiteSide>,
    /// Change of the most bytes the site held at any time.
    pub max_live_delta: i64,
    /// Change of its bytes at the overall peak.
    pub at_peak_delta: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sites {
    /// Sites on both sides whose bytes changed by at least the threshold, or whose category
    /// changed; largest |max_live_delta| first.
    pub changed: Vec<SiteChange>,
    /// Only in the new run (largest first), whatever their size.
    pub new: Vec<SiteChange>,
    /// Only in the old run (largest first), whatever their size.
    pub vanished: Vec<SiteChange>,
    /// Sites on both sides (changed or not).
    pub matched: u64,
    /// Matched sites folded into "unchanged".
    pub unchanged: u64,
}

/// A fitted slope on both sides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlopeChange {
    pub old_bytes_per_token: f64,
    pub new_bytes_per_token: f64,
    pub delta_bytes_per_token: f64,
    pub delta_pct: Option<f64>,
    /// delta × `GrowthChange::tokens`: what the slope change amounts to at the largest context
    /// either run reached; compared with the threshold.
    pub delta_bytes_at_tokens: f64,
    pub old_r2: Option<f64>,
    pub new_r2: Option<f64>,
    pub changed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategorySlope {
    pub category: Category,
    #[serde(flatten)]
    pub slope: SlopeChange,
}

/// Growth per token of one GPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrowthChange {
    pub device: i32,
    /// `both`, `old_only` or `new_only`: which runs had token markers for this GPU. Slopes are
    /// compared only for `both`.
    pub presence: String,
    /// Largest token count of any point of either run.
    pub tokens: i64,
    pub old_points: usize,
    pub new_points: usize,
    /// Per category with a fit on either side (a category without bytes has slope 0).
    pub slopes: Vec<CategorySlope>,
    pub total: Option<SlopeChange>,
    pub old_predicted_max_tokens: Option<u64>,
    pub new_predicted_max_tokens: Option<u64>,
    pub changed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CountChange {
    pub old: u64,
    pub new: u64,
    pub delta: i64,
}

impl CountChange {
    fn new(old: u64, new: u64) -> CountChange {
        CountChange { old, new, delta: signed_delta(old, new) }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoryCount {
    pub category: Category,
    #[serde(flatten)]
    pub count: CountChange,
}

/// Allocating calls that succeeded, from the rules table. Listed, never "changed" by itself:
/// the bytes decide (a pool growing once more is not a memory regression).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Allocations {
    pub total: CountChange,
    /// Categories with allocations on either side.
    pub by_category: Vec<CategoryCount>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OomBrief {
    pub t_rel_ns: u64,
    pub device: i32,
    pub api: String,
    pub requested_bytes: u64,
    pub verdict: Verdict,
    pub category: Category,
    /// Site key of the failing call.
    pub site_key: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OomSide {
    pub count: u64,
    pub exhausted: u64,
    pub pool_or_fragmentation: u64,
    pub not_out_of_memory: u64,
    pub first: Option<OomBrief>,
}

impl OomSide {
    fn of(r: &Report) -> OomSide {
        let n = |v: Verdict| r.ooms.iter().filter(|o| o.verdict == v).count() as u64;
        OomSide {
            count: r.ooms.len() as u64,
            exhausted: n(Verdict::Exhausted),
            pool_or_fragmentation: n(Verdict::PoolOrFragmentation),
            not_out_of_memory: n(Verdict::NotOutOfMemory),
            first: r.ooms.iter().min_by_key(|o| o.t_ns).map(|o| OomBrief {
                t_rel_ns: o.t_rel_ns,
                device: o.device,
                api: o.api.clone(),
                requested_bytes: o.requested_bytes,
                verdict: o.verdict,
                category: o.category,
                site_key: o.site.and_then(|s| site_key(r, s)).map(str::to_string),
            }),
        }
    }

    fn same_status(&self, other: &OomSide) -> bool {
        (self.count, self.exhausted, self.pool_or_fragmentation, self.not_out_of_memory)
            == (other.count, other.exhausted, other.pool_or_fragmentation, other.not_out_of_memory)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ooms {
    pub old: OomSide,
    pub new: OomSide,
    /// The number of failures or their verdicts differ.
    pub changed: bool,
}

/// Runtime overhead (driver-reported used − traced), the most any reading showed, summed over
/// GPUs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    pub old_readings: u64,
    pub new_readings: u64,
    /// `changed` only when both runs had driver readings.
    pub max: Change,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlignMode {
    /// Both runs have markers with the same labels: the new run's time is mapped onto the old
    /// one's piecewise linearly between matching markers.
    Markers,
    /// Otherwise: both runs on 0..1 of their own duration.
    #[default]
    Normalized,
}

/// A pair of matching markers: the n-th marker with this label in each run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub label: String,
    pub old_value: i64,
    pub new_value: i64,
    pub old_t_rel_ns: u64,
    pub new_t_rel_ns: u64,
}

/// How the two runs' time axes line up, for side-by-side timelines.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    pub mode: AlignMode,
    pub anchors: Vec<Anchor>,
    pub old_duration_ns: u64,
    pub new_duration_ns: u64,
}

impl Alignment {
    /// Matches markers by (label, occurrence): the k-th `tokens` marker of one run with the k-th
    /// of the other, whatever their values (a run with other batch sizes still lines up step by
    /// step). Anchors that would run backwards in either run are skipped.
    pub fn of(old: &Report, new: &Report) -> Alignment {
        let mut a = Alignment { old_duration_ns: old.duration_ns, new_duration_ns: new.duration_ns, ..Default::default() };
        let mut new_by_label: BTreeMap<&str, Vec<&crate::report::MarkerReport>> = BTreeMap::new();
        let mut nm: Vec<_> = new.markers.iter().collect();
        nm.sort_by_key(|m| m.t_ns);
        for m in nm {
            new_by_label.entry(m.label.as_str()).or_default().push(m);
        }
        let mut om: Vec<_> = old.markers.iter().collect();
        om.sort_by_key(|m| m.t_ns);
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut last_o, mut last_n) = (0u64, 0u64);
        for m in om {
            let k = seen.entry(m.label.as_str()).or_insert(0);
            let idx = *k;
            *k += 1;
            let Some(n) = new_by_label.get(m.label.as_str()).and_then(|v| v.get(idx)) else { continue };
            let (to, tn) = (m.t_rel_ns, n.t_rel_ns);
            let first = a.anchors.is_empty();
            if (first || (to > last_o && tn > last_n)) && to <= old.duration_ns && tn <= new.duration_ns {
                a.anchors.push(Anchor { label: m.label.clone(), old_value: m.value, new_value: n.value, old_t_rel_ns: to, new_t_rel_ns: tn });
                (last_o, last_n) = (to, tn);
            }
        }
        if a.anchors.len() > MAX_ANCHORS {
            let n = a.anchors.len();
            a.anchors = (0..MAX_ANCHORS).map(|i| a.anchors[i * (n - 1) / (MAX_ANCHORS - 1)].clone()).collect();
        }
        if !a.anchors.is_empty() {
            a.mode = AlignMode::Markers;
        }
        a
    }

    /// Position of an old-run time on the common axis: ns of the old run (markers) or 0..1.
    pub fn x_old(&self, t_rel_ns: u64) -> f64 {
        match self.mode {
            AlignMode::Markers => t_rel_ns as f64,
            AlignMode::Normalized => t_rel_ns as f64 / self.old_duration_ns.max(1) as f64,
        }
    }

    /// Position of a new-run time on the common axis (monotonic in `t_rel_ns`).
    pub fn x_new(&self, t_rel_ns: u64) -> f64 {
        match self.mode {
            AlignMode::Normalized => t_rel_ns as f64 / self.new_duration_ns.max(1) as f64,
            AlignMode::Markers => {
                // Knots: start, every anchor, end; linear between them.
                let t = t_rel_ns as f64;
                let mut prev = (0.0f64, 0.0f64);
                let knots = self
                    .anchors
                    .iter()
                    .map(|a| (a.new_t_rel_ns as f64, a.old_t_rel_ns as f64))
                    .chain(std::iter::once((self.new_duration_ns as f64, self.old_duration_ns as f64)));
                for (kn, ko) in knots {
                    if t <= kn {
                        return if kn > prev.0 { prev.1 + (t - prev.0) / (kn - prev.0) * (ko - prev.1) } else { ko };
                    }
                    prev = (kn, ko);
                }
                // Beyond the new run's end: keep the last segment's scale.
                prev.1 + (t - prev.0)
            }
        }
    }

    /// End of the common axis.
    pub fn x_end(&self) -> f64 {
        match self.mode {
            AlignMode::Markers => self.old_duration_ns.max(1) as f64,
            AlignMode::Normalized => 1.0,
        }
    }
}

/// One gate condition and its outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// `peak` or a category name.
    pub target: String,
    /// The limit as given (`5%`, `100.00 MiB`, `0 B`).
    pub limit: String,
    /// The increase the limit allows, in bytes.
    pub allowed_bytes: u64,
    /// The actual change (raw, not folded).
    pub delta: i64,
    pub passed: bool,
    /// e.g. `kv_cache grew by 512.00 MiB (limit 0 B)`.
    pub message: String,
}

/// The comparison. Field meanings: docs/diff-schema.md.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub schema_version: u32,
    pub vramtrace_version: String,
    pub old: SideInfo,
    pub new: SideInfo,
    /// Deltas below this many bytes are folded into "unchanged".
    pub threshold_bytes: u64,
    /// Anything reported as changed: a peak, a category, a device, a call site (changed, new or
    /// vanished), a growth slope, the OOM status or the runtime overhead.
    pub changed: bool,
    /// VRAM at the overall peak (all GPUs, runtime included).
    pub peak: Change,
    /// Every category at the overall peak; `host_pinned`: the pinned host peak.
    pub categories: Vec<CategoryChange>,
    pub devices: Vec<DeviceChange>,
    pub sites: Sites,
    pub growth: Vec<GrowthChange>,
    pub allocations: Allocations,
    pub ooms: Ooms,
    pub runtime: Runtime,
    pub alignment: Alignment,
    pub gate: Vec<GateCheck>,
    pub gate_passed: bool,
}

impl Diff {
    /// The category row of `c`.
    pub fn category(&self, c: Category) -> Option<&CategoryChange> {
        self.categories.iter().find(|x| x.category == c)
    }

    /// `gate failed: <reason>[; <reason>…]`, one line; `None` when every check passed.
    pub fn gate_failure(&self) -> Option<String> {
        let failed: Vec<&str> = self.gate.iter().filter(|g| !g.passed).map(|g| g.message.as_str()).collect();
        (!failed.is_empty()).then(|| format!("gate failed: {}", failed.join("; ")))
    }
}

/// The default noise threshold: max(1 MiB, 0.5% of the old peak).
pub fn default_threshold(old_peak: u64) -> u64 {
    MIB.max(old_peak / 200)
}

/// Compares two reports.
pub fn diff(old: &Report, new: &Report, opts: &DiffOptions) -> Diff {
    let t = match opts.threshold {
        Some(a) => a.resolve(old.peak.total_bytes),
        None => default_threshold(old.peak.total_bytes),
    };
    let cat_bytes = |r: &Report, c: Category| if c == Category::HostPinned { r.host.peak_bytes } else { r.peak.by_category.get(c) };
    let categories: Vec<CategoryChange> =
        Category::ALL.iter().map(|&c| CategoryChange { category: c, change: Change::new(cat_bytes(old, c), cat_bytes(new, c), t) }).collect();
    let peak = Change::new(old.peak.total_bytes, new.peak.total_bytes, t);
    let devices = devices(old, new, t);
    let sites = sites(old, new, t);
    let growth = growth(old, new, t);
    let allocations = allocations(old, new);
    let (oo, on) = (OomSide::of(old), OomSide::of(new));
    let ooms = Ooms { changed: !oo.same_status(&on), old: oo, new: on };
    let runtime = runtime(old, new, t);
    let changed = peak.changed
        || categories.iter().any(|c| c.change.changed)
        || devices.iter().any(|d| d.peak.changed || d.in_old != d.in_new)
        || !sites.changed.is_empty()
        || !sites.new.is_empty()
        || !sites.vanished.is_empty()
        || growth.iter().any(|g| g.changed)
        || ooms.changed
        || runtime.max.changed;
    let mut d = Diff {
        schema_version: DIFF_SCHEMA_VERSION,
        vramtrace_version: env!("CARGO_PKG_VERSION").to_string(),
        old: SideInfo::of(old, if opts.old_name.is_empty() { "old" } else { &opts.old_name }),
        new: SideInfo::of(new, if opts.new_name.is_empty() { "new" } else { &opts.new_name }),
        threshold_bytes: t,
        changed,
        peak,
        categories,
        devices,
        sites,
        growth,
        allocations,
        ooms,
        runtime,
        alignment: Alignment::of(old, new),
        gate: Vec::new(),
        gate_passed: true,
    };
    if let Some(limit) = opts.max_peak_increase {
        let (o, dl) = (d.peak.old, d.peak.delta);
        d.gate.push(check("peak", o, dl, limit));
    }
    for &(c, limit) in &opts.max_increase {
        let ch = d.category(c).map(|x| x.change.clone()).unwrap_or_default();
        d.gate.push(check(c.name(), ch.old, ch.delta, limit));
    }
    d.gate_passed = d.gate.iter().all(|g| g.passed);
    d
}

fn check(target: &str, old: u64, delta: i64, limit: Amount) -> GateCheck {
    let allowed = limit.resolve(old);
    let passed = delta <= 0 || (delta as u64) <= allowed;
    let grew = fmt_bytes(delta.unsigned_abs());
    let verb = if delta < 0 { "shrank" } else { "grew" };
    let message = match (limit, pct(delta as f64, old as f64)) {
        (Amount::Percent(_), Some(p)) => format!("{target} {verb} by {grew}, {p:+.1}% (limit {limit})"),
        (Amount::Percent(_), None) => format!("{target} {verb} by {grew} from 0 B (limit {limit})"),
        (Amount::Bytes(_), _) => format!("{target} {verb} by {grew} (limit {limit})"),
    };
    GateCheck { target: target.to_string(), limit: limit.to_string(), allowed_bytes: allowed, delta, passed, message }
}

fn devices(old: &Report, new: &Report, t: u64) -> Vec<DeviceChange> {
    let mut ids: Vec<i32> = old.devices.iter().chain(&new.devices).map(|d| d.device).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let (o, n) = (old.devices.iter().find(|d| d.device == id), new.devices.iter().find(|d| d.device == id));
            let peak = |d: Option<&crate::report::DeviceReport>| d.map(|d| d.peak.total_bytes).unwrap_or(0);
            DeviceChange {
                device: id,
                in_old: o.is_some(),
                in_new: n.is_some(),
                old_capacity_bytes: o.and_then(|d| d.capacity_bytes),
                new_capacity_bytes: n.and_then(|d| d.capacity_bytes),
                peak: Change::new(peak(o), peak(n), t),
            }
        })
        .collect()
}

fn site_key(r: &Report, site: usize) -> Option<&str> {
    // `id` is the index, but do not rely on it if a report was edited by hand.
    r.sites.get(site).filter(|s| s.id == site).or_else(|| r.sites.iter().find(|s| s.id == site)).map(|s| s.key.as_str())
}

/// The key used for matching. Pool-retention sites carry the pool handle, which the driver
/// picks anew in every run: any handle but the default pool's (0x0) is matched as one.
fn match_key(key: &str) -> String {
    match key.strip_prefix("(stream-ordered pool 0x").and_then(|r| r.strip_suffix(" retention)")) {
        Some(h) if h != "0" => "(stream-ordered pool 0x… retention)".to_string(),
        _ => key.to_string(),
    }
}

struct SiteAgg {
    side: SiteSide,
    frame: Option<String>,
    /// max_live_bytes of the row that set the category (the largest).
    lead: u64,
}

fn site_table(r: &Report) -> BTreeMap<String, SiteAgg> {
    let mut m: BTreeMap<String, SiteAgg> = BTreeMap::new();
    for row in &r.attribution {
        let key = match_key(site_key(r, row.site).unwrap_or("(unknown site)"));
        let a = m.entry(key).or_insert_with(|| SiteAgg { side: SiteSide::default(), frame: None, lead: 0 });
        let s = &mut a.side;
        if s.rule.is_empty() || row.max_live_bytes > a.lead {
            s.category = row.category;
            s.rule = row.rule.clone();
            a.frame = row.frame.clone();
            a.lead = row.max_live_bytes;
        }
        s.allocations += row.allocations;
        s.bytes_allocated += row.bytes_allocated;
        s.max_live_bytes += row.max_live_bytes;
        s.bytes_at_peak += row.bytes_at_peak;
        s.bytes_leaked += row.bytes_leaked;
    }
    m
}

fn sites(old: &Report, new: &Report, t: u64) -> Sites {
    let (mut om, nm) = (site_table(old), site_table(new));
    let mut out = Sites::default();
    for (key, n) in nm {
        match om.remove(&key) {
            Some(o) => {
                out.matched += 1;
                let max_live_delta = signed_delta(o.side.max_live_bytes, n.side.max_live_bytes);
                let at_peak_delta = signed_delta(o.side.bytes_at_peak, n.side.bytes_at_peak);
                let big = |d: i64| d != 0 && d.unsigned_abs() >= t;
                if big(max_live_delta) || big(at_peak_delta) || o.side.category != n.side.category {
                    out.changed.push(SiteChange {
                        key,
                        frame: n.frame.or(o.frame),
                        category: n.side.category,
                        old: Some(o.side),
                        new: Some(n.side),
                        max_live_delta,
                        at_peak_delta,
                    });
                } else {
                    out.unchanged += 1;
                }
            }
            None => out.new.push(SiteChange {
                key,
                frame: n.frame,
                category: n.side.category,
                max_live_delta: signed_delta(0, n.side.max_live_bytes),
                at_peak_delta: signed_delta(0, n.side.bytes_at_peak),
                old: None,
                new: Some(n.side),
            }),
        }
    }
    for (key, o) in om {
        out.vanished.push(SiteChange {
            key,
            frame: o.frame,
            category: o.side.category,
            max_live_delta: signed_delta(o.side.max_live_bytes, 0),
            at_peak_delta: signed_delta(o.side.bytes_at_peak, 0),
            old: Some(o.side),
            new: None,
        });
    }
    let order = |a: &SiteChange, b: &SiteChange| {
        b.max_live_delta
            .unsigned_abs()
            .cmp(&a.max_live_delta.unsigned_abs())
            .then(b.at_peak_delta.unsigned_abs().cmp(&a.at_peak_delta.unsigned_abs()))
            .then(a.key.cmp(&b.key))
    };
    out.changed.sort_by(order);
    out.new.sort_by(order);
    out.vanished.sort_by(order);
    out
}

fn slope(o: Option<&crate::report::Fit>, n: Option<&crate::report::Fit>, tokens: i64, t: u64) -> SlopeChange {
    let (os, ns) = (o.map(|f| f.slope_bytes_per_token).unwrap_or(0.0), n.map(|f| f.slope_bytes_per_token).unwrap_or(0.0));
    let delta = ns - os;
    let at = delta * tokens.max(1) as f64;
    SlopeChange {
        old_bytes_per_token: os,
        new_bytes_per_token: ns,
        delta_bytes_per_token: delta,
        delta_pct: pct(delta, os),
        delta_bytes_at_tokens: at,
        old_r2: o.map(|f| f.r2),
        new_r2: n.map(|f| f.r2),
        // NaN compares false: a broken fit is never a change.
        changed: delta != 0.0 && at.abs() >= t as f64,
    }
}

fn growth(old: &Report, new: &Report, t: u64) -> Vec<GrowthChange> {
    let mut ids: Vec<i32> = old.growth.iter().chain(&new.growth).map(|g| g.device).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let (o, n) = (old.growth.iter().find(|g| g.device == id), new.growth.iter().find(|g| g.device == id));
            let tokens = o.iter().chain(n.iter()).flat_map(|g| g.points.iter().map(|p| p.tokens)).max().unwrap_or(0);
            let mut g = GrowthChange {
                device: id,
                presence: match (o, n) {
                    (Some(_), Some(_)) => "both",
                    (Some(_), None) => "old_only",
                    _ => "new_only",
                }
                .to_string(),
                tokens,
                old_points: o.map(|g| g.points.len()).unwrap_or(0),
                new_points: n.map(|g| g.points.len()).unwrap_or(0),
                slopes: Vec::new(),
                total: None,
                old_predicted_max_tokens: o.and_then(|g| g.predicted_max_tokens),
                new_predicted_max_tokens: n.and_then(|g| g.predicted_max_tokens),
                changed: false,
            };
            if let (Some(o), Some(n)) = (o, n) {
                for c in Category::ALL {
                    let (fo, fn_) = (o.fits.iter().find(|f| f.category == c), n.fits.iter().find(|f| f.category == c));
                    if fo.is_some() || fn_.is_some() {
                        g.slopes.push(CategorySlope { category: c, slope: slope(fo.map(|f| &f.fit), fn_.map(|f| &f.fit), tokens, t) });
                    }
                }
                if o.total_fit.is_some() || n.total_fit.is_some() {
                    g.total = Some(slope(o.total_fit.as_ref(), n.total_fit.as_ref(), tokens, t));
                }
                g.changed = g.slopes.iter().any(|s| s.slope.changed) || g.total.as_ref().is_some_and(|s| s.changed);
            }
            g
        })
        .collect()
}

fn allocations(old: &Report, new: &Report) -> Allocations {
    let count = |r: &Report| {
        let mut a = [0u64; Category::COUNT];
        for u in &r.rules {
            a[u.category.index()] += u.allocations;
        }
        a
    };
    let (o, n) = (count(old), count(new));
    Allocations {
        total: CountChange::new(o.iter().sum(), n.iter().sum()),
        by_category: Category::ALL
            .iter()
            .filter(|c| o[c.index()] > 0 || n[c.index()] > 0)
            .map(|&c| CategoryCount { category: c, count: CountChange::new(o[c.index()], n[c.index()]) })
            .collect(),
    }
}

fn runtime(old: &Report, new: &Report, t: u64) -> Runtime {
    let readings = |r: &Report| r.devices.iter().map(|d| d.reconciliation.readings).sum::<u64>();
    let max = |r: &Report| r.devices.iter().map(|d| d.reconciliation.runtime_max_bytes).sum::<u64>();
    let (ro, rn) = (readings(old), readings(new));
    let mut m = Change::new(max(old), max(new), t);
    // Without a driver reading the overhead is unknown, not zero.
    m.changed &= ro > 0 && rn > 0;
    Runtime { old_readings: ro, new_readings: rn, max: m }
}

#[cfg(test)]
mod tests;
