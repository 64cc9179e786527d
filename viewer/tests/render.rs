//! `render_all` end to end: every file is written, report.json reads back as the same Report,
//! and a report made by the real analyzer from a synthetic trace renders too.

mod common;
use common::*;
use vramtrace_viewer::{render_all, RenderOptions};

#[test]
fn render_all_writes_every_file() {
    let dir = TempDir::new("all");
    let r = fixed_report();
    let w = render_all(&r, dir.path(), &RenderOptions::default()).unwrap();
    let names: Vec<String> = w.charts.iter().map(|c| c.chart.name.clone()).collect();
    assert_eq!(names, ["timeline-gpu0", "peak-composition", "top-sites", "fragmentation-gpu0", "address-map-gpu0", "growth-gpu0"]);
    for f in w.files() {
        let len = std::fs::metadata(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())).len();
        assert!(len > 100, "{} is {len} bytes", f.display());
    }
    for c in &w.charts {
        assert_eq!(c.svg, dir.path().join(format!("{}.svg", c.chart.name)));
        assert_eq!(c.png.as_deref(), Some(dir.path().join(format!("{}.png", c.chart.name)).as_path()));
    }
    assert_eq!(w.html, dir.path().join("report.html"));
    assert_eq!(w.markdown, dir.path().join("summary.md"));
    // report.json is the Report as serde writes it (compared as text: f64 text round trips are
    // not bit-exact without serde_json's float_roundtrip feature).
    let text = std::fs::read_to_string(&w.json).unwrap();
    let back: vramtrace_analyzer::Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back.devices[0].timeline.len(), r.devices[0].timeline.len());
    assert_eq!(back.ooms, r.ooms);
    assert!(text.trim_end() == serde_json::to_string_pretty(&r).unwrap(), "report.json differs from the Report");
    assert!(text.contains("\n  \"schema_version\": 1"), "pretty-printed");
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    for c in &w.charts {
        assert!(md.contains(&format!("({}.png)", c.chart.name)), "summary.md links {}", c.chart.name);
    }
}

#[test]
fn without_png_only_svg() {
    let dir = TempDir::new("nopng");
    let w = render_all(&fixed_report(), dir.path(), &RenderOptions { png: false, ..RenderOptions::default() }).unwrap();
    assert!(w.charts.iter().all(|c| c.png.is_none() && c.svg.exists()));
    assert!(!std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().path().extension().is_some_and(|x| x == "png")));
}

#[test]
fn analyzer_report_from_synthetic_trace_renders() {
    let dir = TempDir::new("analyzed");
    let r = analyzed_report(dir.path());
    assert_eq!(r.ooms.len(), 1, "{:#?}", r.ooms);
    assert!(!r.growth.is_empty() && r.growth[0].points.len() >= 4, "{:#?}", r.growth);
    let out = dir.path().join("out");
    let w = render_all(&r, &out, &RenderOptions::default()).unwrap();
    let names: Vec<&str> = w.charts.iter().map(|c| c.chart.name.as_str()).collect();
    for want in ["timeline-gpu0", "peak-composition", "top-sites", "fragmentation-gpu0", "address-map-gpu0", "growth-gpu0"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let html = std::fs::read_to_string(&w.html).unwrap();
    assert!(html.contains("llama_kv_cache::llama_kv_cache"), "call sites from the analyzer appear");
    assert!(html.contains("cuMemCreate"));
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(md.contains("vramtrace run -- llama-server -m m.gguf -c 8192"), "{md}");
}
