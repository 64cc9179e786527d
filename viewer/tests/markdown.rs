//! summary.md: golden file for the fixed report (regenerate deliberately with
//! `VRAMTRACE_BLESS=1 cargo test -p vramtrace-viewer --test markdown`), and the reproduce line.

mod common;
use common::*;
use vramtrace_viewer::markdown_summary;

#[test]
fn golden_summary() {
    let got = markdown_summary(&fixed_report(), "");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/summary.md");
    if std::env::var_os("VRAMTRACE_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (VRAMTRACE_BLESS=1 writes it)", path.display()));
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                panic!("summary.md differs from {} at line {}:\n got: {g}\nwant: {w}\n(VRAMTRACE_BLESS=1 regenerates it after a deliberate change)", path.display(), i + 1);
            }
        }
        panic!("summary.md differs from {} in length ({} vs {} lines)", path.display(), got.lines().count(), want.lines().count());
    }
}

#[test]
fn repro_line_and_no_oom() {
    let mut r = fixed_report();
    let md = markdown_summary(&r, "vramtrace run -- ./bench --ctx 4096");
    assert!(md.contains("```sh\nvramtrace run -- ./bench --ctx 4096\n```"), "{md}");
    r.ooms.clear();
    r.growth.clear();
    let md = markdown_summary(&r, "");
    assert!(md.contains("#### Out-of-memory failures: none"));
    assert!(md.contains("Not measured (no token-count markers in the trace)."));
    assert!(md.contains("```sh\nvramtrace run -- llama-server -m 'models/Qwen3 8B Q4_K_M.gguf' -c 32768"), "{md}");
    // Nothing from the trace opens raw HTML in the issue.
    assert!(!md.contains("<script>") || md.contains("`"), "hostile strings only inside code");
    for line in md.lines().filter(|l| l.contains("<script>")) {
        assert!(line.starts_with("| command | `") || line.starts_with("vramtrace run -- "), "unescaped: {line}");
    }
}
