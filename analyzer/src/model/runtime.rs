//! Driver readings (cuMemGetInfo's answer, the shim's baseline at context creation, free/total
//! recorded with a failed call): the device's capacity, and the runtime estimate — what the
//! driver says is used beyond what the traces account for (contexts, modules, handles).

use super::{Engine, MAX_PLAUSIBLE, NONE};
use crate::attribute::Category;
use crate::report::RecSample;

/// At most this many reconciliation samples per device; beyond, every other one is dropped.
const MAX_REC_SAMPLES: usize = 2000;

/// Reconciliation of one device: the runtime estimate at every reading, sampled.
pub(super) struct RecState {
    pub readings: u64,
    pub samples: Vec<RecSample>,
    /// One reading in `stride` is sampled.
    stride: u64,
    pub last: u64,
    pub min: u64,
    pub max: u64,
    /// Readings at which the traces accounted for more than the driver said was used.
    pub exceeds: u64,
}

impl RecState {
    pub fn new() -> RecState {
        RecState { readings: 0, samples: Vec::new(), stride: 1, last: 0, min: u64::MAX, max: 0, exceeds: 0 }
    }

    fn record(&mut self, s: RecSample) {
        self.readings += 1;
        self.last = s.runtime_bytes;
        self.min = self.min.min(s.runtime_bytes);
        self.max = self.max.max(s.runtime_bytes);
        if s.traced_bytes > s.used_bytes {
            self.exceeds += 1;
        }
        if (self.readings - 1).is_multiple_of(self.stride) {
            self.samples.push(s);
            if self.samples.len() >= MAX_REC_SAMPLES {
                // Keep every other sample and halve the rate from now on.
                let mut i = 0;
                self.samples.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
        }
    }
}

impl Engine<'_> {
    /// A driver reading on `dev`: refreshes the capacity and the runtime estimate.
    pub(super) fn on_reading(&mut self, fi: usize, dev: i32, free: u64, total: u64) {
        if total == 0 || total > MAX_PLAUSIBLE || free > total {
            return;
        }
        let t = self.now;
        let si = self.scope(dev);
        let used = total.saturating_sub(free);
        let s = &mut self.scopes[si];
        if s.capacity_source != "option" {
            s.capacity = Some(s.capacity.unwrap_or(0).max(total));
            s.capacity_source = "cuMemGetInfo";
        }
        let old_rt = s.cat[Category::Runtime.index()];
        let traced = s.total.saturating_sub(old_rt);
        let runtime = used.saturating_sub(traced);
        s.rec.record(RecSample {
            t_ns: t,
            t_rel_ns: t.saturating_sub(self.start),
            pid: self.procs[fi].pid,
            free_bytes: free,
            total_bytes: total,
            used_bytes: used,
            traced_bytes: traced,
            runtime_bytes: runtime,
        });
        self.change(usize::MAX, dev, Category::Runtime, NONE, runtime as i64 - old_rt as i64);
    }
}
