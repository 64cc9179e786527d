//! report.html in headless Chromium: it renders (non-blank screenshot), with no console error,
//! no uncaught exception and no blocked fetch (the page's CSP would report one).
//!
//! Needs `chromium` on PATH (Debian's package; CI installs it). When it is missing this test
//! FAILS, so a CI without a browser cannot pass silently; set `VRAMTRACE_SKIP_BROWSER=1` to skip
//! it deliberately. `VRAMTRACE_CHROMIUM=/path/to/chrome` picks another binary.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vramtrace_viewer::{render_all, RenderOptions};

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VRAMTRACE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("chromium")).find(|p| p.is_file())
}

/// Runs chromium with `args` on `page`, killing it after `limit`; returns (stdout, stderr).
fn chromium(bin: &Path, profile: &Path, args: &[String], page: &Path, limit: Duration) -> (String, String) {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()))
    .env("HOME", profile)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    // Drain both pipes on threads so a chatty browser cannot block on a full pipe.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut so, &mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut se, &mut s).ok();
        s
    });
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let (o, e) = (t_out.join().unwrap(), t_err.join().unwrap());
            assert!(st.success(), "chromium exited with {st}\nstderr:\n{e}");
            return (o, e);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}\nstderr:\n{}", t_err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Console messages, uncaught exceptions and CSP violations in chromium's log.
fn console_problems(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Content Security Policy") || l.contains("Refused to"))
        .collect()
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(bin) = find_chromium() else {
        if std::env::var("VRAMTRACE_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("SKIPPED: chromium not on PATH and VRAMTRACE_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "`chromium` is not on PATH: this test opens report.html in headless Chromium. Install it \
             (Debian: apt-get install -y chromium), point VRAMTRACE_CHROMIUM at a Chrome/Chromium binary, \
             or set VRAMTRACE_SKIP_BROWSER=1 to skip it deliberately."
        );
    };
    let dir = TempDir::new("browser");
    let out = dir.path().join("out");
    let w = render_all(&fixed_report(), &out, &RenderOptions::default()).unwrap();
    let page = std::fs::canonicalize(&w.html).unwrap();
    let limit = Duration::from_secs(120);

    // 1. Screenshot at a laptop-ish width: non-blank, with the category colours on it.
    let shot = dir.path().join("shot.png");
    let (_, err) = chromium(&bin, &dir.path().join("profile1"), &[format!("--screenshot={}", shot.display()), "--window-size=1280,2000".into()], &page, limit);
    let problems = console_problems(&err);
    assert!(problems.is_empty(), "console errors while rendering report.html:\n{}", problems.join("\n"));
    let bytes = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}); stderr:\n{err}"));
    let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
    d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut rd = d.read_info().unwrap();
    let mut buf = vec![0; rd.output_buffer_size().unwrap()];
    let info = rd.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    assert_eq!(info.width, 1280);
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(ch).map(|p| &p[..3]).collect();
    let colours: std::collections::HashSet<&[u8]> = px.iter().copied().collect();
    let ink = px.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(colours.len() > 100, "screenshot has {} colours", colours.len());
    assert!(ink * 100 > px.len() * 5, "screenshot is nearly blank ({ink} of {} pixels)", px.len());
    let kv = vramtrace_viewer::category_color(vramtrace_analyzer::Category::KvCache);
    assert!(px.iter().any(|p| *p == [kv.0, kv.1, kv.2]), "kv_cache colour visible in the screenshot");
    if let Some(keep) = std::env::var_os("VRAMTRACE_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    // 2. The DOM as the browser built it: everything parsed, charts present.
    let (dom, err) = chromium(&bin, &dir.path().join("profile2"), &["--dump-dom".into()], &page, limit);
    let problems = console_problems(&err);
    assert!(problems.is_empty(), "console errors while loading report.html:\n{}", problems.join("\n"));
    assert!(dom.contains("vramtrace report: llama-server"), "DOM:\n{}", &dom[..dom.len().min(2000)]);
    assert_eq!(dom.matches("<svg").count(), w.charts.len(), "every chart in the DOM");
    assert!(dom.contains("id=\"attribution\"") && dom.contains("</footer>"), "the page was parsed to its end");
    assert!(!dom.contains("<script>alert"), "no injected element");
}
