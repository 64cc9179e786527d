//! report.html: self-contained (no network, no script), every trace string escaped, every
//! section and chart present, bounded in size for huge reports.

mod common;
use common::*;
use vramtrace_viewer::{charts, render_all, RenderOptions};

fn html_of(r: &vramtrace_analyzer::Report) -> (String, TempDir) {
    let dir = TempDir::new("html");
    let w = render_all(r, dir.path(), &RenderOptions::default()).unwrap();
    (std::fs::read_to_string(&w.html).unwrap(), dir)
}

#[test]
fn no_network_and_no_script() {
    let (html, _d) = html_of(&fixed_report());
    let lower = html.to_ascii_lowercase();
    for bad in ["http://", "https://", "//cdn", "<script", "<link", "<iframe", "<img", " src=", "url(", "@import"] {
        assert!(!lower.contains(bad), "report.html contains {bad:?}");
    }
    // The page itself forbids every fetch.
    assert!(html.contains("default-src 'none'"));
    assert!(html.starts_with("<!DOCTYPE html>"));
}

#[test]
fn trace_strings_are_escaped() {
    let (html, _d) = html_of(&fixed_report());
    assert!(!html.contains("<script>alert"), "raw command line leaked into the page");
    assert!(!html.contains("<b>bold</b>"), "raw symbol leaked into the page");
    assert!(html.contains("&lt;script&gt;alert(&#39;\\&#39;&#39;x&#39;\\&#39;&#39;)&lt;/script&gt;"), "the argument is shown, escaped");
    assert!(html.contains("std::vector&lt;float, my_alloc&lt;float&gt;&gt;::reserve(unsigned long) &amp; &lt;b&gt;bold&lt;/b&gt;"));
    assert!(html.contains("pointer &lt;never&gt; allocated"), "anomaly details are escaped");
    assert!(html.contains("/opt/&lt;missing&gt;.so"), "warnings are escaped");
}

#[test]
fn sections_figures_and_numbers() {
    let r = fixed_report();
    let (html, _d) = html_of(&r);
    for id in ["environment", "peak", "timeline", "ooms", "growth", "fragmentation", "sites", "leaks", "anomalies", "attribution", "logs", "reconciliation", "warnings"] {
        assert!(html.contains(&format!("<h2 id=\"{id}\">")), "section {id}");
        assert!(html.contains(&format!("href=\"#{id}\"")), "nav link to {id}");
    }
    // Every chart is inlined once, without the XML namespace URL.
    let n = charts(&r).len();
    assert_eq!(html.matches("<svg ").count(), n);
    for c in charts(&r) {
        assert!(html.contains(&format!("<figure id=\"chart-{}\">", c.name)));
    }
    // Header facts.
    assert!(html.contains("vramtrace report: llama-server"));
    assert!(html.contains("/opt/llama.cpp/build/bin/llama-server"));
    assert!(html.contains("crashed or killed"), "the exit in the words of every output");
    assert!(html.contains("NVIDIA GeForce RTX 4070, CUDA driver 12.9"), "the GPU as the driver named it");
    assert!(html.contains("12.00 GiB") && html.contains("cuMemGetInfo"));
    // OOM post-mortem with its verdict and numbers.
    assert!(html.contains("device full"));
    assert!(html.contains("free 0.94 GiB + pools 0 B &lt; requested 1.00 GiB"));
    assert!(html.contains("628.00 MiB (driver)"));
    assert!(html.contains("+340.00 MiB in the 10.000 s before"));
    // Growth table, fragmentation figures, attribution audit, leaks.
    assert!(html.contains("34.0 KiB/token") && html.contains("≈ 51,681 tokens"));
    assert!(html.contains("in the step to 33,792 tokens"));
    assert!(html.contains("0.340") && html.contains("4.00 GiB"));
    assert!(html.contains("builtin:llama.kv_cache_ctor") && html.contains("<td>builtin</td>"));
    assert!(html.contains("crash / kill"));
    assert!(html.contains("id=\"chart-address-map-gpu0\"") && html.contains("Address space over time"), "the address-space map is embedded");
    // Balanced block elements (a cheap well-formedness check).
    for tag in ["table", "div", "details", "figure", "svg", "ol", "main"] {
        assert_eq!(html.matches(&format!("<{tag} ")).count() + html.matches(&format!("<{tag}>")).count(), html.matches(&format!("</{tag}>")).count(), "<{tag}> balance");
    }
}

#[test]
fn huge_report_html_stays_small() {
    let r = huge_report();
    let t0 = std::time::Instant::now();
    // HTML only: report.json of this report would be hundreds of MB, PNGs add nothing here.
    let opts = RenderOptions { png: false, ..RenderOptions::default() };
    let charts = vramtrace_viewer::render_charts(&r, &opts).unwrap();
    let html = vramtrace_viewer::html::html_report(&r, &charts, &opts);
    assert!(html.len() < 5 * 1024 * 1024, "report.html is {} bytes", html.len());
    assert!(html.contains("more rows not shown; see report.json"));
    eprintln!("huge report: {} bytes of HTML in {:?}", html.len(), t0.elapsed());
}

#[test]
fn table_rows_option_cuts_tables() {
    let dir = TempDir::new("rows");
    let w = render_all(&fixed_report(), dir.path(), &RenderOptions { max_table_rows: 2, png: false, ..RenderOptions::default() }).unwrap();
    let html = std::fs::read_to_string(&w.html).unwrap();
    assert!(html.contains("4 more rows not shown"), "6 attribution rows, 2 shown");
}
