//! The analysis result: what `vramtrace report --json` writes and `vramtrace diff` reads back.
//!
//! Every field is documented in docs/report-schema.md; bump `SCHEMA_VERSION` on any change that
//! an older reader would misread. Sizes are bytes (u64); every time is given twice, as the
//! absolute CLOCK_MONOTONIC `t_ns` of the trace and as `t_rel_ns` since the trace start.

use crate::attribute::{Category, RuleSource};
use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

/// Bytes per category. `host_pinned` is host memory and never part of a VRAM total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Categories {
    pub weights: u64,
    pub kv_cache: u64,
    pub compute: u64,
    /// Added with the category; a report written before it reads as 0.
    #[serde(default)]
    pub cuda_graphs: u64,
    pub scratch_pool: u64,
    pub workspace: u64,
    pub framework_cache: u64,
    pub host_pinned: u64,
    pub runtime: u64,
    pub unknown: u64,
}

impl Categories {
    pub fn from_array(a: &[u64; Category::COUNT]) -> Categories {
        let v = |c: Category| a[c.index()];
        Categories {
            weights: v(Category::Weights),
            kv_cache: v(Category::KvCache),
            compute: v(Category::Compute),
            cuda_graphs: v(Category::CudaGraphs),
            scratch_pool: v(Category::ScratchPool),
            workspace: v(Category::Workspace),
            framework_cache: v(Category::FrameworkCache),
            host_pinned: v(Category::HostPinned),
            runtime: v(Category::Runtime),
            unknown: v(Category::Unknown),
        }
    }

    pub fn to_array(&self) -> [u64; Category::COUNT] {
        let mut a = [0; Category::COUNT];
        for c in Category::ALL {
            a[c.index()] = match c {
                Category::Weights => self.weights,
                Category::KvCache => self.kv_cache,
                Category::Compute => self.compute,
                Category::CudaGraphs => self.cuda_graphs,
                Category::ScratchPool => self.scratch_pool,
                Category::Workspace => self.workspace,
                Category::FrameworkCache => self.framework_cache,
                Category::HostPinned => self.host_pinned,
                Category::Runtime => self.runtime,
                Category::Unknown => self.unknown,
            };
        }
        a
    }

    pub fn get(&self, c: Category) -> u64 {
        self.to_array()[c.index()]
    }

    /// Device bytes: every category but `host_pinned`.
    pub fn vram_total(&self) -> u64 {
        self.to_array().iter().sum::<u64>() - self.host_pinned
    }

    /// `bytes` as a percentage of the VRAM total (every share the report shows, of a category
    /// or of a call site, is of this total); `None` when nothing was live.
    pub fn share_pct(&self, bytes: u64) -> Option<f64> {
        let whole = self.vram_total();
        (whole > 0).then(|| bytes as f64 * 100.0 / whole as f64)
    }

    /// (category, bytes) pairs, largest first, zeros left out.
    pub fn sorted(&self) -> Vec<(Category, u64)> {
        let a = self.to_array();
        let mut v: Vec<(Category, u64)> = Category::ALL.iter().map(|&c| (c, a[c.index()])).filter(|&(_, b)| b > 0).collect();
        v.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        v
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub vramtrace_version: String,
    /// Earliest time in any trace (CLOCK_MONOTONIC ns); every `t_rel_ns` counts from here.
    pub trace_start_ns: u64,
    pub trace_end_ns: u64,
    pub duration_ns: u64,
    /// Events analysed, over all files.
    pub events: u64,
    pub processes: Vec<ProcessReport>,
    /// One entry per GPU seen, by ordinal (`-1` = calls whose device the shim could not tell).
    pub devices: Vec<DeviceReport>,
    /// The overall peak: all GPUs summed.
    pub peak: Peak,
    /// Pinned host memory (never counted as VRAM).
    pub host: HostReport,
    /// Call sites, referenced by index from `attribution`, `peak.top_sites`, `leaks`, `ooms`.
    pub sites: Vec<Site>,
    /// Audit table: every (call site, rule) pair that decided some bytes.
    pub attribution: Vec<AttributionRow>,
    /// Per rule totals (what each rule decided).
    pub rules: Vec<RuleUse>,
    pub ooms: Vec<Oom>,
    pub leaks: Vec<Leak>,
    pub anomalies: Vec<Anomaly>,
    pub markers: Vec<MarkerReport>,
    /// Markers left out of `markers` beyond the first 10000.
    pub markers_dropped: u64,
    pub growth: Vec<GrowthReport>,
    /// Runner log lines giving buffer sizes, and the allocation each was matched to.
    pub log_lines: Vec<LogMatch>,
    pub warnings: Vec<String>,
    /// Figures derived from the fields above, computed once (`summary.rs`) so that every
    /// rendering shows the same numbers.
    #[serde(default)]
    pub summary: Summary,
}

impl Report {
    /// The first traced process (`summary.root_pid`): the one whose command reproduces the run.
    pub fn root_process(&self) -> Option<&ProcessReport> {
        self.summary.root_pid.and_then(|pid| self.processes.iter().find(|p| p.pid == pid))
    }
}

/// Figures derived from the rest of the report by one finalizing pass (`summary::finalize`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The first traced process: the earliest started among those whose parent is not traced.
    #[serde(default)]
    pub root_pid: Option<u32>,
    /// Bytes the program never freed (the `leaks` summed), VRAM and pinned host memory apart.
    #[serde(default)]
    pub never_freed: NeverFreed,
    /// Occurrences of every anomaly kind summed.
    #[serde(default)]
    pub anomaly_count: u64,
    /// The sizes of the runner's log lines (`log_lines`) summed per category.
    #[serde(default)]
    pub logged_by_category: Categories,
}

/// Never-freed bytes and the number of distinct call sites they were allocated from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeverFreed {
    pub vram_bytes: u64,
    pub vram_sites: u64,
    pub host_pinned_bytes: u64,
    pub host_pinned_sites: u64,
}

/// How every rendering names a device ordinal: `GPU 0`, or `unknown GPU` for `-1` (calls whose
/// device the shim could not tell).
pub fn device_label(device: i32) -> String {
    if device < 0 {
        "unknown GPU".into()
    } else {
        format!("GPU {device}")
    }
}

/// How every rendering names pinned host memory where a device would be named.
pub const HOST_PINNED_LABEL: &str = "pinned host memory";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    pub cmdline: Vec<String>,
    /// vramtrace version of the shim that wrote the trace.
    pub shim_version: String,
    pub hostname: String,
    pub trace_file: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// `true` when the trace has its End record (normal exit); `false`: crashed or killed.
    pub clean_exit: bool,
    /// The file was cut short or damaged; events before the damage were used.
    pub truncated: bool,
    pub events: u64,
    pub stack_depth: u32,
    /// This process's own VRAM peak (all GPUs summed, runtime not included).
    pub peak_bytes: u64,
    pub peak_t_ns: u64,
    pub peak_t_rel_ns: u64,
    pub peak_by_category: Categories,
    pub host_pinned_peak_bytes: u64,
}

impl ProcessReport {
    /// How the process ended, in the words every rendering uses.
    pub fn exit_label(&self) -> &'static str {
        match (self.clean_exit, self.truncated) {
            (true, false) => "exited cleanly",
            (true, true) => "exited, trace cut short",
            (false, false) => "crashed or killed",
            (false, true) => "crashed or killed, trace cut short",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteBytes {
    pub site: usize,
    pub rule: String,
    pub category: Category,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PidBytes {
    pub pid: u32,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    /// Live VRAM at the peak: all categories but host_pinned, runtime included.
    pub total_bytes: u64,
    pub by_category: Categories,
    /// Largest (call site, rule) contributors live at the peak.
    pub top_sites: Vec<SiteBytes>,
    /// Traced bytes per process at the peak (runtime not included).
    pub by_process: Vec<PidBytes>,
    pub vmm_reserved_bytes: u64,
    pub vmm_mapped_bytes: u64,
    pub pool_retained_bytes: u64,
    pub rounding_waste_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    pub total_bytes: u64,
    pub by_category: Categories,
    pub vmm_reserved_bytes: u64,
    pub vmm_mapped_bytes: u64,
    pub pool_retained_bytes: u64,
    /// 1 − largest_free_block / total_free over the VMM reservations (0 when nothing is free).
    pub bfc: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolReport {
    pub pid: u32,
    /// Pool handle as recorded (0 = the device's default pool).
    pub pool: u64,
    pub device: i32,
    pub peak_reserved_bytes: u64,
    pub peak_used_bytes: u64,
    pub retained_at_end_bytes: u64,
    pub trims: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fragmentation {
    pub vmm_reserved_peak_bytes: u64,
    pub vmm_mapped_peak_bytes: u64,
    pub pool_retained_peak_bytes: u64,
    pub pool_retained_peak_t_ns: u64,
    pub bfc_max: f64,
    pub bfc_max_t_ns: u64,
    pub bfc_at_peak: f64,
    /// Estimated bytes lost to allocation granularity at the peak (see the schema doc).
    pub rounding_waste_at_peak_bytes: u64,
    pub pools: Vec<PoolReport>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecSample {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    pub pid: u32,
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// total − free, as the driver reported it.
    pub used_bytes: u64,
    /// Bytes the trace accounts for on this device at that moment (all processes).
    pub traced_bytes: u64,
    /// used − traced, floored at 0: contexts, modules, library handles, other processes.
    pub runtime_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Number of driver readings (cuMemGetInfo and failed calls that carried free/total).
    pub readings: u64,
    /// Up to 2000 of them, evenly thinned.
    pub samples: Vec<RecSample>,
    pub runtime_last_bytes: u64,
    pub runtime_min_bytes: u64,
    pub runtime_max_bytes: u64,
    /// Readings where the trace accounted for more than the driver called used.
    pub traced_exceeds_used: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    pub device: i32,
    /// The GPU's name, as the driver reports it (`cuDeviceGetName`), when the trace recorded it.
    #[serde(default)]
    pub name: Option<String>,
    /// Driver (CUDA) version, e.g. "12.9" (`cuDriverGetVersion`).
    #[serde(default)]
    pub driver_version: Option<String>,
    /// The GPU's UUID, `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` as nvidia-smi prints it.
    #[serde(default)]
    pub uuid: Option<String>,
    pub capacity_bytes: Option<u64>,
    /// `option` (--vram), `cuMemGetInfo` (any driver reading), or `unknown`.
    pub capacity_source: String,
    pub peak: Peak,
    pub timeline: Vec<TimelinePoint>,
    pub fragmentation: Fragmentation,
    pub reconciliation: Reconciliation,
    /// Per process: its own maximum on this device, and its share at the device's peak.
    pub processes: Vec<ProcessShare>,
    /// Bytes still live on the device when the trace ends (after process exits).
    pub live_at_end: Categories,
    /// Allocations and VMM mappings as address ranges over time (the largest 4096).
    #[serde(default)]
    pub address_map: AddressMap,
}

/// Address ranges over time, for a heap-map picture (address × time rectangles).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AddressMap {
    /// Sorted by start time.
    pub spans: Vec<AddressSpan>,
    /// Smaller spans left out to bound the report's size.
    pub dropped: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddressSpan {
    pub ptr: u64,
    pub size: u64,
    pub start_rel_ns: u64,
    /// `null`: still live when the trace ended.
    pub end_rel_ns: Option<u64>,
    pub category: Category,
    /// A VMM mapping (`cuMemMap`) rather than an allocation.
    pub vmm: bool,
}

impl DeviceReport {
    /// The device's peak as a percentage of its capacity; `None` when the capacity is unknown.
    pub fn peak_pct_of_capacity(&self) -> Option<f64> {
        self.capacity_bytes.filter(|&c| c > 0).map(|c| self.peak.total_bytes as f64 * 100.0 / c as f64)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessShare {
    pub pid: u32,
    pub peak_bytes: u64,
    pub bytes_at_device_peak: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    pub peak_bytes: u64,
    pub peak_t_ns: u64,
    pub peak_t_rel_ns: u64,
    pub by_process: Vec<PidBytes>,
    pub timeline: Vec<TimelinePoint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub id: usize,
    /// Function names of the stack, innermost first, joined by " <- ": stable across builds.
    pub key: String,
    /// The frames as displayed (`func (file:line) [module+0xoff]`), innermost first, at most 24.
    pub frames: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributionRow {
    pub site: usize,
    pub rule: String,
    pub source: RuleSource,
    pub category: Category,
    /// The frame the rule matched, when it was a stack rule.
    pub frame: Option<String>,
    pub allocations: u64,
    pub bytes_allocated: u64,
    /// Highest live bytes of this row at any time.
    pub max_live_bytes: u64,
    /// Live bytes at the overall peak.
    pub bytes_at_peak: u64,
    /// Bytes never freed by the program (live at exit, context teardown or crash).
    pub bytes_leaked: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleUse {
    pub rule: String,
    pub source: RuleSource,
    pub category: Category,
    pub allocations: u64,
    pub bytes_allocated: u64,
    pub bytes_at_peak: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Free memory plus everything pools held was below the request: the device was full.
    Exhausted,
    /// Enough memory was free or held by pools: pools or fragmentation made the call fail.
    PoolOrFragmentation,
    /// The call failed with another error than CUDA_ERROR_OUT_OF_MEMORY.
    NotOutOfMemory,
}

impl Verdict {
    /// The verdict in the words every rendering uses.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Exhausted => "device full",
            Verdict::PoolOrFragmentation => "pool or fragmentation",
            Verdict::NotOutOfMemory => "not out of memory",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrewMost {
    pub category: Category,
    pub bytes: u64,
    pub window_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Oom {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    pub pid: u32,
    pub device: i32,
    pub api: String,
    /// CUresult returned (2 = CUDA_ERROR_OUT_OF_MEMORY).
    pub result: u32,
    pub requested_bytes: u64,
    pub driver_free_bytes: Option<u64>,
    pub driver_total_bytes: Option<u64>,
    /// `driver` when the shim recorded free/total with the failure, `estimated` (capacity −
    /// traced − runtime) when not, `unknown` when neither is possible.
    pub free_source: String,
    /// Live on the device at the failure, by category (all processes; runtime included).
    pub by_category: Categories,
    pub traced_bytes: u64,
    /// Freed-but-retained bytes of this process's stream-ordered pools on the device.
    pub pool_retained_bytes: u64,
    /// framework_cache bytes of this process on the device: a caching allocator may hold
    /// unused memory in there, invisible to the driver.
    pub framework_cache_bytes: u64,
    /// The category that grew most in the window before the failure.
    pub grew_most: Option<GrewMost>,
    pub verdict: Verdict,
    pub reason: String,
    /// Who tried to allocate: site and the category its stack implies.
    pub site: Option<usize>,
    pub category: Category,
    pub rule: String,
}

impl Oom {
    /// The memory the call asked for: its device, or pinned host memory (whose failures carry
    /// device `-1`).
    pub fn memory_label(&self) -> String {
        if self.category == Category::HostPinned {
            HOST_PINNED_LABEL.into()
        } else {
            device_label(self.device)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakKind {
    /// Still allocated when the process exited normally.
    Exit,
    /// Still allocated when its context was destroyed (the driver freed it).
    ContextTeardown,
    /// Still allocated when a process without End record (crashed/killed) stopped.
    Crash,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leak {
    pub pid: u32,
    /// GPU ordinal; `null` for pinned host memory.
    pub device: Option<i32>,
    pub kind: LeakKind,
    pub site: usize,
    pub rule: String,
    pub category: Category,
    pub bytes: u64,
    pub allocations: u64,
}

impl Leak {
    /// Where the bytes are: a device, or pinned host memory.
    pub fn memory_label(&self) -> String {
        self.device.map_or_else(|| HOST_PINNED_LABEL.into(), device_label)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnomalyExample {
    pub pid: u32,
    pub t_ns: u64,
    pub t_rel_ns: u64,
    pub api: String,
    pub ptr: u64,
    pub handle: u64,
    pub size: u64,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: String,
    pub count: u64,
    /// The first few occurrences.
    pub examples: Vec<AnomalyExample>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MarkerReport {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    /// Process that recorded it; `null` for sidecar markers.
    pub pid: Option<u32>,
    pub label: String,
    pub value: i64,
    /// `trace` or `sidecar`.
    pub source: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub intercept_bytes: f64,
    pub slope_bytes_per_token: f64,
    pub r2: f64,
}

/// Slopes smaller than this (in bytes per token, either sign) are "no growth".
pub const MIN_GROWTH_BYTES_PER_TOKEN: f64 = 1.0;

impl Fit {
    /// Whether memory grows (or shrinks) with the context by at least a byte per token.
    pub fn grows(&self) -> bool {
        self.slope_bytes_per_token.abs() >= MIN_GROWTH_BYTES_PER_TOKEN
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoryFit {
    pub category: Category,
    #[serde(flatten)]
    pub fit: Fit,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrowthPoint {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    pub tokens: i64,
    /// Peak VRAM during the step (runtime included).
    pub total_bytes: u64,
    pub by_category: Categories,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrowthOom {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    /// Tokens of the step during which the first out-of-memory failure happened (`null` when it
    /// happened outside any step).
    pub step_tokens: Option<i64>,
    /// Tokens of the last step that completed without such a failure.
    pub last_completed_tokens: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrowthReport {
    pub device: i32,
    /// Marker labels used (`tokens`, `n_tokens`, `prompt_tokens`).
    pub labels: Vec<String>,
    pub points: Vec<GrowthPoint>,
    /// Per category with any bytes: bytes = intercept + slope × tokens; steepest first (by
    /// |slope|, ties in category order).
    pub fits: Vec<CategoryFit>,
    pub total_fit: Option<Fit>,
    pub capacity_bytes: Option<u64>,
    /// Tokens at which the fitted total reaches the capacity; `null` without growth or capacity.
    pub predicted_max_tokens: Option<u64>,
    /// Whether a cuMemGetInfo reading gave the runtime overhead counted in the totals.
    pub runtime_included: bool,
    pub oom: Option<GrowthOom>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogAlloc {
    pub t_ns: u64,
    pub pid: u32,
    pub device: i32,
    pub size_bytes: u64,
    pub site: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogMatch {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    pub pid: Option<u32>,
    pub line: String,
    pub category: Category,
    pub device: Option<i32>,
    /// The size as printed, in bytes (the print has two decimals of MiB).
    pub logged_bytes: u64,
    /// The allocation this line was matched to; `null` when the allocation was already
    /// attributed by its stack or none was found.
    pub matched: Option<LogAlloc>,
}
