//! `report.html`: one self-contained page — inline SVG charts, inline CSS, no script, no font
//! or image fetched from anywhere — so it can be attached to an issue, mailed, or opened from a
//! CI artifact offline. Laid out for a laptop screen (max-width column, 15 px text, tables that
//! scroll sideways instead of overflowing).
//!
//! Everything that came from the trace (command lines, paths, symbols, log lines) goes through
//! [`html_escape`]. Long tables are cut at `RenderOptions::max_table_rows`; the rest stay in
//! report.json.

use crate::colors::{category_hex, VRAM_CATEGORIES};
use crate::render::{RenderOptions, RenderedChart};
use crate::util::{clip, fmt_bytes, frame_function, html_escape as esc, pct, per_token, root_process, secs, shell_join, site_frames, site_label, thousands};
use std::fmt::Write;
use vramtrace_analyzer::{Categories, Category, LeakKind, Report, Verdict};

pub(crate) const CSS: &str = r#"
:root{--fg:#1d1f23;--muted:#5f6368;--line:#dde1e6;--soft:#f6f8fa;--bad:#b00020;--ok:#1e7e34;--warn:#a15c00}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#fff;color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:26px;margin:0 0 4px;line-height:1.25}
h2{font-size:21px;margin:40px 0 10px;padding-bottom:5px;border-bottom:2px solid var(--line)}
h3{font-size:17px;margin:24px 0 8px}
p{margin:6px 0 10px}
.muted{color:var(--muted)}
nav{margin:14px 0 6px;font-size:14px;line-height:1.9}
nav a{margin-right:14px;color:#1a5fb4;text-decoration:none;white-space:nowrap}
nav a:hover{text-decoration:underline}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
tbody tr:nth-child(even){background:#fbfbfc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.n,.nw{white-space:nowrap}
.loc{color:var(--muted);font-size:12px}
table.kv th{background:none;text-align:left;color:var(--muted);font-weight:500;width:1%}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px;overflow-wrap:anywhere}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:7px;border:1px solid rgba(0,0,0,.15)}
figure{margin:14px 0 26px}
figure svg{display:block;width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--muted);font-size:13px;margin-top:5px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:12px;margin:16px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fff}
.card .k{color:var(--muted);font-size:13px}
.card .v{font-size:21px;font-weight:650;line-height:1.3}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;font-weight:600;color:#fff;vertical-align:1px}
.b-bad{background:var(--bad)}.b-ok{background:var(--ok)}.b-warn{background:var(--warn)}.b-info{background:#55606e}
.oom{border:1px solid var(--line);border-left:5px solid var(--bad);border-radius:6px;padding:4px 16px 8px;margin:14px 0}
details{margin:4px 0}
summary{cursor:pointer;color:#1a5fb4}
ol.frames{margin:4px 0 4px 18px;padding:0}
ol.frames li{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px;overflow-wrap:anywhere}
footer{margin-top:48px;color:var(--muted);font-size:13px;border-top:1px solid var(--line);padding-top:10px}
@media print{main{max-width:none}nav{display:none}}
"#;

/// The report page. `charts` are the rendered charts (their SVG is inlined).
pub fn html_report(r: &Report, charts: &[RenderedChart], opts: &RenderOptions) -> String {
    let mut h = Page { o: String::with_capacity(256 * 1024), max_rows: opts.max_table_rows.max(1) };
    let root = root_process(r);
    let exe_name = root.map(|p| p.exe.rsplit('/').next().unwrap_or(&p.exe).to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| "trace".into());

    h.o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // No network: forbid every fetch, so a stray reference cannot leak the page's existence.
    h.o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n");
    let _ = writeln!(h.o, "<title>vramtrace report — {}</title>", esc(&exe_name));
    let _ = writeln!(h.o, "<style>{CSS}</style>\n</head>\n<body>\n<main>");

    let _ = writeln!(h.o, "<h1>vramtrace report: {}</h1>", esc(&exe_name));
    if let Some(p) = root {
        if !p.cmdline.is_empty() {
            let _ = writeln!(h.o, "<p><code>{}</code></p>", esc(&shell_join(&p.cmdline)));
        }
    }
    nav(&mut h, r, charts);
    cards(&mut h, r);
    environment(&mut h, r);
    peak(&mut h, r, charts);
    timelines(&mut h, r, charts);
    ooms(&mut h, r);
    growth(&mut h, r, charts);
    fragmentation(&mut h, r, charts);
    top_sites(&mut h, r, charts);
    leaks(&mut h, r);
    anomalies(&mut h, r);
    attribution(&mut h, r);
    logs(&mut h, r);
    reconciliation(&mut h, r);
    warnings(&mut h, r);
    let _ = writeln!(
        h.o,
        "<footer>Generated by vramtrace {} (report schema {}). Every figure comes from the analyzer's report (report.json beside this file).</footer>",
        esc(&r.vramtrace_version),
        r.schema_version
    );
    h.o.push_str("</main>\n</body>\n</html>\n");
    h.o
}

struct Page {
    o: String,
    max_rows: usize,
}

impl Page {
    fn h2(&mut self, id: &str, title: &str) {
        let _ = writeln!(self.o, "<h2 id=\"{id}\">{}</h2>", esc(title));
    }
    fn p(&mut self, html: &str) {
        let _ = writeln!(self.o, "<p>{html}</p>");
    }
    /// "N more rows in report.json" after a cut table.
    fn more(&mut self, total: usize) {
        if total > self.max_rows {
            let _ = writeln!(self.o, "<p class=\"muted\">{} more rows not shown; see report.json.</p>", thousands((total - self.max_rows) as u64));
        }
    }
    fn figure(&mut self, rc: &RenderedChart) {
        let _ = writeln!(self.o, "<figure id=\"chart-{}\">", esc(&rc.chart.name));
        self.o.push_str(&inline_svg(&rc.svg, &rc.chart.title));
        let _ = writeln!(self.o, "<figcaption>{} — also as {}.svg / {}.png</figcaption>\n</figure>", esc(&rc.chart.title), esc(&rc.chart.name), esc(&rc.chart.name));
    }
}

/// Prepares a plotters SVG document for inlining: drops the XML prolog and the namespace
/// attribute (an inline `<svg>` in HTML needs neither, and the page then holds no URL at all)
/// and labels it for screen readers.
pub(crate) fn inline_svg(svg: &str, title: &str) -> String {
    let mut s = svg.trim_start();
    if s.starts_with("<?xml") {
        if let Some(i) = s.find("?>") {
            s = s[i + 2..].trim_start();
        }
    }
    let s = s.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    s.replacen("<svg ", &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(title)), 1) + "\n"
}

fn swatch(c: Category) -> String {
    format!("<span class=\"sw\" style=\"background:{}\"></span>", category_hex(c))
}

pub(crate) fn cat_cell(c: Category) -> String {
    format!("<span class=\"nw\">{}{}</span>", swatch(c), c.name())
}

/// A rule name: never broken inside (`builtin:llama.kv_cache_ctor`).
fn rule_cell(rule: &str) -> String {
    format!("<code class=\"nw\">{}</code>", esc(rule))
}

fn badge(kind: &str, text: &str) -> String {
    format!("<span class=\"badge b-{kind}\">{}</span>", esc(text))
}

pub(crate) fn verdict_badge(v: Verdict) -> String {
    match v {
        Verdict::Exhausted => badge("bad", "device full"),
        Verdict::PoolOrFragmentation => badge("warn", "pool or fragmentation"),
        Verdict::NotOutOfMemory => badge("info", "not out of memory"),
    }
}

/// The rule source as the report spells it (`builtin`, `user`…): read through serde so a source
/// the analyzer adds later still prints.
fn source_name(v: &vramtrace_analyzer::RuleSource) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn dev_name(d: i32) -> String {
    if d < 0 {
        "GPU ?".into()
    } else {
        format!("GPU {d}")
    }
}

fn charts_where<'a>(charts: &'a [RenderedChart], prefix: &str) -> impl Iterator<Item = &'a RenderedChart> {
    let prefix = prefix.to_string();
    charts.iter().filter(move |c| c.chart.name.starts_with(&prefix))
}

/// A site as HTML: the function that explains it (see `site_label`), its location in small
/// print, and the whole stack in a `<details>`.
fn site_html(r: &Report, site: usize, rule: &str) -> String {
    let label = site_label(r, site, rule);
    let frames = site_frames(r, site);
    let func = frame_function(&label);
    let mut s = format!("<code>{}</code>", esc(&clip(func, 160)));
    if func.len() < label.len() {
        let _ = write!(s, "<div class=\"loc\">{}</div>", esc(&clip(label[func.len()..].trim(), 160)));
    }
    if frames.len() > 1 || frames.first().is_some_and(|f| *f != label) {
        s.push_str("<details><summary>stack</summary><ol class=\"frames\">");
        for f in frames {
            let _ = write!(s, "<li>{}</li>", esc(f));
        }
        s.push_str("</ol></details>");
    }
    s
}

fn nav(h: &mut Page, r: &Report, charts: &[RenderedChart]) {
    let mut links = vec![("environment", "Environment"), ("peak", "Peak composition")];
    if charts.iter().any(|c| c.chart.name.starts_with("timeline-")) {
        links.push(("timeline", "VRAM over time"));
    }
    links.push(("ooms", "OOM post-mortems"));
    if !r.growth.is_empty() {
        links.push(("growth", "Growth per token"));
    }
    links.push(("fragmentation", "Fragmentation"));
    if !r.peak.top_sites.is_empty() {
        links.push(("sites", "Top call sites"));
    }
    links.extend([("leaks", "Leaks"), ("anomalies", "Anomalies"), ("attribution", "Attribution audit")]);
    if !r.log_lines.is_empty() {
        links.push(("logs", "Runner log"));
    }
    links.push(("reconciliation", "Driver readings"));
    if !r.warnings.is_empty() {
        links.push(("warnings", "Warnings"));
    }
    h.o.push_str("<nav>");
    for (id, t) in links {
        // A newline between links: the nav wraps there on narrow screens.
        let _ = writeln!(h.o, "<a href=\"#{id}\">{t}</a>");
    }
    h.o.push_str("</nav>\n");
}

fn cards(h: &mut Page, r: &Report) {
    h.o.push_str("<div class=\"cards\">\n");
    let card = |o: &mut String, k: &str, v: &str, sub: &str| {
        let _ = writeln!(o, "<div class=\"card\"><div class=\"k\">{k}</div><div class=\"v\">{v}</div><div class=\"muted\">{sub}</div></div>");
    };
    let cap: Vec<String> = r.devices.iter().filter_map(|d| d.capacity_bytes.map(|c| format!("{} of {}", dev_name(d.device), fmt_bytes(c)))).collect();
    card(&mut h.o, "Peak VRAM (all GPUs)", &fmt_bytes(r.peak.total_bytes), &format!("at {}{}", secs(r.peak.t_rel_ns), if cap.is_empty() { String::new() } else { format!(" · {}", esc(&cap.join(", "))) }));
    let oom_sub = match r.ooms.first() {
        Some(o) => format!("first: {} {}", esc(&o.api), verdict_badge(o.verdict)),
        None => "no failed allocation".into(),
    };
    card(&mut h.o, "Out-of-memory failures", &r.ooms.len().to_string(), &oom_sub);
    if let Some(g) = r.growth.iter().find(|g| g.total_fit.is_some()) {
        let f = g.total_fit.as_ref().unwrap();
        let sub = match g.predicted_max_tokens {
            Some(t) => format!("runs out at ≈ {} tokens", thousands(t)),
            None => format!("R² {:.3}", f.r2),
        };
        card(&mut h.o, &format!("Growth ({})", dev_name(g.device)), &esc(&per_token(f.slope_bytes_per_token)), &sub);
    }
    let leaked: u64 = r.leaks.iter().filter(|l| l.device.is_some()).map(|l| l.bytes).sum();
    card(&mut h.o, "VRAM never freed", &fmt_bytes(leaked), &format!("{} site(s)", r.leaks.iter().filter(|l| l.device.is_some()).count()));
    let anomalies: u64 = r.anomalies.iter().map(|a| a.count).sum();
    card(&mut h.o, "Anomalies", &thousands(anomalies), &format!("{} kind(s)", r.anomalies.len()));
    h.o.push_str("</div>\n");
}

fn environment(h: &mut Page, r: &Report) {
    h.h2("environment", "Environment");
    h.o.push_str("<div class=\"scroll\"><table class=\"kv\"><tbody>\n");
    let row = |o: &mut String, k: &str, v: String| {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    if let Some(p) = root_process(r) {
        row(&mut h.o, "command line", format!("<code>{}</code>", esc(&shell_join(&p.cmdline))));
        row(&mut h.o, "executable", format!("<code>{}</code>", esc(&p.exe)));
        if !p.hostname.is_empty() {
            row(&mut h.o, "host", esc(&p.hostname));
        }
    }
    row(&mut h.o, "vramtrace", format!("{} (report schema {})", esc(&r.vramtrace_version), r.schema_version));
    row(&mut h.o, "trace", format!("{}, {} events, {} markers{}", secs(r.duration_ns), thousands(r.events), thousands(r.markers.len() as u64 + r.markers_dropped), if r.markers_dropped > 0 { format!(" ({} not listed)", thousands(r.markers_dropped)) } else { String::new() }));
    for d in r.devices.iter().filter(|d| d.device >= 0) {
        let what = match (&d.name, &d.driver_version) {
            (None, None) => "<span class=\"muted\">not recorded in the trace</span>".to_string(),
            (n, v) => format!(
                "{}{}{}",
                esc(n.as_deref().unwrap_or("unknown GPU")),
                v.as_ref().map(|v| format!(", CUDA driver {}", esc(v))).unwrap_or_default(),
                d.uuid.as_ref().map(|u| format!(" <span class=\"muted\">{}</span>", esc(u))).unwrap_or_default()
            ),
        };
        row(&mut h.o, &format!("GPU {}", d.device), what);
    }
    h.o.push_str("</tbody></table></div>\n");

    if !r.devices.is_empty() {
        h.o.push_str("<h3>GPUs</h3><div class=\"scroll\"><table><thead><tr><th>device</th><th class=\"n\">capacity</th><th>capacity from</th><th class=\"n\">peak</th><th class=\"n\">at</th><th class=\"n\">live at end</th></tr></thead><tbody>\n");
        for d in &r.devices {
            let _ = writeln!(
                h.o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                dev_name(d.device),
                d.capacity_bytes.map(fmt_bytes).unwrap_or_else(|| "unknown".into()),
                esc(&d.capacity_source),
                fmt_bytes(d.peak.total_bytes),
                secs(d.peak.t_rel_ns),
                fmt_bytes(d.live_at_end.vram_total())
            );
        }
        h.o.push_str("</tbody></table></div>\n");
    }

    if !r.processes.is_empty() {
        h.o.push_str("<h3>Processes</h3><div class=\"scroll\"><table><thead><tr><th class=\"n\">pid</th><th class=\"n\">ppid</th><th>exit</th><th>command line</th><th class=\"n\">events</th><th class=\"n\">VRAM peak</th><th class=\"n\">pinned host peak</th><th>shim</th><th>trace file</th></tr></thead><tbody>\n");
        for p in r.processes.iter().take(h.max_rows) {
            let exit = if !p.clean_exit {
                badge("bad", "crashed / killed")
            } else if p.truncated {
                badge("warn", "truncated")
            } else {
                badge("ok", "clean exit")
            };
            let _ = writeln!(
                h.o,
                "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{exit}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
                p.pid,
                p.ppid,
                esc(&clip(&shell_join(&p.cmdline), 400)),
                thousands(p.events),
                fmt_bytes(p.peak_bytes),
                fmt_bytes(p.host_pinned_peak_bytes),
                esc(&p.shim_version),
                esc(&p.trace_file)
            );
        }
        h.o.push_str("</tbody></table></div>\n");
        h.more(r.processes.len());
    }
}

fn categories_table(h: &mut Page, c: &Categories, logged: Option<&[u64; Category::COUNT]>) {
    let total = c.vram_total();
    let _ = write!(h.o, "<div class=\"scroll\"><table><thead><tr><th>category</th><th class=\"n\">bytes</th><th class=\"n\">share</th>");
    if logged.is_some() {
        h.o.push_str("<th class=\"n\">runner's log</th>");
    }
    h.o.push_str("</tr></thead><tbody>\n");
    let mut rows: Vec<Category> = VRAM_CATEGORIES.iter().copied().filter(|&k| c.get(k) > 0 || logged.is_some_and(|l| l[k.index()] > 0)).collect();
    rows.sort_by_key(|&k| std::cmp::Reverse(c.get(k)));
    for k in rows {
        let _ = write!(h.o, "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>", cat_cell(k), fmt_bytes(c.get(k)), pct(c.get(k), total));
        if let Some(l) = logged {
            let _ = write!(h.o, "<td class=\"n\">{}</td>", if l[k.index()] > 0 { fmt_bytes(l[k.index()]) } else { String::new() });
        }
        h.o.push_str("</tr>\n");
    }
    let _ = write!(h.o, "<tr><th>total VRAM</th><th class=\"n\">{}</th><th class=\"n\">100%</th>", fmt_bytes(total));
    if logged.is_some() {
        h.o.push_str("<th></th>");
    }
    h.o.push_str("</tr>\n");
    if c.host_pinned > 0 {
        let _ = writeln!(h.o, "<tr><td>{}host_pinned <span class=\"muted\">(host RAM, not VRAM)</span></td><td class=\"n\">{}</td><td></td>{}</tr>", swatch(Category::HostPinned), fmt_bytes(c.host_pinned), if logged.is_some() { "<td></td>" } else { "" });
    }
    h.o.push_str("</tbody></table></div>\n");
}

fn peak(h: &mut Page, r: &Report, charts: &[RenderedChart]) {
    h.h2("peak", "Peak composition");
    let p = &r.peak;
    h.p(&format!(
        "<strong>{}</strong> of VRAM live at {} (all GPUs summed, runtime overhead included).",
        fmt_bytes(p.total_bytes),
        secs(p.t_rel_ns)
    ));
    let mut logged = [0u64; Category::COUNT];
    for l in &r.log_lines {
        logged[l.category.index()] += l.logged_bytes;
    }
    categories_table(h, &p.by_category, if r.log_lines.is_empty() { None } else { Some(&logged) });
    let _ = writeln!(
        h.o,
        "<p class=\"muted\">At the peak: VMM reserved {} · VMM mapped {} · held by pools {} · rounding waste {}.</p>",
        fmt_bytes(p.vmm_reserved_bytes),
        fmt_bytes(p.vmm_mapped_bytes),
        fmt_bytes(p.pool_retained_bytes),
        fmt_bytes(p.rounding_waste_bytes)
    );
    if p.by_process.len() > 1 {
        h.o.push_str("<div class=\"scroll\"><table><thead><tr><th class=\"n\">pid</th><th class=\"n\">bytes at the peak</th></tr></thead><tbody>\n");
        for b in p.by_process.iter().take(h.max_rows) {
            let _ = writeln!(h.o, "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>", b.pid, fmt_bytes(b.bytes));
        }
        h.o.push_str("</tbody></table></div>\n");
    }
    for c in charts_where(charts, "peak-composition") {
        h.figure(c);
    }
}

fn timelines(h: &mut Page, r: &Report, charts: &[RenderedChart]) {
    let tl: Vec<&RenderedChart> = charts_where(charts, "timeline-").collect();
    if tl.is_empty() {
        return;
    }
    h.h2("timeline", "VRAM over time");
    h.p("Stacked by category; the dashed line is the device capacity, the dot the peak, red crosses failed allocations (the red bar is the size requested), grey ticks the markers.");
    for c in tl {
        h.figure(c);
    }
    if r.host.peak_bytes > 0 {
        let _ = writeln!(h.o, "<p class=\"muted\">Pinned host memory (not drawn, not VRAM): peak {} at {}.</p>", fmt_bytes(r.host.peak_bytes), secs(r.host.peak_t_rel_ns));
    }
}

fn ooms(h: &mut Page, r: &Report) {
    h.h2("ooms", "OOM post-mortems");
    if r.ooms.is_empty() {
        h.p("No allocation failed.");
        return;
    }
    let cap = h.max_rows.min(50);
    for (i, o) in r.ooms.iter().take(cap).enumerate() {
        h.o.push_str("<div class=\"oom\">\n");
        let _ = writeln!(h.o, "<h3>#{} <code>{}</code> of {} at {} {}</h3>", i + 1, esc(&o.api), fmt_bytes(o.requested_bytes), secs(o.t_rel_ns), verdict_badge(o.verdict));
        if !o.reason.is_empty() {
            h.p(&esc(&o.reason));
        }
        h.o.push_str("<div class=\"scroll\"><table class=\"kv\"><tbody>\n");
        let row = |o: &mut String, k: &str, v: String| {
            let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
        };
        row(&mut h.o, "process / device", format!("pid {} · {} · result {}", o.pid, dev_name(o.device), o.result));
        row(&mut h.o, "requested", fmt_bytes(o.requested_bytes));
        let free = match o.driver_free_bytes {
            Some(f) => format!("{} ({})", fmt_bytes(f), esc(&o.free_source)),
            None => format!("unknown ({})", esc(&o.free_source)),
        };
        row(&mut h.o, "free at the failure", free);
        row(&mut h.o, "device total", o.driver_total_bytes.map(fmt_bytes).unwrap_or_else(|| "unknown".into()));
        row(&mut h.o, "live on the device", format!("{} (traced {})", fmt_bytes(o.by_category.vram_total()), fmt_bytes(o.traced_bytes)));
        row(&mut h.o, "held by stream-ordered pools", fmt_bytes(o.pool_retained_bytes));
        row(&mut h.o, "framework cache", fmt_bytes(o.framework_cache_bytes));
        if let Some(g) = &o.grew_most {
            row(&mut h.o, "grew most before", format!("{} +{} in the {} before", cat_cell(g.category), fmt_bytes(g.bytes), secs(g.window_ns)));
        }
        let who = match o.site {
            Some(s) => format!("{}{} · rule {}", site_html(r, s, &o.rule), cat_cell(o.category), rule_cell(&o.rule)),
            None => format!("{} · rule {}", cat_cell(o.category), rule_cell(&o.rule)),
        };
        row(&mut h.o, "allocating call site", who);
        h.o.push_str("</tbody></table></div>\n<details><summary>composition at the failure</summary>\n");
        categories_table(h, &o.by_category, None);
        h.o.push_str("</details>\n</div>\n");
    }
    if r.ooms.len() > cap {
        let _ = writeln!(h.o, "<p class=\"muted\">{} more failures; see report.json.</p>", r.ooms.len() - cap);
    }
}

fn growth(h: &mut Page, r: &Report, charts: &[RenderedChart]) {
    if r.growth.is_empty() {
        return;
    }
    h.h2("growth", "Growth per token");
    for g in &r.growth {
        let _ = writeln!(h.o, "<h3>{} — {} steps (marker{} <code>{}</code>)</h3>", dev_name(g.device), g.points.len(), if g.labels.len() == 1 { "" } else { "s" }, esc(&g.labels.join(", ")));
        h.o.push_str("<div class=\"scroll\"><table><thead><tr><th>category</th><th class=\"n\">slope</th><th class=\"n\">intercept</th><th class=\"n\">R²</th></tr></thead><tbody>\n");
        let mut fits: Vec<_> = g.fits.iter().collect();
        fits.sort_by(|a, b| b.fit.slope_bytes_per_token.abs().total_cmp(&a.fit.slope_bytes_per_token.abs()));
        for f in fits {
            let _ = writeln!(
                h.o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.3}</td></tr>",
                cat_cell(f.category),
                esc(&per_token(f.fit.slope_bytes_per_token)),
                fmt_bytes(f.fit.intercept_bytes.max(0.0) as u64),
                f.fit.r2
            );
        }
        if let Some(f) = &g.total_fit {
            let _ = writeln!(
                h.o,
                "<tr><th>total</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{:.3}</th></tr>",
                esc(&per_token(f.slope_bytes_per_token)),
                fmt_bytes(f.intercept_bytes.max(0.0) as u64),
                f.r2
            );
        }
        h.o.push_str("</tbody></table></div>\n");
        let mut facts = Vec::new();
        match g.predicted_max_tokens {
            Some(t) => facts.push(format!("predicted out of memory at <strong>≈ {} tokens</strong>", thousands(t))),
            None => facts.push("no predicted out-of-memory length (no growth or capacity unknown)".into()),
        }
        if let Some(c) = g.capacity_bytes {
            facts.push(format!("capacity {}", fmt_bytes(c)));
        }
        facts.push(if g.runtime_included { "runtime overhead included".into() } else { "runtime overhead not included (no driver reading)".to_string() });
        if let Some(o) = &g.oom {
            facts.push(oom_step(o));
        }
        h.p(&facts.join(" · "));
    }
    for c in charts_where(charts, "growth-") {
        h.figure(c);
    }
}

/// "an allocation failed in the step to N tokens (last completed step: M)".
pub(crate) fn oom_step(o: &vramtrace_analyzer::GrowthOom) -> String {
    let mut s = match o.step_tokens {
        Some(t) => format!("an allocation failed in the step to {} tokens", thousands(t.max(0) as u64)),
        None => format!("an allocation failed outside any step, at {}", secs(o.t_rel_ns)),
    };
    if let Some(t) = o.last_completed_tokens {
        let _ = write!(s, " (last completed step: {} tokens)", thousands(t.max(0) as u64));
    }
    s
}

fn fragmentation(h: &mut Page, r: &Report, charts: &[RenderedChart]) {
    h.h2("fragmentation", "Fragmentation");
    let start = r.trace_start_ns;
    h.o.push_str("<div class=\"scroll\"><table><thead><tr><th>device</th><th class=\"n\">VMM reserved (peak)</th><th class=\"n\">VMM mapped (peak)</th><th class=\"n\">pool retained (peak)</th><th class=\"n\">at</th><th class=\"n\">BFC max</th><th class=\"n\">at</th><th class=\"n\">BFC at the VRAM peak</th><th class=\"n\">rounding waste at the VRAM peak</th></tr></thead><tbody>\n");
    for d in &r.devices {
        let f = &d.fragmentation;
        let _ = writeln!(
            h.o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.3}</td><td class=\"n\">{}</td><td class=\"n\">{:.3}</td><td class=\"n\">{}</td></tr>",
            dev_name(d.device),
            fmt_bytes(f.vmm_reserved_peak_bytes),
            fmt_bytes(f.vmm_mapped_peak_bytes),
            fmt_bytes(f.pool_retained_peak_bytes),
            if f.pool_retained_peak_bytes > 0 { secs(f.pool_retained_peak_t_ns.saturating_sub(start)) } else { "–".into() },
            f.bfc_max,
            if f.bfc_max > 0.0 { secs(f.bfc_max_t_ns.saturating_sub(start)) } else { "–".into() },
            f.bfc_at_peak,
            fmt_bytes(f.rounding_waste_at_peak_bytes)
        );
    }
    h.o.push_str("</tbody></table></div>\n");
    h.p("<span class=\"muted\">BFC metric: 1 − largest free block / total free inside the VMM reservations (0 = one contiguous hole, near 1 = free space in many small holes).</span>");
    let pools: Vec<_> = r.devices.iter().flat_map(|d| d.fragmentation.pools.iter()).collect();
    if !pools.is_empty() {
        h.o.push_str("<h3>Stream-ordered pools</h3><div class=\"scroll\"><table><thead><tr><th class=\"n\">pid</th><th>device</th><th>pool</th><th class=\"n\">peak reserved</th><th class=\"n\">peak used</th><th class=\"n\">retained at end</th><th class=\"n\">trims</th></tr></thead><tbody>\n");
        for p in pools.iter().take(h.max_rows) {
            let _ = writeln!(
                h.o,
                "<tr><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                p.pid,
                dev_name(p.device),
                if p.pool == 0 { "default".to_string() } else { format!("{:#x}", p.pool) },
                fmt_bytes(p.peak_reserved_bytes),
                fmt_bytes(p.peak_used_bytes),
                fmt_bytes(p.retained_at_end_bytes),
                p.trims
            );
        }
        h.o.push_str("</tbody></table></div>\n");
        h.more(pools.len());
    }
    let mut any = false;
    for c in charts_where(charts, "fragmentation-") {
        h.figure(c);
        any = true;
    }
    if !any {
        h.p("<span class=\"muted\">No VMM reservations, stream-ordered pools or BFC fragmentation in this trace: nothing to chart.</span>");
    }
    for c in charts_where(charts, "address-map-") {
        h.figure(c);
    }
}

fn top_sites(h: &mut Page, r: &Report, charts: &[RenderedChart]) {
    if r.peak.top_sites.is_empty() {
        return;
    }
    h.h2("sites", "Top call sites at the peak");
    for c in charts_where(charts, "top-sites") {
        h.figure(c);
    }
    h.o.push_str("<div class=\"scroll\"><table><thead><tr><th class=\"n\">#</th><th>call site</th><th>category</th><th>rule</th><th class=\"n\">bytes at the peak</th><th class=\"n\">share</th></tr></thead><tbody>\n");
    for (i, s) in r.peak.top_sites.iter().take(h.max_rows).enumerate() {
        let _ = writeln!(
            h.o,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            i + 1,
            site_html(r, s.site, &s.rule),
            cat_cell(s.category),
            rule_cell(&s.rule),
            fmt_bytes(s.bytes),
            pct(s.bytes, r.peak.total_bytes)
        );
    }
    h.o.push_str("</tbody></table></div>\n");
}

fn leaks(h: &mut Page, r: &Report) {
    h.h2("leaks", "Leaks");
    if r.leaks.is_empty() {
        h.p("Everything allocated was freed.");
        return;
    }
    h.p("Bytes the program never freed: live at its exit, when its context was destroyed, or when it crashed.");
    let mut v: Vec<_> = r.leaks.iter().collect();
    v.sort_by_key(|l| std::cmp::Reverse(l.bytes));
    h.o.push_str("<div class=\"scroll\"><table><thead><tr><th class=\"n\">pid</th><th>memory</th><th>when</th><th>category</th><th class=\"n\">bytes</th><th class=\"n\">allocations</th><th>call site</th><th>rule</th></tr></thead><tbody>\n");
    for l in v.iter().take(h.max_rows) {
        let kind = match l.kind {
            LeakKind::Exit => "at exit",
            LeakKind::ContextTeardown => "context destroyed",
            LeakKind::Crash => "crash / kill",
        };
        let _ = writeln!(
            h.o,
            "<tr><td class=\"n\">{}</td><td class=\"nw\">{}</td><td>{kind}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            l.pid,
            l.device.map(dev_name).unwrap_or_else(|| "host pinned".into()),
            cat_cell(l.category),
            fmt_bytes(l.bytes),
            thousands(l.allocations),
            site_html(r, l.site, &l.rule),
            rule_cell(&l.rule)
        );
    }
    h.o.push_str("</tbody></table></div>\n");
    h.more(v.len());
}

fn anomalies(h: &mut Page, r: &Report) {
    h.h2("anomalies", "Anomalies");
    if r.anomalies.is_empty() {
        h.p("None: every free matched an allocation and every call was consistent.");
        return;
    }
    for a in r.anomalies.iter().take(h.max_rows) {
        let _ = writeln!(h.o, "<h3><code>{}</code> × {}</h3>", esc(&a.kind), thousands(a.count));
        if a.examples.is_empty() {
            continue;
        }
        h.o.push_str("<div class=\"scroll\"><table><thead><tr><th class=\"n\">pid</th><th class=\"n\">time</th><th>api</th><th>ptr</th><th>handle</th><th class=\"n\">size</th><th>detail</th></tr></thead><tbody>\n");
        for e in a.examples.iter().take(20) {
            let _ = writeln!(
                h.o,
                "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td><code>{}</code></td><td><code>{:#x}</code></td><td><code>{:#x}</code></td><td class=\"n\">{}</td><td>{}</td></tr>",
                e.pid,
                secs(e.t_rel_ns),
                esc(&e.api),
                e.ptr,
                e.handle,
                fmt_bytes(e.size),
                esc(&e.detail)
            );
        }
        h.o.push_str("</tbody></table></div>\n");
    }
    h.more(r.anomalies.len());
}

fn attribution(h: &mut Page, r: &Report) {
    h.h2("attribution", "Attribution audit");
    h.p("Every (call site, rule) pair that decided some bytes, largest first: which rule put each allocation in its category, and the frame it matched.");
    let mut v: Vec<_> = r.attribution.iter().collect();
    v.sort_by(|a, b| b.max_live_bytes.cmp(&a.max_live_bytes).then(b.bytes_allocated.cmp(&a.bytes_allocated)));
    h.o.push_str("<div class=\"scroll\"><table><thead><tr><th>call site (frame the rule matched)</th><th>category</th><th>rule</th><th class=\"n\">allocations</th><th class=\"n\">allocated</th><th class=\"n\">max live</th><th class=\"n\">at the peak</th><th class=\"n\">leaked</th></tr></thead><tbody>\n");
    for a in v.iter().take(h.max_rows) {
        let _ = writeln!(
            h.o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            site_html(r, a.site, &a.rule),
            cat_cell(a.category),
            rule_cell(&a.rule),
            thousands(a.allocations),
            fmt_bytes(a.bytes_allocated),
            fmt_bytes(a.max_live_bytes),
            fmt_bytes(a.bytes_at_peak),
            fmt_bytes(a.bytes_leaked)
        );
    }
    h.o.push_str("</tbody></table></div>\n");
    h.more(v.len());
    if !r.rules.is_empty() {
        h.o.push_str("<h3>Per rule</h3><div class=\"scroll\"><table><thead><tr><th>rule</th><th>source</th><th>category</th><th class=\"n\">allocations</th><th class=\"n\">allocated</th><th class=\"n\">at the peak</th></tr></thead><tbody>\n");
        for u in r.rules.iter().take(h.max_rows) {
            let _ = writeln!(
                h.o,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&u.rule),
                esc(&source_name(&u.source)),
                cat_cell(u.category),
                thousands(u.allocations),
                fmt_bytes(u.bytes_allocated),
                fmt_bytes(u.bytes_at_peak)
            );
        }
        h.o.push_str("</tbody></table></div>\n");
        h.more(r.rules.len());
    }
}

fn logs(h: &mut Page, r: &Report) {
    if r.log_lines.is_empty() {
        return;
    }
    h.h2("logs", "Runner log lines with sizes");
    h.o.push_str("<div class=\"scroll\"><table><thead><tr><th class=\"n\">time</th><th>line</th><th>category</th><th class=\"n\">logged</th><th>matched allocation</th></tr></thead><tbody>\n");
    for l in r.log_lines.iter().take(h.max_rows) {
        let m = match &l.matched {
            Some(a) => format!("{} on {} ({})", fmt_bytes(a.size_bytes), dev_name(a.device), site_html(r, a.site, "")),
            None => "<span class=\"muted\">none (already attributed, or not found)</span>".into(),
        };
        let _ = writeln!(
            h.o,
            "<tr><td class=\"n\">{}</td><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td>{m}</td></tr>",
            secs(l.t_rel_ns),
            esc(&clip(&l.line, 300)),
            cat_cell(l.category),
            fmt_bytes(l.logged_bytes)
        );
    }
    h.o.push_str("</tbody></table></div>\n");
    h.more(r.log_lines.len());
}

fn reconciliation(h: &mut Page, r: &Report) {
    h.h2("reconciliation", "Driver readings");
    h.p("cuMemGetInfo readings against what the trace accounts for; the difference is the runtime overhead (contexts, modules, library handles, other processes).");
    h.o.push_str("<div class=\"scroll\"><table><thead><tr><th>device</th><th class=\"n\">readings</th><th class=\"n\">runtime min</th><th class=\"n\">runtime max</th><th class=\"n\">runtime last</th><th class=\"n\">traced &gt; used</th></tr></thead><tbody>\n");
    for d in &r.devices {
        let c = &d.reconciliation;
        let _ = writeln!(
            h.o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            dev_name(d.device),
            thousands(c.readings),
            fmt_bytes(c.runtime_min_bytes),
            fmt_bytes(c.runtime_max_bytes),
            fmt_bytes(c.runtime_last_bytes),
            thousands(c.traced_exceeds_used)
        );
    }
    h.o.push_str("</tbody></table></div>\n");
}

fn warnings(h: &mut Page, r: &Report) {
    if r.warnings.is_empty() {
        return;
    }
    h.h2("warnings", "Warnings");
    h.o.push_str("<ul>\n");
    for w in r.warnings.iter().take(h.max_rows) {
        let _ = writeln!(h.o, "<li>{}</li>", esc(w));
    }
    h.o.push_str("</ul>\n");
    h.more(r.warnings.len());
}
