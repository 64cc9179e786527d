//! Results: settles what is pending at the end of the replay and builds the `Report`.

use super::scope::Point;
use super::{Engine, ALL, HOST};
use crate::load::Loaded;
use crate::report::*;
use std::collections::BTreeMap;

impl Engine<'_> {
    pub(super) fn finish(mut self, loaded: &Loaded) -> Report {
        if let Some((t0, tok)) = self.steps.open.take() {
            self.close_growth(t0, tok);
        }
        self.close_spans();
        self.settle();
        let mut gpu_ix: Vec<(i32, usize)> = self.scope_ix.iter().filter(|(&d, _)| d != HOST && d != ALL).map(|(&d, &i)| (d, i)).collect();
        gpu_ix.sort();
        let devices = gpu_ix.iter().map(|&(dev, si)| self.device_report(loaded, dev, si)).collect();
        let (all, overall_warning) = self.overall_scope(&gpu_ix);
        let attribution = self.attribution_rows(&self.scopes[all].peak.snap_origins);
        let mut warnings = loaded.warnings.clone();
        warnings.extend(loaded.symbols.warnings.iter().cloned());
        warnings.extend(overall_warning);
        let end = self.end.max(self.now);
        Report {
            schema_version: SCHEMA_VERSION,
            vramtrace_version: env!("CARGO_PKG_VERSION").to_string(),
            trace_start_ns: self.start,
            trace_end_ns: end,
            duration_ns: end - self.start,
            events: self.events,
            processes: loaded.traces.iter().zip(&self.procs).map(|(tf, p)| p.report(tf, self.start)).collect(),
            devices,
            peak: self.peak_report(all),
            host: self.host_report(),
            sites: self.intern.sites.iter().enumerate().map(|(i, s)| Site { id: i, key: s.key.clone(), frames: s.frames.clone() }).collect(),
            rules: rule_uses(&attribution),
            attribution,
            ooms: std::mem::take(&mut self.ooms),
            leaks: self.leak_rows(),
            anomalies: self.anomalies.kinds.iter().map(|(k, (count, ex))| Anomaly { kind: (*k).to_string(), count: *count, examples: ex.clone() }).collect(),
            markers: std::mem::take(&mut self.steps.markers),
            markers_dropped: self.steps.markers_dropped,
            growth: gpu_ix.iter().filter_map(|&(dev, si)| self.growth_report(dev, si)).collect(),
            log_lines: self.log_matches(),
            warnings,
            summary: Summary::default(),
        }
    }

    /// Flushes every scope's pending peak snapshot and timeline bucket.
    fn settle(&mut self) {
        let t = self.end.max(self.now);
        for s in &mut self.scopes {
            if s.peak.journaling {
                s.materialize();
            }
            let p = s.point(t);
            s.tl.flush(&p);
            if s.tl.out.last().is_some_and(|q| q.t < t) {
                s.tl.out.push(p);
            }
        }
    }

    /// The scope of the overall peak: the all-GPUs aggregate, or the one GPU's own scope.
    fn overall_scope(&self, gpu_ix: &[(i32, usize)]) -> (usize, Option<String>) {
        if !self.single_gpu {
            return (self.scope_ix[&ALL], None);
        }
        match gpu_ix {
            [] => (self.scope_ix[&ALL], None),
            [(_, i)] => (*i, None),
            many => {
                // Cannot happen when the scan saw every device; stay useful if it does.
                let i = many.iter().map(|&(_, i)| i).max_by_key(|&i| self.scopes[i].peak.p.total).unwrap();
                (i, Some("overall peak approximated by the largest device peak (device set changed during analysis)".to_string()))
            }
        }
    }

    fn host_report(&self) -> HostReport {
        let Some(&hi) = self.scope_ix.get(&HOST) else { return HostReport::default() };
        let s = &self.scopes[hi];
        HostReport {
            peak_bytes: s.peak.p.total,
            peak_t_ns: s.peak.p.t,
            peak_t_rel_ns: self.rel(s.peak.p.t),
            by_process: s.proc_peak.iter().enumerate().filter(|(_, &b)| b > 0).map(|(p, &b)| PidBytes { pid: self.procs[p].pid, bytes: b }).collect(),
            timeline: s.tl.out.iter().map(|p| self.tl_point(p)).collect(),
        }
    }

    /// The audit table: every origin that allocated or held memory, largest first.
    fn attribution_rows(&self, overall_snap: &[u64]) -> Vec<AttributionRow> {
        let mut attribution: Vec<AttributionRow> = self
            .intern
            .origins
            .iter()
            .enumerate()
            .filter(|(_, o)| o.allocs > 0 || o.max_live > 0)
            .map(|(i, o)| AttributionRow {
                site: o.site as usize,
                rule: o.rule.clone(),
                source: o.source,
                category: o.category,
                frame: o.frame.clone(),
                allocations: o.allocs,
                bytes_allocated: o.bytes,
                max_live_bytes: o.max_live,
                bytes_at_peak: overall_snap.get(i).copied().unwrap_or(0),
                bytes_leaked: o.leaked,
            })
            .collect();
        attribution.sort_by(|a, b| b.max_live_bytes.cmp(&a.max_live_bytes).then(a.site.cmp(&b.site)).then(a.rule.cmp(&b.rule)));
        attribution
    }

    /// The runners' buffer lines and the allocation each matched.
    fn log_matches(&self) -> Vec<LogMatch> {
        self.fallbacks
            .logs()
            .iter()
            .map(|l| LogMatch {
                t_ns: l.b.t_ns,
                t_rel_ns: self.rel(l.b.t_ns),
                pid: l.b.pid,
                line: l.b.line.clone(),
                category: l.b.category,
                device: l.b.device,
                logged_bytes: (l.b.mib * 1048576.0).round() as u64,
                matched: l.matched.clone(),
            })
            .collect()
    }

    pub(super) fn rel(&self, t: u64) -> u64 {
        t.saturating_sub(self.start)
    }

    fn tl_point(&self, p: &Point) -> TimelinePoint {
        TimelinePoint {
            t_ns: p.t,
            t_rel_ns: self.rel(p.t),
            total_bytes: p.total,
            by_category: Categories::from_array(&p.cat),
            vmm_reserved_bytes: p.vmm_reserved,
            vmm_mapped_bytes: p.vmm_mapped,
            pool_retained_bytes: p.pool_retained,
            bfc: p.bfc,
        }
    }

    fn peak_report(&self, si: usize) -> Peak {
        let s = &self.scopes[si];
        let pk = &s.peak;
        let mut top: Vec<SiteBytes> = pk
            .snap_origins
            .iter()
            .enumerate()
            .filter(|(_, &b)| b > 0)
            .map(|(o, &b)| {
                let oi = &self.intern.origins[o];
                SiteBytes { site: oi.site as usize, rule: oi.rule.clone(), category: oi.category, bytes: b }
            })
            .collect();
        top.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.site.cmp(&b.site)));
        top.truncate(self.opts.top_sites);
        let by_process = pk
            .snap_procs
            .iter()
            .enumerate()
            .filter(|(_, &b)| b > 0)
            .map(|(p, &b)| PidBytes { pid: self.procs[p].pid, bytes: b })
            .collect();
        Peak {
            t_ns: pk.p.t,
            t_rel_ns: self.rel(pk.p.t),
            total_bytes: pk.p.total,
            by_category: Categories::from_array(&pk.p.cat),
            top_sites: top,
            by_process,
            vmm_reserved_bytes: pk.p.vmm_reserved,
            vmm_mapped_bytes: pk.p.vmm_mapped,
            pool_retained_bytes: pk.p.pool_retained,
            rounding_waste_bytes: pk.waste,
        }
    }


    fn device_report(&self, loaded: &Loaded, dev: i32, si: usize) -> DeviceReport {
        let s = &self.scopes[si];
        let peak = self.peak_report(si);
        let gpu = loaded.traces.iter().flat_map(|t| &t.gpus).find(|g| g.ordinal == dev);
        let (capacity, capacity_source) = self.capacity(si, gpu);
        DeviceReport {
            device: dev,
            address_map: self.address_map(dev),
            name: gpu.map(|g| g.name.clone()).filter(|n| !n.is_empty()),
            driver_version: gpu.filter(|g| g.driver_version > 0).map(|g| format!("{}.{}", g.driver_version / 1000, g.driver_version % 1000 / 10)),
            uuid: gpu.filter(|g| g.uuid != [0; 16]).map(|g| {
                let h: String = g.uuid.iter().map(|b| format!("{b:02x}")).collect();
                format!("GPU-{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
            }),
            capacity_bytes: capacity,
            capacity_source: capacity_source.into(),
            fragmentation: Fragmentation {
                vmm_reserved_peak_bytes: s.vmm_reserved_peak,
                vmm_mapped_peak_bytes: s.vmm_mapped_peak,
                pool_retained_peak_bytes: s.pool_retained_peak.0,
                pool_retained_peak_t_ns: s.pool_retained_peak.1,
                bfc_max: s.bfc_max.0,
                bfc_max_t_ns: s.bfc_max.1,
                bfc_at_peak: s.peak.p.bfc,
                rounding_waste_at_peak_bytes: s.peak.waste,
                pools: self.pool_reports(dev),
            },
            reconciliation: Reconciliation {
                readings: s.rec.readings,
                samples: s.rec.samples.clone(),
                runtime_last_bytes: s.rec.last,
                runtime_min_bytes: if s.rec.readings > 0 { s.rec.min } else { 0 },
                runtime_max_bytes: s.rec.max,
                traced_exceeds_used: s.rec.exceeds,
            },
            processes: s
                .proc_peak
                .iter()
                .enumerate()
                .filter(|(_, &b)| b > 0)
                .map(|(p, &b)| ProcessShare { pid: self.procs[p].pid, peak_bytes: b, bytes_at_device_peak: s.peak.snap_procs.get(p).copied().unwrap_or(0) })
                .collect(),
            timeline: s.tl.out.iter().map(|p| self.tl_point(p)).collect(),
            live_at_end: Categories::from_array(&s.cat),
            peak,
        }
    }
}

/// Per rule, the totals of the origins it decided, by bytes allocated.
fn rule_uses(attribution: &[AttributionRow]) -> Vec<RuleUse> {
    let mut rules: BTreeMap<String, RuleUse> = BTreeMap::new();
    for a in attribution {
        let r = rules.entry(a.rule.clone()).or_insert(RuleUse {
            rule: a.rule.clone(),
            source: a.source,
            category: a.category,
            allocations: 0,
            bytes_allocated: 0,
            bytes_at_peak: 0,
        });
        r.allocations += a.allocations;
        r.bytes_allocated = r.bytes_allocated.saturating_add(a.bytes_allocated);
        r.bytes_at_peak = r.bytes_at_peak.saturating_add(a.bytes_at_peak);
    }
    let mut rules: Vec<RuleUse> = rules.into_values().collect();
    rules.sort_by(|a, b| b.bytes_allocated.cmp(&a.bytes_allocated).then(a.rule.cmp(&b.rule)));
    rules
}
