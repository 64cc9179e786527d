//! What a live view shows of a run in progress ([`Snapshot`]): built by the model
//! (`crate::model`), kept up to date by a live session (`crate::live`), serde like the `Report`.

use crate::report::{Categories, GrowthReport, Oom};
use crate::Category;
use serde::{Deserialize, Serialize};

/// What is on each GPU now, as a live view shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Time of the latest item applied (trace clock), and since the run's start.
    pub t_ns: u64,
    pub t_rel_ns: u64,
    /// Events applied so far.
    pub events: u64,
    pub processes: Vec<LiveProcess>,
    pub devices: Vec<LiveDevice>,
    /// Damage, recording notes, unreadable side-file lines, symbol files not found.
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    #[default]
    Running,
    /// Its trace has its End record.
    Exited,
    /// Gone from this machine without an End record: crashed or killed.
    Gone,
}

impl ProcessState {
    /// The state in the words every rendering uses.
    pub fn label(self) -> &'static str {
        match self {
            ProcessState::Running => "running",
            ProcessState::Exited => "exited",
            ProcessState::Gone => "crashed or killed",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveProcess {
    pub pid: u32,
    pub exe: String,
    pub cmdline: Vec<String>,
    pub state: ProcessState,
    /// VRAM it holds now, all GPUs (runtime not included), and its peak so far.
    pub vram_bytes: u64,
    pub peak_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveDevice {
    pub device: i32,
    pub name: Option<String>,
    /// VRAM in use now as the model accounts it: every category, runtime included.
    pub used_bytes: u64,
    pub capacity_bytes: Option<u64>,
    /// `option` (--vram), `cuMemGetInfo`, `cuDeviceTotalMem` or `unknown`.
    pub capacity_source: String,
    /// Whether a driver reading gave the runtime overhead counted in `used_bytes`.
    pub runtime_included: bool,
    /// Live now, by category.
    pub live: Categories,
    pub peak: LivePeak,
    /// The largest (call site, rule) holders live now, largest first (`Options::top_sites`).
    pub top_sites: Vec<LiveSite>,
    /// Growth per token over the steps completed so far.
    pub growth: Option<GrowthReport>,
    /// Allocations that failed on this GPU so far, and the latest one.
    pub ooms: u64,
    pub last_oom: Option<LiveOom>,
}

impl LiveDevice {
    /// `used_bytes` as a percentage of the capacity, when known.
    pub fn used_pct(&self) -> Option<f64> {
        self.capacity_bytes.filter(|&c| c > 0).map(|c| self.used_bytes as f64 * 100.0 / c as f64)
    }
}

/// The device's highest VRAM so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LivePeak {
    pub t_ns: u64,
    pub t_rel_ns: u64,
    pub total_bytes: u64,
    pub by_category: Categories,
}

/// A call site with the rule that decided its bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSite {
    /// The site's identity (its frames' keys, innermost first).
    pub key: String,
    /// Its innermost frames.
    pub frames: Vec<String>,
    /// The frame the rule matched, when it matched one.
    pub frame: Option<String>,
    pub rule: String,
    pub category: Category,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveOom {
    #[serde(flatten)]
    pub oom: Oom,
    /// Who asked (bytes: the request), when the call had a stack.
    pub site: Option<LiveSite>,
}
