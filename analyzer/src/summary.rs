//! The finalizing pass of an analysis: figures derived from the rest of the [`Report`] (never-freed
//! totals, the root process, anomaly and log-line totals) and the order of the growth fits,
//! computed here once so that the terminal summary, report.html, summary.md and report.json all
//! show the same numbers. The viewer renders these fields; it never recomputes them.
//!
//! Pure and idempotent: it reads only the report, and running it twice changes nothing.

use crate::report::{GrowthReport, NeverFreed, Report, Summary};
use crate::Categories;
use std::collections::BTreeSet;

/// Fills `r.summary` and puts every growth report's fits steepest first.
pub fn finalize(r: &mut Report) {
    for g in &mut r.growth {
        order_fits(g);
    }
    r.summary = Summary { root_pid: root_pid(r), never_freed: never_freed(r), anomaly_count: r.anomalies.iter().map(|a| a.count).sum(), logged_by_category: logged(r) };
}

/// Puts a growth report's fits steepest first (by |slope|; stable, so equal slopes keep the
/// analyzer's category order).
pub fn order_fits(g: &mut GrowthReport) {
    g.fits.sort_by(|a, b| b.fit.slope_bytes_per_token.abs().total_cmp(&a.fit.slope_bytes_per_token.abs()));
}

/// The earliest started process whose parent is not traced (the command the user ran); the
/// first listed when every parent is traced (a pid reused across files).
fn root_pid(r: &Report) -> Option<u32> {
    let pids: BTreeSet<u32> = r.processes.iter().map(|p| p.pid).collect();
    r.processes.iter().filter(|p| !pids.contains(&p.ppid)).min_by_key(|p| p.start_ns).or_else(|| r.processes.first()).map(|p| p.pid)
}

/// Leaks summed: device memory and pinned host memory apart (pinned host memory is never VRAM),
/// each with the number of distinct call sites (one site can leak in several processes or ways).
fn never_freed(r: &Report) -> NeverFreed {
    let (mut vram_sites, mut host_sites) = (BTreeSet::new(), BTreeSet::new());
    let mut n = NeverFreed::default();
    for l in &r.leaks {
        if l.device.is_some() {
            n.vram_bytes += l.bytes;
            vram_sites.insert(l.site);
        } else {
            n.host_pinned_bytes += l.bytes;
            host_sites.insert(l.site);
        }
    }
    n.vram_sites = vram_sites.len() as u64;
    n.host_pinned_sites = host_sites.len() as u64;
    n
}

fn logged(r: &Report) -> Categories {
    let mut a = Categories::default().to_array();
    for l in &r.log_lines {
        a[l.category.index()] += l.logged_bytes;
    }
    Categories::from_array(&a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::*;
    use crate::Category;

    fn leak(device: Option<i32>, site: usize, bytes: u64) -> Leak {
        Leak { pid: 1, device, kind: LeakKind::Exit, site, rule: String::new(), category: Category::Unknown, bytes, allocations: 1 }
    }

    #[test]
    fn never_freed_splits_vram_from_pinned_host_and_counts_distinct_sites() {
        let mut r = Report { leaks: vec![leak(Some(0), 3, 100), leak(Some(1), 3, 50), leak(Some(0), 4, 7), leak(None, 6, 16)], ..Report::default() };
        finalize(&mut r);
        assert_eq!(r.summary.never_freed, NeverFreed { vram_bytes: 157, vram_sites: 2, host_pinned_bytes: 16, host_pinned_sites: 1 });
    }

    #[test]
    fn root_process_fits_order_and_totals() {
        let proc = |pid, ppid, start_ns| ProcessReport { pid, ppid, start_ns, ..ProcessReport::default() };
        let fit = |category, slope: f64| CategoryFit { category, fit: Fit { intercept_bytes: 0.0, slope_bytes_per_token: slope, r2: 1.0 } };
        let mut r = Report {
            processes: vec![proc(20, 10, 5), proc(10, 1, 9), proc(30, 2, 7)],
            anomalies: vec![Anomaly { kind: "a".into(), count: 2, examples: vec![] }, Anomaly { kind: "b".into(), count: 3, examples: vec![] }],
            growth: vec![GrowthReport { fits: vec![fit(Category::Weights, 0.0), fit(Category::KvCache, -40.0), fit(Category::ScratchPool, 32.0), fit(Category::Compute, 40.0)], ..GrowthReport::default() }],
            log_lines: vec![
                LogMatch { category: Category::Weights, logged_bytes: 5, ..LogMatch::default() },
                LogMatch { category: Category::Weights, logged_bytes: 6, ..LogMatch::default() },
            ],
            ..Report::default()
        };
        finalize(&mut r);
        // pid 20's parent is traced; of 10 and 30, 30 started first.
        assert_eq!(r.summary.root_pid, Some(30));
        assert_eq!(r.root_process().map(|p| p.pid), Some(30));
        let order: Vec<Category> = r.growth[0].fits.iter().map(|f| f.category).collect();
        assert_eq!(order, [Category::KvCache, Category::Compute, Category::ScratchPool, Category::Weights], "by |slope|, ties in category order");
        assert_eq!(r.summary.anomaly_count, 5);
        assert_eq!(r.summary.logged_by_category.weights, 11);
        let once = r.clone();
        finalize(&mut r);
        assert_eq!(r, once, "idempotent");
    }

    #[test]
    fn wording_is_one_per_fact() {
        assert_eq!(device_label(0), "GPU 0");
        assert_eq!(device_label(-1), "unknown GPU");
        assert_eq!(Verdict::Exhausted.label(), "device full");
        let l = leak(None, 0, 1);
        assert_eq!(l.memory_label(), HOST_PINNED_LABEL);
        assert_eq!(Categories { weights: 3, host_pinned: 9, runtime: 1, ..Categories::default() }.share_pct(1), Some(25.0));
        assert_eq!(Categories::default().share_pct(1), None);
    }
}
