//! One figure, one number: for the bundled sample (`samples/llama-sim`) and the viewer's test
//! reports, the terminal summary, report.html, summary.md and report.json show the same peak
//! (total and per category), never-freed totals and site counts, OOM count and verdicts, growth
//! slopes and predicted maximum context, and device labels.
//!
//! Each output is reduced to its visible text (tags, table pipes, emphasis and escapes dropped,
//! white space collapsed) and searched for the phrase that carries each figure, built from
//! report.json as read back.

mod common;
use common::*;
use std::path::Path;
use vramtrace_analyzer::{device_label, Category, Report};
use vramtrace_viewer::util::{fmt_bytes, pct, per_token, secs};
use vramtrace_viewer::{render_all, terminal_summary, words, RenderOptions};

/// The four outputs of one report, as a reader sees them.
struct Outputs {
    name: &'static str,
    terminal: String,
    html: String,
    md: String,
    json: Report,
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The page's text without its charts: tags become spaces, entities are decoded.
fn html_text(html: &str) -> String {
    let mut s = html.to_string();
    while let (Some(a), Some(b)) = (s.find("<svg"), s.find("</svg>")) {
        s.replace_range(a..b + "</svg>".len(), " ");
    }
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&");
    squash(&out)
}

/// Markdown as rendered text: swatches, table pipes, emphasis, code fences and escapes dropped.
fn md_text(md: &str) -> String {
    let mut s = md.to_string();
    while let Some(a) = s.find("$\\color{") {
        let b = s[a + 1..].find('$').map_or(s.len(), |b| a + b + 2);
        s.replace_range(a..b, " ");
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '|' => out.push(' '),
            '*' | '`' => {}
            c => out.push(c),
        }
    }
    squash(&out)
}

fn outputs(name: &'static str, r: &Report) -> Outputs {
    let dir = TempDir::new("consistency");
    let w = render_all(r, dir.path(), &RenderOptions { png: false, ..RenderOptions::default() }).unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Outputs {
        name,
        terminal: squash(&terminal_summary(r)),
        html: html_text(&read(&w.html)),
        md: md_text(&read(&w.markdown)),
        json: serde_json::from_str(&read(&w.json)).unwrap(),
    }
}

impl Outputs {
    /// `phrase` is in each of the named outputs.
    fn shows(&self, phrase: &str, terminal: bool, html: bool, md: bool) {
        for (on, what, text) in [(terminal, "terminal summary", &self.terminal), (html, "report.html", &self.html), (md, "summary.md", &self.md)] {
            if on {
                assert!(text.contains(phrase), "{}: {what} lacks {phrase:?}:\n{text}", self.name);
            }
        }
    }

    fn everywhere(&self, phrase: &str) {
        self.shows(phrase, true, true, true);
    }

    fn nowhere(&self, phrase: &str) {
        for (what, text) in [("terminal summary", &self.terminal), ("report.html", &self.html), ("summary.md", &self.md)] {
            assert!(!text.contains(phrase), "{}: {what} shows {phrase:?}", self.name);
        }
    }

    fn check(&self, rendered: &Report) {
        let r = &self.json;
        assert_eq!(r.summary, rendered.summary, "{}: report.json holds the summary the outputs rendered", self.name);

        // The peak, in total and per category (the terminal shows it per GPU: one GPU here).
        let total = fmt_bytes(r.peak.total_bytes);
        self.shows(&format!("peak {total}"), true, false, true);
        self.shows(&format!("Peak VRAM (all GPUs) {total} at {}", secs(r.peak.t_rel_ns)), false, true, false);
        self.shows(&format!("Peak VRAM: {total} at {}", secs(r.peak.t_rel_ns)), false, false, true);
        for (c, b) in r.peak.by_category.sorted().into_iter().filter(|&(c, _)| c != Category::HostPinned) {
            self.everywhere(&format!("{} {} {}", c.name(), fmt_bytes(b), pct(r.peak.by_category.share_pct(b))));
        }

        // Never freed: VRAM and pinned host memory apart, distinct call sites (checked against
        // the leaks themselves).
        let n = &r.summary.never_freed;
        assert_eq!(n.vram_bytes, r.leaks.iter().filter(|l| l.device.is_some()).map(|l| l.bytes).sum::<u64>(), "{}", self.name);
        assert_eq!(n.host_pinned_bytes, r.leaks.iter().filter(|l| l.device.is_none()).map(|l| l.bytes).sum::<u64>(), "{}", self.name);
        match words::never_freed(n) {
            Some(phrase) => {
                self.everywhere(&format!("Never freed by the program: {phrase}"));
                self.shows(&format!("VRAM never freed {} from {}", fmt_bytes(n.vram_bytes), words::count(n.vram_sites, "call site")), false, true, false);
            }
            None => self.nowhere("Never freed by the program"),
        }

        // Out-of-memory failures: how many, and each one's verdict and memory.
        if r.ooms.is_empty() {
            self.shows("No allocation failed.", false, true, false);
            self.shows("Out-of-memory failures: none", false, false, true);
        } else {
            self.shows(&format!("Out-of-memory failures: {}", r.ooms.len()), true, false, true);
            self.shows(&format!("Out-of-memory failures {}", r.ooms.len()), false, true, false);
        }
        for o in r.ooms.iter().take(5) {
            let (req, v, mem) = (fmt_bytes(o.requested_bytes), o.verdict.label(), o.memory_label());
            self.shows(&format!("pid {} {mem} {} {req}: {v}", o.pid, o.api), true, false, false);
            self.shows(&format!("{} of {req} at {} {v}", o.api, secs(o.t_rel_ns)), false, true, false);
            self.shows(&format!("pid {} · {mem} · result {}", o.pid, o.result), false, true, false);
            self.shows(&format!("{v}: {} of {req} failed at {} (pid {}, {mem}, result {})", o.api, secs(o.t_rel_ns), o.pid, o.result), false, false, true);
        }

        // Growth: the slopes in the analyzer's order, the prediction, the failing step.
        for g in &r.growth {
            let dev = device_label(g.device);
            self.shows(&format!("Growth per token, {dev} ({} points)", g.points.len()), true, false, false);
            self.shows(&format!("{dev} ({} points): total", g.points.len()), false, false, g.total_fit.is_some());
            self.shows(&format!("{dev} — {} points", g.points.len()), false, true, false);
            if let Some(f) = &g.total_fit {
                self.shows(&format!("total {}", words::slope(f)), true, false, true);
                self.shows(&format!("total {} {} {:.3}", per_token(f.slope_bytes_per_token), fmt_bytes(f.intercept_bytes.max(0.0) as u64), f.r2), false, true, false);
            }
            let mut at = [0usize; 3];
            for f in g.fits.iter().filter(|f| f.fit.grows()) {
                let named = format!("{} {}", f.category.name(), words::slope(&f.fit));
                self.shows(&named, true, false, true);
                let row = format!("{} {} {} {:.3}", f.category.name(), per_token(f.fit.slope_bytes_per_token), fmt_bytes(f.fit.intercept_bytes.max(0.0) as u64), f.fit.r2);
                self.shows(&row, false, true, false);
                // Steepest first in every output, as in report.json.
                for (i, (text, phrase)) in [(&self.terminal, &named), (&self.md, &named), (&self.html, &row)].into_iter().enumerate() {
                    let p = text.find(phrase.as_str()).unwrap();
                    assert!(p >= at[i], "{}: {} out of the analyzer's order", self.name, f.category);
                    at[i] = p;
                }
            }
            if let Some(t) = g.predicted_max_tokens {
                let phrase = words::predicted_oom(t);
                self.shows(&phrase, true, true, false);
                self.shows(&words::sentence(&phrase), false, false, true);
            }
            if let Some(o) = &g.oom {
                let phrase = words::growth_oom(o);
                self.shows(&phrase, true, true, false);
                self.shows(&words::sentence(&phrase), false, false, true);
            }
        }

        // Device labels: one per ordinal, the same everywhere; no other spelling.
        for d in r.devices.iter().filter(|d| d.peak.total_bytes > 0) {
            let label = device_label(d.device);
            self.shows(&format!("{label}: peak {}", fmt_bytes(d.peak.total_bytes)), true, false, false);
            self.shows(&format!("{label} {}", d.name.as_deref().unwrap_or("capacity")), false, false, true);
            self.shows(&format!("{label} {}", d.capacity_bytes.map(fmt_bytes).unwrap_or_else(|| "unknown".into())), false, true, false);
        }
        for wrong in ["GPU ?", "GPU -1", "EXHAUSTED", "call site(s)"] {
            self.nowhere(wrong);
        }
    }
}

fn sample_report() -> Report {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/llama-sim");
    let loaded = vramtrace_analyzer::load(&[sample]).expect("the bundled sample loads");
    vramtrace_analyzer::analyze(&loaded, &vramtrace_analyzer::Options::default())
}

/// The fixed report with its one GPU moved to ordinal -1 (a device the shim could not tell).
fn unknown_device_report() -> Report {
    let mut r = fixed_report();
    r.devices[0].device = -1;
    r.ooms[0].device = -1;
    r.growth[0].device = -1;
    for l in r.leaks.iter_mut() {
        l.device = Some(-1);
    }
    r
}

#[test]
fn bundled_sample_shows_one_figure_per_fact() {
    let r = sample_report();
    // What made the outputs disagree: pinned host memory never freed beside the VRAM.
    assert!(r.summary.never_freed.host_pinned_bytes > 0 && r.summary.never_freed.vram_sites == 5, "{:?}", r.summary);
    let o = outputs("llama-sim", &r);
    o.check(&r);
    o.everywhere("Never freed by the program: 5.55 GiB of VRAM from 5 call sites; 16.00 MiB of pinned host memory from 1 call site");
    o.nowhere("5.57 GiB");
}

#[test]
fn test_reports_show_one_figure_per_fact() {
    let dir = TempDir::new("consistency-trace");
    for (name, r) in [("fixed", fixed_report()), ("analyzed", analyzed_report(dir.path())), ("unknown device", unknown_device_report())] {
        outputs(name, &r).check(&r);
    }
}

#[test]
fn an_unknown_device_has_one_label_everywhere() {
    let r = unknown_device_report();
    let o = outputs("unknown device", &r);
    o.shows("unknown GPU: peak", true, false, false);
    o.shows("Growth per token, unknown GPU", true, false, false);
    o.shows("(pid 4242, unknown GPU, result 2)", false, false, true);
    o.shows("Live VRAM over time by category — unknown GPU", false, true, false);
    o.shows("Growth (unknown GPU)", false, true, false);
}
