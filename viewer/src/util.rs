//! Small formatting helpers shared by every output: units, times, counts, call-site labels,
//! shell quoting, and the characters the embedded chart font can draw.

use vramtrace_analyzer::Report;

pub use vramtrace_analyzer::fmt_bytes;

const KIB: f64 = 1024.0;

/// A binary byte unit picked from the data, so axes read "12 GiB", not "12884901888".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ByteUnit {
    pub name: &'static str,
    pub div: f64,
}

impl ByteUnit {
    /// The largest unit in which `max_bytes` is at least 1 (B, KiB, MiB, GiB, TiB).
    pub fn for_max(max_bytes: f64) -> ByteUnit {
        const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut i = 0;
        let mut div = 1.0;
        while i < U.len() - 1 && max_bytes >= div * KIB {
            div *= KIB;
            i += 1;
        }
        ByteUnit { name: U[i], div }
    }

    pub fn v(&self, bytes: f64) -> f64 {
        bytes / self.div
    }
}

/// A time unit for the x axis of timelines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeUnit {
    pub name: &'static str,
    pub div: f64,
}

impl TimeUnit {
    pub fn for_span(span_ns: u64) -> TimeUnit {
        if span_ns < 2_000_000_000 {
            TimeUnit { name: "ms", div: 1e6 }
        } else if span_ns < 600_000_000_000 {
            TimeUnit { name: "s", div: 1e9 }
        } else {
            TimeUnit { name: "min", div: 60e9 }
        }
    }

    pub fn v(&self, ns: u64) -> f64 {
        ns as f64 / self.div
    }
}

/// Seconds with milliseconds, the time format of every table.
pub fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// Integer with thousands separators (`12,345`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A percentage the analyzer computed (`Categories::share_pct`…), one decimal; `–` for none.
pub fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "–".into(), |p| format!("{p:.1}%"))
}

/// Bytes per token, in the unit that keeps the number readable (`34.0 KiB/token`).
pub fn per_token(bytes_per_token: f64) -> String {
    let sign = if bytes_per_token < 0.0 { "−" } else { "" };
    let b = bytes_per_token.abs();
    let u = ByteUnit::for_max(b);
    if u.div == 1.0 {
        format!("{sign}{b:.0} B/token")
    } else {
        format!("{sign}{:.1} {}/token", u.v(b), u.name)
    }
}

/// Cuts `s` to `n` characters with an ellipsis.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// The function part of a displayed frame (`func (file:line) [module+0xoff]` → `func`).
pub fn frame_function(frame: &str) -> &str {
    let end = [frame.find(" ("), frame.find(" [")].into_iter().flatten().min().unwrap_or(frame.len());
    frame[..end].trim()
}

/// A displayed frame for a narrow column: a Python frame's path (`/srv/app/vllm/v1/worker/
/// gpu_model_runner.py:84 in GPUModelRunner._dummy_run`) keeps its last three components, so
/// the function stays visible; a native frame is left as it is.
pub fn short_frame(frame: &str) -> String {
    let Some((path, rest)) = frame.split_once(".py:").filter(|(_, rest)| rest.contains(" in ")) else { return frame.to_string() };
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() <= 3 {
        return frame.to_string();
    }
    format!("…/{}.py:{rest}", parts[parts.len() - 3..].join("/"))
}

/// A short description of a call site: the frame the rule matched when there is one (that is
/// the frame that explains the category), else the innermost frame, else the site key.
pub fn site_label(r: &Report, site: usize, rule: &str) -> String {
    let decided = r.attribution.iter().find(|a| a.site == site && a.rule == rule).and_then(|a| a.frame.clone());
    let s = r.sites.iter().find(|s| s.id == site).or_else(|| r.sites.get(site));
    label_of(decided, s.map_or(&[], |s| s.frames.as_slice()), s.map_or("", |s| s.key.as_str())).unwrap_or_else(|| format!("site {site}"))
}

/// [`site_label`] of a live view's site.
pub fn live_site_label(s: &vramtrace_analyzer::live::LiveSite) -> String {
    label_of(s.frame.clone(), &s.frames, &s.key).unwrap_or_else(|| "(no stack)".into())
}

fn label_of(decided: Option<String>, frames: &[String], key: &str) -> Option<String> {
    decided.or_else(|| frames.first().cloned()).or_else(|| Some(key.to_string()).filter(|k| !k.is_empty()))
}

/// For sites listed together whose labels (`site_label`) are the same, the innermost frame that
/// tells each apart from the others (a Python framework decides many sites by one high frame,
/// `GPUModelRunner.execute_model`, and two identical lines would read as one site twice); `None`
/// for a label that is not repeated or a stack that has nothing of its own.
pub fn distinguishing_frames(r: &Report, rows: &[(usize, &str)]) -> Vec<Option<String>> {
    let labels: Vec<String> = rows.iter().map(|&(site, rule)| site_label(r, site, rule)).collect();
    rows.iter()
        .zip(&labels)
        .map(|(&(site, _), label)| {
            let others: Vec<&[String]> = rows.iter().zip(&labels).filter(|((s, _), l)| *s != site && *l == label).map(|((s, _), _)| site_frames(r, *s)).collect();
            if others.is_empty() {
                return None;
            }
            let own = site_frames(r, site);
            let unique = own.iter().find(|f| others.iter().all(|o| !o.contains(f)));
            let differing = own.iter().find(|f| others.iter().any(|o| !o.contains(f)));
            unique.or(differing).map(|f| short_frame(frame_function(f)))
        })
        .collect()
}

/// The frames of a site, innermost first (empty when unknown).
pub fn site_frames(r: &Report, site: usize) -> &[String] {
    r.sites.iter().find(|s| s.id == site).or_else(|| r.sites.get(site)).map(|s| s.frames.as_slice()).unwrap_or(&[])
}

/// Quotes one argument for a POSIX shell when it needs it.
pub fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"_./:=,@+-%".contains(&b));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

pub fn shell_join(args: &[String]) -> String {
    args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

/// `vramtrace run -- <command line of the root process>`, the default reproduce line, every
/// argument quoted for a POSIX shell where it needs it.
pub fn default_repro(r: &Report) -> String {
    match r.root_process() {
        Some(p) if !p.cmdline.is_empty() => format!("vramtrace run -- {}", shell_join(&p.cmdline)),
        Some(p) if !p.exe.is_empty() => format!("vramtrace run -- {}", shell_quote(&p.exe)),
        _ => "vramtrace run -- <command>".to_string(),
    }
}

/// Characters the embedded PNG font has (see assets/README.md); others would draw as boxes.
pub fn font_has(c: char) -> bool {
    matches!(c as u32,
        0x20..=0x7E | 0xA0..=0x17F | 0x2010..=0x2027 | 0x2030..=0x203A | 0x2190..=0x2193
        | 0x2212 | 0x2248 | 0x2260 | 0x2264 | 0x2265 | 0x221E | 0x25A0 | 0x25B2 | 0x25BC
        | 0x25C6 | 0x25CF | 0x2715 | 0x2713 | 0xFFFD)
}

/// Replaces characters the embedded font lacks with `?`, and control characters with spaces.
pub fn font_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else if font_has(c) { c } else { '?' }).collect()
}

#[cfg(test)]
mod short_frame_tests {
    use vramtrace_analyzer::{AttributionRow, Category, Report, RuleSource, Site};

    #[test]
    fn repeated_labels_get_the_frame_that_tells_them_apart() {
        let decided = "/x/vllm/v1/worker/gpu_model_runner.py:209 in GPUModelRunner.sample_tokens";
        let site = |id: usize, inner: &str| Site { id, key: String::new(), frames: vec!["alloc".into(), inner.into(), decided.into()] };
        let sites = vec![site(0, "/x/vllm/model_executor/models/llama.py:96 in LlamaForCausalLM.compute_logits"), site(1, "/x/vllm/v1/worker/gpu_model_runner.py:222 in GPUModelRunner._get_prompt_logprobs_dict"), Site { id: 2, key: String::new(), frames: vec!["other".into()] }];
        let mut r = Report { sites, ..Report::default() };
        for id in 0..2 {
            let rule = "builtin:vllm.compute".into();
            r.attribution.push(AttributionRow { site: id, rule, source: RuleSource::Builtin, category: Category::Compute, frame: Some(decided.into()), allocations: 1, bytes_allocated: 1, max_live_bytes: 1, bytes_at_peak: 1, bytes_leaked: 0 });
        }
        let rows = [(0, "builtin:vllm.compute"), (1, "builtin:vllm.compute"), (2, "builtin:other")];
        let via = super::distinguishing_frames(&r, &rows);
        assert_eq!(via[0].as_deref(), Some("…/model_executor/models/llama.py:96 in LlamaForCausalLM.compute_logits"));
        assert_eq!(via[1].as_deref(), Some("…/v1/worker/gpu_model_runner.py:222 in GPUModelRunner._get_prompt_logprobs_dict"));
        assert_eq!(via[2], None);
    }

    #[test]
    fn python_paths_are_shortened_native_frames_kept() {
        let py = "/srv/app/site-packages/vllm/v1/worker/gpu_model_runner.py:84 in GPUModelRunner._dummy_run";
        assert_eq!(super::short_frame(py), "…/v1/worker/gpu_model_runner.py:84 in GPUModelRunner._dummy_run");
        let native = "ggml_cuda_pool_vmm::alloc (ggml-cuda.cu:100) [libggml-cuda.so+0x1234]";
        assert_eq!(super::short_frame(native), native);
    }
}
