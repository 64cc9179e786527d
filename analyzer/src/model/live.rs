//! The model seen while it runs: a [`Snapshot`] of what each GPU holds now, for a live session
//! (`crate::live`) that keeps feeding the engine as its traces grow. Read-only: taking a
//! snapshot settles nothing, so the replay goes on unchanged after it.

use super::{Engine, ALL, HOST};
use crate::attribute::Category;
use crate::snapshot::{LiveDevice, LiveOom, LivePeak, LiveProcess, LiveSite, ProcessState, Snapshot};
use crate::load::Loaded;
use crate::report::Categories;
use crate::Options;
use std::borrow::Cow;
use vramtrace_trace::DeviceInfo;

/// Frames of a call site a snapshot carries (a site's label is its first frames).
const SITE_FRAMES: usize = 4;

impl Engine<'static> {
    /// A model for traces still being written: no trace file yet ([`Engine::add_file`] as they
    /// appear), times from `start` on, the set of GPUs unknown (every change also lands in the
    /// all-GPUs aggregate), and one timeline bucket for the whole run (a live view shows no
    /// timeline, and the model's memory must not grow with the run).
    pub(crate) fn live(opts: Options, start: u64) -> Engine<'static> {
        Engine::empty(Cow::Owned(opts), start, u64::MAX, false)
    }
}

impl Engine<'_> {
    /// Runner output lines read since the last call (see `Fallbacks::add_output`).
    pub(crate) fn add_output(&mut self, lines: &[vramtrace_trace::side::OutputLine]) {
        self.fallbacks.add_output(lines);
    }

    /// A GPU's capacity and where it came from: `--vram` or a driver reading, else the total the
    /// driver gave for the device (its Device record).
    pub(super) fn capacity(&self, si: usize, gpu: Option<&DeviceInfo>) -> (Option<u64>, &'static str) {
        let s = &self.scopes[si];
        match (s.capacity, gpu) {
            (None, Some(g)) if g.total_bytes > 0 => (Some(g.total_bytes), "cuDeviceTotalMem"),
            _ => (s.capacity, s.capacity_source),
        }
    }

    /// What is live now, per GPU and process; `src` holds the traces' descriptions (processes,
    /// GPUs) of the files fed so far.
    pub(crate) fn snapshot(&self, src: &Loaded) -> Snapshot {
        let mut gpu_ix: Vec<(i32, usize)> = self.scope_ix.iter().filter(|(&d, _)| d != HOST && d != ALL).map(|(&d, &i)| (d, i)).collect();
        gpu_ix.sort();
        let processes = src
            .traces
            .iter()
            .zip(&self.procs)
            .map(|(tf, p)| LiveProcess {
                pid: p.pid,
                exe: tf.info.exe.clone(),
                cmdline: tf.info.cmdline.clone(),
                state: match (p.ended, tf.end_ns.is_some()) {
                    (false, _) => ProcessState::Running,
                    (true, true) => ProcessState::Exited,
                    (true, false) => ProcessState::Gone,
                },
                vram_bytes: p.total,
                peak_bytes: p.peak_total,
            })
            .collect();
        Snapshot {
            t_ns: self.now,
            t_rel_ns: self.rel(self.now),
            events: self.events,
            processes,
            devices: gpu_ix.iter().map(|&(dev, si)| self.live_device(src, dev, si)).collect(),
            warnings: Vec::new(),
        }
    }

    fn live_device(&self, src: &Loaded, dev: i32, si: usize) -> LiveDevice {
        let s = &self.scopes[si];
        let gpu = src.traces.iter().flat_map(|t| &t.gpus).find(|g| g.ordinal == dev);
        let (capacity, capacity_source) = self.capacity(si, gpu);
        let mut top: Vec<(u32, u64)> = s.origins.iter().enumerate().filter(|(_, &b)| b > 0).map(|(o, &b)| (o as u32, b)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(self.intern.origins[a.0 as usize].site.cmp(&self.intern.origins[b.0 as usize].site)));
        top.truncate(self.opts.top_sites);
        let ooms: Vec<_> = self.ooms.iter().filter(|o| o.device == dev && o.category != Category::HostPinned).collect();
        let mut growth = self.growth_report(dev, si);
        if let Some(g) = &mut growth {
            crate::summary::order_fits(g);
        }
        LiveDevice {
            device: dev,
            name: gpu.map(|g| g.name.clone()).filter(|n| !n.is_empty()),
            used_bytes: s.total,
            capacity_bytes: capacity,
            capacity_source: capacity_source.into(),
            runtime_included: s.rec.readings > 0,
            live: Categories::from_array(&s.cat),
            peak: LivePeak { t_ns: s.peak.p.t, t_rel_ns: self.rel(s.peak.p.t), total_bytes: s.peak.p.total, by_category: Categories::from_array(&s.peak.p.cat) },
            top_sites: top.iter().map(|&(o, b)| self.live_site(o, b)).collect(),
            growth,
            ooms: ooms.len() as u64,
            last_oom: ooms.last().map(|o| LiveOom {
                site: o.site.map(|site| {
                    let decided = self.intern.origins.iter().find(|x| x.site as usize == site && x.rule == o.rule).and_then(|x| x.frame.clone());
                    self.site_of(site as u32, decided, &o.rule, o.category, o.requested_bytes)
                }),
                oom: (*o).clone(),
            }),
        }
    }

    /// One origin's live bytes as a snapshot row.
    fn live_site(&self, origin: u32, bytes: u64) -> LiveSite {
        let o = &self.intern.origins[origin as usize];
        self.site_of(o.site, o.frame.clone(), &o.rule, o.category, bytes)
    }

    fn site_of(&self, site: u32, frame: Option<String>, rule: &str, category: Category, bytes: u64) -> LiveSite {
        let si = &self.intern.sites[site as usize];
        LiveSite { key: si.key.clone(), frames: si.frames.iter().take(SITE_FRAMES).cloned().collect(), frame, rule: rule.to_string(), category, bytes }
    }
}
