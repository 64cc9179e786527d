//! Markers, steps and growth per token. A tokens marker (`tokens`, `n_tokens`,
//! `prompt_tokens`) either closes the step a `step_start`/`request_start` marker opened, or
//! announces the step that follows it; each GPU gets one sample per completed step (its peak
//! during the step), none for a step in which an allocation failed for lack of memory, which
//! is named as the OOM step instead. `request_failed` ends an open step without a sample.

use super::{Engine, ALL, HOST};
use crate::attribute::Category;
use crate::report::*;

/// At most this many markers are listed in the report; the rest are counted.
const MAX_MARKERS: usize = 10_000;
const GROWTH_LABELS: [&str; 3] = ["tokens", "n_tokens", "prompt_tokens"];
/// Markers that open a step whose token count a later tokens marker gives.
const STEP_START_LABELS: [&str; 2] = ["step_start", "request_start"];
/// Ends an open step without a sample (the request failed); its value is the token count the
/// step was for, named as the OOM step if an allocation failed for lack of memory during it.
const STEP_FAILED_LABEL: &str = "request_failed";

/// A GPU's first out-of-memory failure, and the step it happened in.
pub(super) struct GrowthOomState {
    pub t: u64,
    pub step: Option<i64>,
    pub last_done: Option<i64>,
    /// The failure happened after a step-start marker: the closing tokens marker names the step.
    pub awaiting_close: bool,
}

#[derive(Default)]
pub(super) struct Steps {
    /// A tokens marker announcing the step that follows it: (time, tokens).
    pub open: Option<(u64, i64)>,
    /// A step-start marker whose tokens marker has not come yet.
    pub start: Option<u64>,
    /// Tokens of the last step completed without an out-of-memory failure.
    pub last_done: Option<i64>,
    pub markers: Vec<MarkerReport>,
    pub markers_dropped: u64,
    /// The growth labels the markers used.
    pub labels: std::collections::BTreeSet<&'static str>,
}

impl Engine<'_> {
    /// A marker of trace `file` (`None`: of a side file).
    pub(super) fn on_marker(&mut self, t_ns: u64, file: Option<usize>, label: &str, value: i64) {
        self.now = self.now.max(t_ns);
        let t = self.now;
        if self.steps.markers.len() < MAX_MARKERS {
            self.steps.markers.push(MarkerReport {
                t_ns,
                t_rel_ns: t_ns.saturating_sub(self.start),
                pid: file.map(|fi| self.procs[fi].pid),
                label: label.to_string(),
                value,
                source: if file.is_some() { "trace" } else { "sidecar" }.into(),
            });
        } else {
            self.steps.markers_dropped += 1;
        }
        if let Some(&l) = GROWTH_LABELS.iter().find(|&&l| l == label) {
            self.steps.labels.insert(l);
            if self.steps.start.take().is_some() {
                // step_start … tokens: the marker closes the step it names.
                self.close_growth(t, value);
            } else {
                // A tokens marker alone announces the step that follows it (how a runner marks
                // a batch before decoding it); it runs until the next growth marker.
                if let Some((t0, tok)) = self.steps.open.take() {
                    self.close_growth(t0, tok);
                }
                self.steps.open = Some((t, value));
                self.open_growth();
            }
        } else if label == STEP_FAILED_LABEL {
            if self.steps.start.take().is_some() {
                self.fail_step(value);
            }
        } else if STEP_START_LABELS.contains(&label) {
            if let Some((t0, tok)) = self.steps.open.take() {
                self.close_growth(t0, tok);
            }
            self.steps.start = Some(t);
            self.open_growth();
        } else {
            self.fallbacks.on_marker(file, label, value);
        }
    }

    /// A step that failed (`request_failed`) for `tokens`: no sample; named as the OOM step
    /// where an allocation failed for lack of memory during it.
    fn fail_step(&mut self, tokens: i64) {
        for s in self.scopes.iter_mut().filter(|s| s.dev != HOST && s.dev != ALL) {
            if s.interval_failed {
                if let Some(o) = s.growth_oom.as_mut().filter(|o| o.awaiting_close) {
                    o.step = Some(tokens);
                    o.awaiting_close = false;
                }
            }
            s.interval_failed = false;
        }
    }

    /// The OOM state of a GPU's first out-of-memory failure at `t`, in the current step.
    pub(super) fn growth_oom_at(&self, t: u64) -> GrowthOomState {
        GrowthOomState { t, step: self.steps.open.map(|g| g.1), last_done: self.steps.last_done, awaiting_close: self.steps.start.is_some() }
    }


    pub(super) fn open_growth(&mut self) {
        for s in self.scopes.iter_mut().filter(|s| s.dev != HOST && s.dev != ALL) {
            s.interval = (s.total, s.cat);
            s.interval_failed = false;
        }
    }

    /// Ends a growth step: each GPU gets a sample (its peak during the step) unless an
    /// allocation failed for lack of memory during it.
    pub(super) fn close_growth(&mut self, t: u64, tokens: i64) {
        let mut any_failed = false;
        for s in self.scopes.iter_mut().filter(|s| s.dev != HOST && s.dev != ALL) {
            if s.interval_failed {
                any_failed = true;
                if let Some(o) = s.growth_oom.as_mut().filter(|o| o.awaiting_close) {
                    o.step = Some(tokens);
                    o.awaiting_close = false;
                }
            } else {
                s.growth.push((t, tokens, s.interval.0, s.interval.1));
            }
            s.interval_failed = false;
        }
        if !any_failed {
            self.steps.last_done = Some(tokens);
        }
    }

    pub(super) fn growth_report(&self, dev: i32, si: usize) -> Option<GrowthReport> {
        let s = &self.scopes[si];
        if s.growth.is_empty() && s.growth_oom.is_none() {
            return None;
        }
        let labels = self.steps.labels.iter().map(|l| l.to_string()).collect();
        let points: Vec<GrowthPoint> = s
            .growth
            .iter()
            .map(|&(t, tokens, total, cat)| GrowthPoint { t_ns: t, t_rel_ns: self.rel(t), tokens, total_bytes: total, by_category: Categories::from_array(&cat) })
            .collect();
        let xs: Vec<f64> = points.iter().map(|p| p.tokens as f64).collect();
        let mut fits = Vec::new();
        for c in Category::ALL {
            if c == Category::HostPinned || points.iter().all(|p| p.by_category.get(c) == 0) {
                continue;
            }
            let ys: Vec<f64> = points.iter().map(|p| p.by_category.get(c) as f64).collect();
            if let Some(fit) = crate::growth::fit(&xs, &ys) {
                fits.push(CategoryFit { category: c, fit });
            }
        }
        let ys: Vec<f64> = points.iter().map(|p| p.total_bytes as f64).collect();
        let total_fit = crate::growth::fit(&xs, &ys);
        let capacity = self.opts.vram.or(s.capacity);
        let predicted_max_tokens = match (&total_fit, capacity) {
            (Some(f), Some(cap)) => crate::growth::predict_max_tokens(f, cap),
            _ => None,
        };
        let oom = s.growth_oom.as_ref().map(|o| GrowthOom {
            t_ns: o.t,
            t_rel_ns: self.rel(o.t),
            step_tokens: o.step,
            last_completed_tokens: o.last_done,
        });
        Some(GrowthReport {
            device: dev,
            labels,
            points,
            fits,
            total_fit,
            capacity_bytes: capacity,
            predicted_max_tokens,
            runtime_included: s.rec.readings > 0,
            oom,
        })
    }
}
