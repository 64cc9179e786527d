//! The server under test: waiting until it answers, what it printed last, and stopping it.

use super::http::{readiness, Client, Readiness};
use super::{say, INTERRUPTED, POLL};
use crate::run::Traced;
use indicatif::ProgressBar;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vramtrace_trace::side;

/// How long a stopped server gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Longest single probe while waiting: a server that accepts and never answers must not stall
/// the wait past its deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The last lines the server printed (from its captured output), for error messages — only
/// when its output did not already pass through to the terminal.
pub(super) fn server_tail(out: &Path, pid: u32, n: usize, shown: bool) -> String {
    if shown {
        return String::new();
    }
    let Ok(read) = side::read_output(&out.join(side::output_file_name(pid))) else { return String::new() };
    let lines: Vec<String> = read.records.into_iter().map(|l| l.line).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(n)..];
    format!("\n  last server output:\n    {}", tail.join("\n    "))
}

pub(super) fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("signal {sig}{}", if sig == libc::SIGABRT { " (abort)" } else if sig == libc::SIGKILL { " (killed)" } else { "" }),
        _ => s.to_string(),
    }
}

/// Waits until the server answers `/health` (llama-server, vLLM) or `/v1/models` (Ollama, and
/// servers without /health); 503 means "still loading". Says at once what it waits for, gives up
/// at once on a server that answers but is not OpenAI-compatible, and never waits past `timeout`.
pub(super) fn wait_ready(base: &str, mut server: Option<&mut Traced>, out: &Path, shown: bool, timeout: Duration, bar: &ProgressBar) -> Result<(), String> {
    let what = if server.is_some() { "the server to load and answer" } else { "the server to answer" };
    say(bar, format!("vramtrace: waiting up to {} s for {what} at {base}", timeout.as_secs()));
    let start = Instant::now();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted while waiting for the server".into());
        }
        if let Some(s) = server.as_deref_mut() {
            if let Ok(Some(st)) = s.child.try_wait() {
                return Err(format!("the server exited ({}) before it answered at {base}{}", describe_exit(st), server_tail(out, s.child.id(), 12, shown)));
            }
        }
        let left = timeout.saturating_sub(start.elapsed());
        let probe = Client::new(base, left.min(PROBE_TIMEOUT).max(Duration::from_millis(100)));
        let last = match probe.get("/health") {
            Ok((code, body)) => {
                let models = if code == 200 { None } else { probe.get("/v1/models").ok() };
                match readiness((code, &body), models.as_ref().map(|(c, b)| (*c, b.as_str()))) {
                    Readiness::Ready => return Ok(()),
                    Readiness::Loading(m) => m,
                    Readiness::NotOpenAi(m) => {
                        return Err(format!("the server at {base} answers HTTP but is not an OpenAI-compatible server ({m}); check --url"))
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(format!("the server at {base} did not answer within {} s (last: {last}); raise --startup-timeout?", timeout.as_secs()));
        }
        bar.set_message(format!("waiting for {base} ({:.0} s)", start.elapsed().as_secs_f64()));
        bar.tick();
        std::thread::sleep(POLL.min(timeout.saturating_sub(start.elapsed())));
    }
}

/// How a server ended.
pub(super) struct Stopped {
    pub how: String,
    /// It had exited on its own before we stopped it.
    pub by_itself: bool,
}

/// SIGTERM, then SIGKILL after a grace period; then the output tees are drained (bounded: a
/// grandchild still holding the pipes must not hang us).
pub(super) fn stop_server(mut s: Traced) -> Stopped {
    let pid = s.child.id();
    let (mut how, by_itself) = match s.child.try_wait() {
        Ok(Some(st)) => (format!("had exited ({})", describe_exit(st)), true),
        _ => {
            // SAFETY: kill(2) on our own child's pid; it cannot have been reaped (we hold the
            // Child and have not waited for it), so the pid still names it.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let t = Instant::now();
            let mut st = None;
            while t.elapsed() < STOP_GRACE {
                if let Ok(Some(x)) = s.child.try_wait() {
                    st = Some(x);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let how = match st {
                Some(x) => format!("stopped with SIGTERM ({})", describe_exit(x)),
                None => {
                    let _ = s.child.kill();
                    format!("did not stop within {} s of SIGTERM: killed", STOP_GRACE.as_secs())
                }
            };
            (how, false)
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(s.wait());
    });
    if rx.recv_timeout(Duration::from_secs(5)).is_err() {
        how.push_str("; its output pipes are still held by a child process");
    }
    Stopped { how, by_itself }
}
