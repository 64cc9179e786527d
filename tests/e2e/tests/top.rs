//! `vramtrace top` in a real terminal (tmux): a fake-driver program that allocates 64 MiB every
//! 200 ms runs under it; the numbers on screen change between two looks, the program's own
//! output never reaches the screen, and `q` exits with code 0 leaving the shell as it was (no
//! view left behind: the alternate screen is gone, the prompt is back). Every wait polls the
//! pane against a deadline, so a slow machine only makes it slower.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use vramtrace_e2e::*;

/// A tmux server of our own (its own socket, one per test), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(test: &str, width: u32, height: u32) -> Tmux {
        let t = Tmux { socket: format!("vramtrace-{test}-{}", std::process::id()) };
        let out = t.cmd(&["new-session", "-d", "-s", "top", "-x", &width.to_string(), "-y", &height.to_string(), "bash --norc --noprofile"]);
        assert!(out.status.success(), "tmux is needed for this test and could not start: {}", String::from_utf8_lossy(&out.stderr));
        t
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).env_remove("TMUX").output().expect("tmux is needed for this test (apt-get install tmux)")
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    /// Polls the pane until `done` holds; the screen then, or a failure showing the last one.
    fn wait_for(&self, what: &str, deadline: Instant, done: impl Fn(&str) -> bool) -> String {
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The GPU line's in-use figure (`1.38 GiB of 24.00 GiB (5.7%) in use`).
fn in_use(screen: &str) -> Option<String> {
    let line = screen.lines().find(|l| l.contains("GPU 0") && l.contains("in use"))?;
    let (_, rest) = line.split_once(": ")?;
    Some(rest.split(" in use").next()?.to_string())
}

#[test]
fn top_shows_a_growing_run_live_and_q_restores_the_terminal() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let tmux = Tmux::start("top-cmd", 132, 40);
    let line = format!(
        "cd {} && PS1='PROMPT> ' && LD_LIBRARY_PATH={} {} top --out run -- {} 60 200; echo TOP-EXIT=$?",
        dir.path().display(),
        env.fake_dir.display(),
        env.vramtrace.display(),
        runner("growing").display()
    );
    tmux.send(&[&line, "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = tmux.wait_for("the first GPU figures", deadline, |s| in_use(s).is_some_and(|u| !u.starts_with("0 B")));
    let before = in_use(&first).unwrap();
    let later = tmux.wait_for("the figures to change", deadline, |s| in_use(s).is_some_and(|u| u != before));
    assert!(later.contains("vramtrace top") && later.contains("q quits"), "{later}");
    assert!(later.contains("Largest call sites live now") && later.contains("growing.c"), "the site is named: {later}");
    for s in [&first, &later] {
        assert!(!s.contains("STEP "), "the program's output tore the view:\n{s}");
    }

    tmux.send(&["q"]);
    // The typed command holds `TOP-EXIT=$?`; the shell's answer is a line of its own.
    let exit_line = |s: &str| s.lines().find(|l| l.starts_with("TOP-EXIT=")).map(str::to_string);
    let after = tmux.wait_for("top to exit", Instant::now() + Duration::from_secs(15), |s| exit_line(s).is_some());
    assert_eq!(exit_line(&after).as_deref(), Some("TOP-EXIT=0"), "exit code 0 after q:\n{after}");
    assert!(after.lines().rev().find(|l| !l.trim().is_empty()).is_some_and(|l| l.trim() == "PROMPT>"), "the prompt is back:\n{after}");
    for left in ["q quits", "┌", "│", "in use", "STEP "] {
        assert!(!after.contains(left), "{left:?} left on the restored screen:\n{after}");
    }
    // The run directory stays, with the trace and the program's output.
    let names: Vec<String> = std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with(".vtr")), "{names:?}");
    let output = names.iter().find(|n| n.starts_with("output-")).expect("output-<pid>.jsonl");
    assert!(std::fs::read_to_string(Path::new(&run).join(output)).unwrap().contains("STEP 1 "), "the program's output is kept in {output}");
}

#[test]
fn top_watches_a_directory_being_written_and_a_signal_restores_the_terminal() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::start("top-dir", 132, 40);
    // The program runs apart (`vramtrace run` in the background); top only watches its directory.
    let line = format!(
        "cd {} && PS1='PROMPT> ' && export LD_LIBRARY_PATH={}; {vt} run --quiet --out run -- {} 30 150 >/dev/null 2>&1 & sleep 0.3; {vt} top run; echo TOP-EXIT=$?",
        dir.path().display(),
        env.fake_dir.display(),
        runner("growing").display(),
        vt = env.vramtrace.display(),
    );
    tmux.send(&[&line, "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = tmux.wait_for("the first GPU figures", deadline, |s| in_use(s).is_some_and(|u| !u.starts_with("0 B")));
    let before = in_use(&first).unwrap();
    tmux.wait_for("the figures to change", deadline, |s| in_use(s).is_some_and(|u| u != before));
    assert!(first.contains("vramtrace top — run"), "{first}");

    // SIGTERM, as a service manager or `kill` sends it: the view closes as for `q`.
    let pid = top_pid(&tmux);
    // SAFETY: kill(2) on a process this test started (through its shell); no memory involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exit_line = |s: &str| s.lines().find(|l| l.starts_with("TOP-EXIT=")).map(str::to_string);
    let after = tmux.wait_for("top to exit", Instant::now() + Duration::from_secs(15), |s| exit_line(s).is_some());
    assert_eq!(exit_line(&after).as_deref(), Some("TOP-EXIT=0"), "{after}");
    for left in ["q quits", "┌", "in use"] {
        assert!(!after.contains(left), "{left:?} left on the restored screen:\n{after}");
    }
    // The watched program was not ours to stop: it finishes on its own.
    tmux.send(&["wait; echo BG-DONE", "Enter"]);
    tmux.wait_for("the background run to finish", Instant::now() + Duration::from_secs(20), |s| s.lines().any(|l| l.starts_with("BG-DONE")));
}

/// The pid of `vramtrace top` running in the pane's shell.
fn top_pid(tmux: &Tmux) -> i32 {
    let shell = String::from_utf8_lossy(&tmux.cmd(&["display-message", "-p", "-t", "top", "#{pane_pid}"]).stdout).trim().to_string();
    let top = Command::new("pgrep").args(["-P", &shell, "-f", "vramtrace top"]).output().unwrap();
    String::from_utf8_lossy(&top.stdout).trim().parse().expect("the pid of vramtrace top")
}

fn running(pid: i32) -> bool {
    // Not a zombie: a reaped or exited process reads as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
}

#[test]
fn top_ends_and_stops_its_program_when_the_terminal_hangs_up() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux::start("top-hup", 100, 30);
    let line = format!("cd {} && LD_LIBRARY_PATH={} {} top --out run -- {} 200 100", dir.path().display(), env.fake_dir.display(), env.vramtrace.display(), runner("growing").display());
    tmux.send(&[&line, "Enter"]);
    let screen = tmux.wait_for("the first GPU figures", Instant::now() + Duration::from_secs(20), |s| in_use(s).is_some());
    let program: i32 = screen.split("(pid ").nth(1).and_then(|r| r.split(')').next()).and_then(|p| p.parse().ok()).expect("the program's pid in the title");
    let top = top_pid(&tmux);
    drop(tmux); // the terminal goes away
    let deadline = Instant::now() + Duration::from_secs(15);
    while running(top) || running(program) {
        assert!(Instant::now() < deadline, "top (running: {}) or its program (running: {}) outlived the terminal", running(top), running(program));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn top_refuses_impossible_requests_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, want) in [
        (vec![], "give a directory to watch or a program to run"),
        (vec!["/no/such/dir"], "/no/such/dir: not a directory"),
        (vec![d, "--", "true"], "not both"),
        (vec!["--shim", "x", d], "go with a program to run"),
        (vec!["--interval", "0", d], "between 0.05 and 60"),
        // Not a terminal (the test's stdout is a pipe): nothing is started.
        (vec!["--", "true"], "top needs a terminal"),
    ] {
        let out = Command::new(&env().vramtrace).arg("top").args(&args).stdin(std::process::Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        if args.first() != Some(&"--interval") {
            assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        }
    }
    assert_eq!(std::fs::read_dir(".").unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("vramtrace-top-")).count(), 0, "no run directory made");
}
