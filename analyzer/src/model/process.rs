//! Per-process state: what one traced process holds (allocations, VMM objects, pools, contexts)
//! and its own totals.

use super::alloc::Alloc;
use super::pool::Pool;
use super::vmm::{Handle, Mapping, Reserve};
use super::{Cats, FastMap, NCAT};
use crate::load::TraceFile;
use crate::report::{Categories, ProcessReport};
use std::collections::BTreeMap;

pub(super) struct Proc {
    pub pid: u32,
    pub allocs: FastMap<u64, Alloc>,
    /// Freed pointers not reused since, to tell double frees from frees of unknown pointers.
    pub freed: FastMap<u64, ()>,
    pub handles: FastMap<u64, Handle>,
    pub maps: BTreeMap<u64, Mapping>,
    pub reserves: BTreeMap<u64, Reserve>,
    pub pools: FastMap<(i32, u64), Pool>,
    /// Live contexts per device, and the device of each context handle.
    pub ctx_count: FastMap<i32, i64>,
    pub ctx_dev: FastMap<u64, i32>,
    /// Time of the latest event so far (to flag events that go back in time).
    pub last_t: u64,
    pub cat: Cats,
    pub total: u64,
    pub peak_total: u64,
    pub peak_t: u64,
    pub peak_cat: Cats,
    pub host: u64,
    pub host_peak: u64,
    pub ended: bool,
}

impl Proc {
    pub fn new(pid: u32) -> Proc {
        Proc {
            pid,
            allocs: FastMap::default(),
            freed: FastMap::default(),
            handles: FastMap::default(),
            maps: BTreeMap::new(),
            reserves: BTreeMap::new(),
            pools: FastMap::default(),
            ctx_count: FastMap::default(),
            ctx_dev: FastMap::default(),
            last_t: 0,
            cat: [0; NCAT],
            total: 0,
            peak_total: 0,
            peak_t: 0,
            peak_cat: [0; NCAT],
            host: 0,
            host_peak: 0,
            ended: false,
        }
    }

    pub fn report(&self, tf: &TraceFile, start: u64) -> ProcessReport {
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
            peak_bytes: self.peak_total,
            peak_t_ns: self.peak_t,
            peak_t_rel_ns: self.peak_t.saturating_sub(start),
            peak_by_category: Categories::from_array(&self.peak_cat),
            host_pinned_peak_bytes: self.host_peak,
        }
    }
}
