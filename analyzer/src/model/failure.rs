//! Failed calls: a failed call changes no memory, but a failed allocation becomes an `Oom`
//! post-mortem — the request, the driver's free/total, the composition at the failure, which
//! category grew most in the window before it, and a verdict (device exhausted, memory held by
//! pools or fragmented, or not an out-of-memory error at all).

use super::scope::Scope;
use super::{Cats, Engine, HOST};
use crate::attribute::Category;
use crate::fmt_bytes as gib;
use crate::load::Loaded;
use crate::report::*;
use vramtrace_trace::api::cu;
use vramtrace_trace::{Api, ApiKind, EventRec};

/// What the verdict weighs, at the failure.
struct Need {
    /// Bytes requested.
    size: u64,
    /// Free bytes (from the driver, or estimated from the capacity), when known.
    free: Option<u64>,
    /// Freed but retained by the process's stream-ordered pools on the device.
    retained: u64,
    traced: u64,
    runtime: u64,
}

impl Engine<'_> {
    pub(super) fn on_failure(&mut self, src: &Loaded, fi: usize, api: Api, e: &EventRec) {
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
        let sa = self.stack_attr(src, fi, e);
        let (cat_try, rule) = {
            let o = &self.intern.origins[sa.origin as usize];
            (o.category, o.rule.clone())
        };
        let si = self.scope(dev);
        let step = self.growth_oom_at(t);
        let s = &mut self.scopes[si];
        if e.result == cu::ERROR_OUT_OF_MEMORY && !host {
            // The step this happened in yields no growth sample; the first such failure is
            // the device's OOM step.
            s.interval_failed = true;
            if s.growth_oom.is_none() {
                s.growth_oom = Some(step);
            }
        }
        let s = &self.scopes[si];
        let cats = s.cat;
        let traced = s.total.saturating_sub(cats[Category::Runtime.index()]);
        let grew_most = grew_most(s, t, self.opts.oom_window_ns);
        let (free, total, free_source) = if e.total > 0 {
            (Some(e.free), Some(e.total), "driver")
        } else if let (Some(cap), false) = (s.capacity, host) {
            (Some(cap.saturating_sub(s.total)), Some(cap), "estimated")
        } else {
            (None, None, "unknown")
        };
        let retained: u64 = self.procs[fi].pools.iter().filter(|(k, _)| k.0 == dev).map(|(_, p)| p.retained).sum();
        let need = Need { size: e.size, free, retained, traced, runtime: cats[Category::Runtime.index()] };
        let (verdict, reason) = verdict(api, e.result, host, &need, grew_most.as_ref());
        self.ooms.push(Oom {
            t_ns: t,
            t_rel_ns: t.saturating_sub(self.start),
            pid,
            device: if host { -1 } else { dev },
            api: api.name().to_string(),
            result: e.result,
            requested_bytes: e.size,
            driver_free_bytes: free,
            driver_total_bytes: total,
            free_source: free_source.into(),
            by_category: Categories::from_array(&cats),
            traced_bytes: traced,
            pool_retained_bytes: retained,
            framework_cache_bytes: self.procs[fi].cat[Category::FrameworkCache.index()],
            grew_most,
            verdict,
            reason,
            site: (sa.site != self.stacks.none.site).then_some(sa.site as usize),
            category: cat_try,
            rule,
        });
    }
}

/// The category that grew most on the scope in the `window` before `t`, measured from the
/// composition at the start of the window (the oldest snapshot not older than it).
fn grew_most(s: &Scope, t: u64, window: u64) -> Option<GrewMost> {
    let cats: Cats = s.cat;
    let (bt, b) = s.hist.iter().rev().find(|h| h.0.saturating_add(window) <= t).or(s.hist.front()).map(|h| (h.0, h.1))?;
    Category::ALL
        .iter()
        .map(|&c| (c, cats[c.index()].saturating_sub(b[c.index()])))
        .filter(|&(_, g)| g > 0)
        .max_by_key(|&(_, g)| g)
        .map(|(category, bytes)| GrewMost { category, bytes, window_ns: t.saturating_sub(bt) })
}

/// Why an allocation failed, in one line.
fn verdict(api: Api, result: u32, host: bool, n: &Need, grew_most: Option<&GrewMost>) -> (Verdict, String) {
    let need = n.size;
    let retained = n.retained;
    if result != cu::ERROR_OUT_OF_MEMORY {
        return (Verdict::NotOutOfMemory, format!("{} failed with CUresult {}, not cu::ERROR_OUT_OF_MEMORY", api.name(), result));
    }
    if host {
        return (Verdict::Exhausted, format!("pinned host allocation of {} failed: host memory that can be pinned is exhausted", gib(need)));
    }
    match n.free {
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
                gib(n.traced),
                gib(n.runtime),
                grew_most.map(|g| format!("; {} grew by {} in the last {:.1} s", g.category, gib(g.bytes), g.window_ns as f64 / 1e9)).unwrap_or_default()
            ),
        ),
        None if retained >= need => (
            Verdict::PoolOrFragmentation,
            format!("{} retained by stream-ordered pools >= {} requested (driver free memory unknown)", gib(retained), gib(need)),
        ),
        None => (
            Verdict::Exhausted,
            format!("driver free memory unknown; {} retained by pools < {} requested, {} traced on the device", gib(retained), gib(need), gib(n.traced)),
        ),
    }
}
