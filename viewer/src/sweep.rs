//! What `vramtrace sweep` prints: the per-step table, and the growth per token with its fits,
//! the predicted maximum context and the step an out-of-memory failure happened in. The fits
//! and the prediction are the analyzer's (its order: steepest first); the only thing matched
//! here is which of the sweep's own request windows holds the failure's time.

use crate::util::{fmt_bytes, per_token};
use crate::words;
use vramtrace_analyzer::{device_label, Fit, Report};

/// One request of the sweep, as the sweep recorded it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepStep {
    /// 1-based.
    pub index: usize,
    /// The prompt length asked for.
    pub target: u64,
    /// `usage.prompt_tokens` of the answer.
    pub prompt_tokens: Option<u64>,
    /// The step's token count: the server's answer, else its /tokenize count.
    pub tokens: Option<u64>,
    pub seconds: f64,
    /// The request was answered with a token count.
    pub completed: bool,
    /// One line: `ok`, or what went wrong.
    pub result: String,
    /// The request's window on the traces' clock (its two markers).
    pub t_start_ns: u64,
    pub t_end_ns: u64,
}

impl SweepStep {
    fn holds(&self, t_ns: u64) -> bool {
        (self.t_start_ns..=self.t_end_ns.max(self.t_start_ns)).contains(&t_ns)
    }
}

/// The per-step table: `planned` steps were planned against `url`, `steps` ran.
pub fn steps_table(url: &str, planned: usize, steps: &[SweepStep]) -> String {
    let done = steps.iter().filter(|s| s.completed).count();
    let mut o = format!("sweep: {done} of {planned} step(s) completed against {url}\n");
    o.push_str(&format!("  {:>4}  {:>8}  {:>13}  {:>8}  result\n", "step", "target", "prompt_tokens", "seconds"));
    for s in steps {
        let n = s.prompt_tokens.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        o.push_str(&format!("  {:>4}  {:>8}  {:>13}  {:>8.2}  {}\n", s.index, s.target, n, s.seconds, s.result));
    }
    if steps.len() < planned {
        o.push_str(&format!("  steps {}..{planned} not run: the sweep stopped at step {}\n", steps.len() + 1, steps.len()));
    }
    o
}

fn fit_row(name: &str, f: &Fit) -> String {
    let human = if f.slope_bytes_per_token.abs() >= 1024.0 { format!("({})", per_token(f.slope_bytes_per_token)) } else { String::new() };
    format!("  {:<16} {:>14.1} {:>18} {:>8.4} {:>14}\n", name, f.slope_bytes_per_token, human, f.r2, fmt_bytes(f.intercept_bytes.max(0.0) as u64))
}

/// Slopes per category, the prediction, and the OOM's step, as text.
pub fn growth_summary(report: &Report, steps: &[SweepStep]) -> String {
    let mut o = String::new();
    if report.growth.is_empty() {
        o.push_str("growth: no completed step in the traces (no GPU allocation between the markers?)\n");
        return o;
    }
    for g in &report.growth {
        let (lo, hi) = (g.points.iter().map(|p| p.tokens).min().unwrap_or(0), g.points.iter().map(|p| p.tokens).max().unwrap_or(0));
        o.push_str(&format!("growth per token, {} ({} point(s), {lo}..{hi} tokens):\n", device_label(g.device), g.points.len()));
        o.push_str(&format!("  {:<16} {:>14} {:>18} {:>8} {:>14}\n", "category", "bytes/token", "", "R²", "at 0 tokens"));
        for f in &g.fits {
            o.push_str(&fit_row(f.category.name(), &f.fit));
        }
        if let Some(t) = &g.total_fit {
            o.push_str(&fit_row("total", t));
        }
        if g.points.len() < 2 {
            o.push_str("  (a fit needs at least two completed steps of different lengths)\n");
        }
        let source = report.devices.iter().find(|d| d.device == g.device).map(|d| d.capacity_source.as_str()).unwrap_or("unknown");
        let runtime = if g.runtime_included { "runtime overhead included".to_string() } else { words::runtime_not_included() };
        match (g.predicted_max_tokens, g.capacity_bytes) {
            (Some(0), Some(cap)) => o.push_str(&format!("  predicted max context: none on {}: {} (capacity from {source}; {runtime})\n", fmt_bytes(cap), words::NO_CONTEXT_FITS)),
            (Some(t), Some(cap)) => o.push_str(&format!("  predicted max context: {t} tokens on {} (capacity from {source}; {runtime})\n", fmt_bytes(cap))),
            (None, None) => o.push_str("  predicted max context: unknown (no device capacity: pass --vram)\n"),
            (None, Some(_)) => o.push_str("  predicted max context: none (memory does not grow with the prompt)\n"),
            (Some(t), None) => o.push_str(&format!("  predicted max context: {t} tokens\n")),
        }
        if let Some(oom) = &g.oom {
            // The sweep's own request windows name the step even when no marker closed it.
            match steps.iter().find(|s| s.holds(oom.t_ns)) {
                Some(s) => {
                    let last = oom.last_completed_tokens.map(|t| format!("; last completed step: {t} tokens")).unwrap_or_default();
                    o.push_str(&format!("  out of memory during step {} ({} tokens){last}\n", s.index, s.tokens.unwrap_or(s.target)));
                }
                None => o.push_str(&format!("  out of memory: {}\n", words::growth_oom(oom))),
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use vramtrace_analyzer::{Category, CategoryFit, GrowthOom, GrowthReport};

    fn step(index: usize, tokens: u64, t: u64) -> SweepStep {
        SweepStep { index, target: tokens, prompt_tokens: Some(tokens), tokens: Some(tokens), seconds: 0.5, completed: true, result: "ok".into(), t_start_ns: t, t_end_ns: t + 10 }
    }

    #[test]
    fn table_and_growth_name_the_failing_step() {
        let mut failed = step(3, 4096, 300);
        (failed.completed, failed.prompt_tokens, failed.result) = (false, None, "HTTP 500: out of memory".into());
        let steps = [step(1, 1024, 100), step(2, 2048, 200), failed];
        let t = steps_table("http://127.0.0.1:8080", 4, &steps);
        assert!(t.starts_with("sweep: 2 of 4 step(s) completed against http://127.0.0.1:8080\n"), "{t}");
        assert!(t.contains("     3      4096              -      0.50  HTTP 500: out of memory\n"), "{t}");
        assert!(t.contains("steps 4..4 not run: the sweep stopped at step 3"), "{t}");

        let fit = |category, slope| CategoryFit { category, fit: Fit { intercept_bytes: 1e9, slope_bytes_per_token: slope, r2: 1.0 } };
        let g = GrowthReport {
            device: 0,
            fits: vec![fit(Category::ScratchPool, 32768.0), fit(Category::Weights, 0.0)],
            capacity_bytes: Some(8 << 30),
            predicted_max_tokens: Some(78752),
            runtime_included: true,
            oom: Some(GrowthOom { t_ns: 305, t_rel_ns: 305, step_tokens: None, last_completed_tokens: Some(2048) }),
            ..GrowthReport::default()
        };
        let r = Report { growth: vec![g], ..Report::default() };
        let s = growth_summary(&r, &steps);
        assert!(s.contains("growth per token, GPU 0 (0 point(s)"), "{s}");
        assert!(s.contains("scratch_pool            32768.0   (32.0 KiB/token)"), "{s}");
        assert!(s.find("scratch_pool").unwrap() < s.find("weights").unwrap(), "the analyzer's order, steepest first");
        assert!(s.contains("predicted max context: 78752 tokens on 8.00 GiB (capacity from unknown; runtime overhead included)"), "{s}");
        assert!(s.contains("out of memory during step 3 (4096 tokens); last completed step: 2048 tokens"), "{s}");
        let s = growth_summary(&r, &[]);
        assert!(s.contains("out of memory: an allocation failed outside any step"), "{s}");
    }
}
