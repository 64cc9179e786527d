//! `vramtrace top [DIR | -- CMD ARGS...]`: a live view of a run in progress. The analyzer's live
//! session reads what the traces in DIR gained since the last refresh (new processes' traces
//! too), the viewer draws its snapshot; this module owns the terminal, the refresh loop and,
//! with `-- CMD`, the program: started under the shim as `run` starts it, its output kept in
//! `output-<pid>.jsonl` only (on the terminal it would tear the view), the run directory kept.
//!
//! `q`, Esc or Ctrl-C quits, as do SIGINT, SIGTERM and SIGHUP (the terminal is restored either
//! way); a program still running then is asked to stop (SIGTERM, SIGKILL after a few seconds)
//! and its traces stay. The exit code is 0, or the program's own when it ended by itself before
//! the view was closed.

use crate::common::AnalysisArgs;
use crate::run::{spawn_with, OutDir, ShimArgs, Traced};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use vramtrace_analyzer::live::Session;
use vramtrace_trace::side;
use vramtrace_viewer::live::Header;

#[derive(clap::Args)]
pub struct TopArgs {
    /// A directory traces are being written to (a `vramtrace run --out` directory, or the
    /// VRAMTRACE_DIR of programs preloaded by hand).
    pub dir: Option<PathBuf>,
    /// With `-- CMD`: directory for the traces and the program's output (created if missing;
    /// default: a new vramtrace-top-<time> here).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    // With `-- CMD`: the shim and the stack depth, as for `run`.
    #[command(flatten)]
    pub shim: ShimArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0, value_parser = interval)]
    pub interval: f64,
    /// A program to run under the shim and watch, with its arguments.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

fn interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.05..=60.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds between 0.05 and 60")),
    }
}

/// Set by a signal that asks us to stop: the loop then quits as for `q`.
static STOPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOPPED.store(true, Ordering::Relaxed);
}

/// How long the loop waits for a key before it looks at [`STOPPED`] again.
const KEY_WAIT: Duration = Duration::from_millis(100);

/// A line on stderr, which may be gone (the terminal hung up): never a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "vramtrace: {line}");
}

/// The terminal's events, read on a thread of their own: crossterm's reader can spin forever on
/// a terminal that hung up, and the loop must still see [`STOPPED`] (SIGHUP) and end. The
/// channel closes when reading fails.
fn terminal_events() -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    rx
}

/// The program `top -- CMD` runs, while it runs.
struct Program {
    traced: Option<Traced>,
    pid: u32,
    exit: Option<i32>,
}

pub fn top(args: TopArgs) -> Result<ExitCode, String> {
    let opts = args.analysis.options()?;
    match (&args.dir, args.cmd.is_empty()) {
        (Some(_), false) => return Err("give a directory to watch or a program to run (-- CMD), not both".into()),
        (None, true) => return Err("give a directory to watch or a program to run: vramtrace top DIR | vramtrace top -- CMD ARGS...".into()),
        (Some(_), true) if args.out.is_some() || args.shim.path.is_some() || args.shim.stack_depth.is_some() => {
            return Err("--out, --shim and --stack-depth go with a program to run (-- CMD)".into())
        }
        (Some(d), true) if !d.is_dir() => return Err(format!("{}: not a directory", d.display())),
        _ => {}
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err("top needs a terminal (to record without one: vramtrace run)".into());
    }
    let (dir, mut program, header) = match args.dir {
        Some(d) => {
            let title = format!("vramtrace top — {}", d.display());
            (d, None, Header { title, notes: Vec::new() })
        }
        None => {
            let shim = crate::shim::find(args.shim.path.as_deref())?;
            let out = OutDir::prepare(args.out, "top")?;
            // Output only to output-<pid>.jsonl: on the terminal it would tear the view.
            let traced = spawn_with(&args.cmd, &shim, &out.path, args.shim.stack_depth, false).inspect_err(|_| out.discard_if_empty())?;
            let pid = traced.child.id();
            let title = format!("vramtrace top — {} (pid {pid})", vramtrace_viewer::util::clip(&vramtrace_viewer::util::shell_join(&args.cmd), 60));
            let note = format!("traces in {}; the program's output is kept in {} only", out.path.display(), side::output_file_name(pid));
            (out.path, Some(Program { traced: Some(traced), pid, exit: None }), Header { title, notes: vec![note] })
        }
    };
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t) };
    }
    let mut session = Session::new(&dir, opts);
    let every = Duration::from_secs_f64(args.interval);
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let shown = watch(&mut terminal, &mut session, &mut program, &header, every);
    ratatui::restore();
    // The program is stopped even when the terminal failed.
    let code = match program {
        Some(mut p) => stop(&mut p)?,
        None => 0,
    };
    shown.map_err(|e| format!("terminal: {e}"))?;
    say(&format!("traces in {} (vramtrace report {0} for the full analysis)", dir.display()));
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Refreshes and draws until the user quits.
fn watch(terminal: &mut ratatui::DefaultTerminal, session: &mut Session, program: &mut Option<Program>, header: &Header, every: Duration) -> std::io::Result<()> {
    let mut header = header.clone();
    let base_notes = header.notes.len();
    let events = terminal_events();
    loop {
        let started = Instant::now();
        header.notes.truncate(base_notes);
        if let Err(e) = session.refresh() {
            header.notes.push(format!("cannot read the traces: {e}"));
        }
        if let Some(p) = program.as_mut() {
            if p.exit.is_none() {
                if let Some(t) = p.traced.as_mut() {
                    if let Ok(Some(status)) = t.child.try_wait() {
                        p.exit = Some(crate::run::exit_code(status));
                    }
                }
            }
            if let Some(code) = p.exit {
                header.notes.push(format!("the program exited with code {code}"));
            }
        }
        let snapshot = session.snapshot();
        terminal.draw(|f| vramtrace_viewer::live::draw(f, &snapshot, &header))?;
        // Keys until the next refresh; a resize redraws at once.
        loop {
            if STOPPED.load(Ordering::Relaxed) {
                return Ok(());
            }
            let left = every.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let ev = match events.recv_timeout(left.min(KEY_WAIT)) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            match ev {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc) {
                        return Ok(());
                    }
                }
                Event::Resize(..) => {
                    terminal.draw(|f| vramtrace_viewer::live::draw(f, &snapshot, &header))?;
                }
                _ => {}
            }
        }
    }
}

/// Ends the program if it still runs (SIGTERM, then SIGKILL after 5 s) and collects it; its
/// exit code when it ended by itself, else 0 (the user stopped it).
fn stop(p: &mut Program) -> Result<i32, String> {
    let Some(mut traced) = p.traced.take() else { return Ok(0) };
    let ended_by_itself = p.exit.is_some() || matches!(traced.child.try_wait(), Ok(Some(_)));
    if !ended_by_itself {
        say(&format!("stopping the program (pid {})", p.pid));
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet (so the pid
        // is still ours); no memory is involved.
        unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(traced.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = traced.child.kill();
    }
    let code = traced.wait()?;
    Ok(if ended_by_itself { code } else { 0 })
}
