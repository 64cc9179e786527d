//! Fallbacks for allocations whose stack did not decide (stripped binaries), or only said
//! "some framework's cache": what else the run tells about an allocation, tried in this order.
//!
//! 1. Phase markers: an open `phase:<category>` marker (of the allocating process, else a
//!    side-file one) names the category of device memory allocated while it is open.
//! 2. vLLM's KV window: vLLM prints `GPU KV cache size: …` just before allocating one KV tensor
//!    per layer, all of one size: allocations of at least 1 MiB and of the first one's size,
//!    within 300 s after the line, are the KV cache.
//! 3. Runner log lines (`logs`): llama.cpp prints the size of every static buffer; an
//!    allocation of that size on that device, made up to 120 s before the line (or 1 s after,
//!    for clock skew), is the buffer the line describes; each line matches once.
//! 4. ggml fingerprints, only when the runner printed such lines: the first 4 MiB or 32 MiB
//!    allocation per process and device is the cuBLAS workspace; VMM memory is the scratch
//!    pool; any allocation after the last compute-buffer line is scratch.
//!
//! Steps 1–2 apply to unknown and framework-cache allocations, 3–4 to unknown ones only. The
//! state (open phases, log lines and which allocation each matched, vLLM's window, the
//! workspace sizes seen) lives here, so the memory model only asks [`Fallbacks::decide`].

use super::logs::{self, BufferLine};
use super::{Category, Decision, RuleSource};
use crate::report::LogAlloc;
use crate::{OutputLine, MIB};

/// Log lines match allocations made up to this long before them (and 1 s after, for clock
/// skew between the runner's pipe reader and the driver call).
const LOG_BEFORE_NS: u64 = 120_000_000_000;
const LOG_AFTER_NS: u64 = 1_000_000_000;
/// How long after vLLM's KV line its KV tensors are expected.
const VLLM_WINDOW_NS: u64 = 300_000_000_000;

/// One device allocation the stack rules left undecided, as the fallbacks see it.
pub(crate) struct Request {
    /// Index of the allocating process's trace file.
    pub file: usize,
    pub pid: u32,
    pub t_ns: u64,
    pub size: u64,
    pub device: i32,
    /// Physical VMM memory (cuMemCreate) rather than a pointer allocation.
    pub vmm: bool,
    /// The call site, recorded with a log line's match.
    pub site: usize,
    /// What the stack decided.
    pub stack: Category,
}

/// A runner's buffer-size line and the allocation it was matched to.
pub(crate) struct LogLine {
    pub b: BufferLine,
    pub matched: Option<LogAlloc>,
}

pub(crate) struct Fallbacks {
    /// Open phases per trace file (innermost last), and of side-file markers.
    phases: Vec<Vec<Category>>,
    global_phases: Vec<Category>,
    /// Buffer-size lines by time; `log_lo` is the first one still able to match.
    logs: Vec<LogLine>,
    log_lo: usize,
    /// The runner printed ggml buffer lines: the ggml fingerprints apply.
    ggml_runner: bool,
    last_compute_line: Option<u64>,
    /// Times of vLLM's KV lines; `vllm_next` is the first not yet reached.
    vllm_arms: Vec<u64>,
    vllm_next: usize,
    /// The open KV window: (armed at, size of its tensors once the first is seen).
    vllm: Option<(u64, Option<u64>)>,
    /// Per trace file, the devices whose cuBLAS workspace fingerprint was used already.
    workspace_seen: Vec<Vec<i32>>,
}

impl Fallbacks {
    /// The fallbacks for `files` trace files and the runners' output lines.
    pub fn new(output: &[OutputLine], files: usize) -> Fallbacks {
        let mut f = Fallbacks {
            phases: vec![Vec::new(); files],
            global_phases: Vec::new(),
            logs: Vec::new(),
            log_lo: 0,
            ggml_runner: false,
            last_compute_line: None,
            vllm_arms: Vec::new(),
            vllm_next: 0,
            vllm: None,
            workspace_seen: vec![Vec::new(); files],
        };
        f.add_output(output);
        f
    }

    /// One more trace file.
    pub fn add_file(&mut self) {
        self.phases.push(Vec::new());
        self.workspace_seen.push(Vec::new());
    }

    /// More output lines (a live session reads them as the runners print them; a line only
    /// decides allocations not yet attributed).
    pub fn add_output(&mut self, output: &[OutputLine]) {
        let f = self;
        for l in output {
            if let Some((category, device, mib)) = logs::parse_buffer_line(&l.line) {
                f.ggml_runner = true;
                if category == Category::Compute {
                    f.last_compute_line = Some(f.last_compute_line.unwrap_or(0).max(l.t_ns));
                }
                f.logs.push(LogLine {
                    b: BufferLine { t_ns: l.t_ns, pid: l.pid, category, device, mib, line: l.line.trim().to_string() },
                    matched: None,
                });
            } else if logs::is_vllm_kv_line(&l.line) {
                f.vllm_arms.push(l.t_ns);
            }
        }
        f.logs.sort_by_key(|l| l.b.t_ns);
        f.vllm_arms.sort();
    }

    /// Follows `phase:<category>` markers (value ≠ 0 opens, 0 closes); `file` is `None` for a
    /// side-file marker. Other markers are ignored.
    pub fn on_marker(&mut self, file: Option<usize>, label: &str, value: i64) {
        let Some(c) = label.strip_prefix("phase:").and_then(Category::from_name) else { return };
        let phases = match file {
            Some(fi) => &mut self.phases[fi],
            None => &mut self.global_phases,
        };
        if value != 0 {
            phases.push(c);
        } else if let Some(pos) = phases.iter().rposition(|&x| x == c) {
            phases.remove(pos);
        }
    }

    /// The fallback decision for one device allocation, in the order of the module doc;
    /// `None` keeps what the stack decided.
    pub fn decide(&mut self, r: &Request) -> Option<Decision> {
        if matches!(r.stack, Category::Unknown | Category::FrameworkCache) {
            if let Some(&c) = self.phases[r.file].last().or(self.global_phases.last()) {
                return Some(decision(c, format!("phase:{c}"), RuleSource::Phase, None));
            }
            if let Some(d) = self.vllm_window(r) {
                return Some(d);
            }
        }
        if r.stack != Category::Unknown {
            return None;
        }
        self.log_line(r).or_else(|| self.ggml(r))
    }

    /// The runners' buffer lines, with the allocation each matched.
    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }

    fn vllm_window(&mut self, r: &Request) -> Option<Decision> {
        let t = r.t_ns;
        while self.vllm_next < self.vllm_arms.len() && self.vllm_arms[self.vllm_next] <= t {
            self.vllm = Some((self.vllm_arms[self.vllm_next], None));
            self.vllm_next += 1;
        }
        let (armed_at, size) = self.vllm?;
        if t > armed_at.saturating_add(VLLM_WINDOW_NS) {
            self.vllm = None;
        } else if r.size >= MIB {
            if size.is_none_or(|s| s == r.size) {
                self.vllm = Some((armed_at, Some(r.size)));
                return Some(decision(Category::KvCache, "heuristic:vllm_kv_after_log".into(), RuleSource::Heuristic, None));
            }
            self.vllm = None;
        }
        None
    }

    fn log_line(&mut self, r: &Request) -> Option<Decision> {
        let t = r.t_ns;
        while self.log_lo < self.logs.len() && self.logs[self.log_lo].b.t_ns.saturating_add(LOG_AFTER_NS) < t {
            self.log_lo += 1;
        }
        let mut j = self.log_lo;
        while j < self.logs.len() && self.logs[j].b.t_ns <= t.saturating_add(LOG_BEFORE_NS) {
            let l = &mut self.logs[j];
            let (lo, hi) = l.b.byte_range();
            if l.matched.is_none() && l.b.device.is_none_or(|d| d == r.device) && (lo..=hi).contains(&r.size) {
                l.matched = Some(LogAlloc { t_ns: t, pid: r.pid, device: r.device, size_bytes: r.size, site: r.site });
                return Some(decision(l.b.category, format!("log:{}", l.b.kind()), RuleSource::Log, Some(l.b.line.clone())));
            }
            j += 1;
        }
        None
    }

    fn ggml(&mut self, r: &Request) -> Option<Decision> {
        if !self.ggml_runner {
            return None;
        }
        // Size fingerprint: ggml creates one cuBLAS handle per device, whose workspace is
        // 4 MiB (32 MiB on Hopper) — sizes ggml's own pools practically never produce.
        let seen = &mut self.workspace_seen[r.file];
        if !r.vmm && (r.size == 4 * MIB || r.size == 32 * MIB) && !seen.contains(&r.device) {
            seen.push(r.device);
            return Some(decision(Category::Workspace, "heuristic:cublas_workspace_size".into(), RuleSource::Heuristic, None));
        }
        if r.vmm {
            return Some(decision(Category::ScratchPool, "heuristic:ggml_vmm_pool".into(), RuleSource::Heuristic, None));
        }
        if self.last_compute_line.is_some_and(|lc| r.t_ns > lc) {
            return Some(decision(Category::ScratchPool, "heuristic:ggml_after_setup".into(), RuleSource::Heuristic, None));
        }
        None
    }
}

fn decision(category: Category, rule: String, source: RuleSource, frame: Option<String>) -> Decision {
    Decision { category, rule, source, frame }
}
