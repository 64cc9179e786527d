//! `vramtrace run -- CMD ARGS...`: the program runs with the shim preloaded and its traces going to
//! `--out`; its stdout/stderr pass through byte for byte while a timestamped copy is kept in
//! `output-<pid>.jsonl` (the analyzer matches the runner's own log lines, e.g. llama.cpp's buffer
//! sizes, against allocations). The exit code is the program's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use vramtrace_trace::clock::monotonic_ns;
use vramtrace_trace::side::{self, OutputLine};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Directory for the traces and the captured output (created if missing).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub shim: ShimArgs,
    /// Do not print the summary at the end.
    #[arg(long)]
    pub quiet: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

/// How a program is started under the shim (`run`, `sweep`, `top -- CMD`).
#[derive(clap::Args)]
pub struct ShimArgs {
    /// The shim library (default: $VRAMTRACE_SHIM, a libvramtrace.so beside this executable,
    /// else the copy built into vramtrace).
    #[arg(long = "shim", value_name = "SHIM")]
    pub path: Option<PathBuf>,
    /// Call-stack depth recorded per event (0 = no stacks, at most 128).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=vramtrace_trace::record::MAX_STACK_DEPTH as i64))]
    pub stack_depth: Option<u32>,
}

/// The directory a run or a sweep writes to.
pub struct OutDir {
    pub path: PathBuf,
    /// Made by us (not given with --out): removed again if nothing was written into it.
    created: bool,
}

impl OutDir {
    /// `--out DIR` (created if missing), else a new `vramtrace-<kind>-<unix seconds>[-N]` in the
    /// working directory: never one that already exists, so two runs started in the same second
    /// never share (and mix) their traces.
    pub fn prepare(out: Option<PathBuf>, kind: &str) -> Result<OutDir, String> {
        let (path, created) = match out {
            Some(p) => {
                std::fs::create_dir_all(&p).map_err(|e| format!("cannot create output directory {}: {e}", p.display()))?;
                (p, false)
            }
            None => (Self::fresh(kind)?, true),
        };
        let probe = path.join(".vramtrace-write-test");
        std::fs::write(&probe, b"").map_err(|e| format!("output directory {} is not writable: {e}", path.display()))?;
        let _ = std::fs::remove_file(probe);
        Ok(OutDir { path: path.canonicalize().unwrap_or(path), created })
    }

    fn fresh(kind: &str) -> Result<PathBuf, String> {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let base = format!("vramtrace-{kind}-{t}");
        for n in 0..1000 {
            let p = PathBuf::from(if n == 0 { base.clone() } else { format!("{base}-{n}") });
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(p),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create output directory {}: {e}", p.display())),
            }
        }
        Err(format!("cannot create an output directory {base}-N: all names are taken"))
    }

    /// After a failed start: a directory we made and nothing wrote into goes away again.
    pub fn discard_if_empty(&self) {
        if self.created && std::fs::read_dir(&self.path).is_ok_and(|mut d| d.next().is_none()) {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// A running child with the shim preloaded and its output being teed.
pub struct Traced {
    pub child: std::process::Child,
    tees: Vec<std::thread::JoinHandle<()>>,
}

pub fn spawn(cmd: &[String], shim: &Path, out: &Path, stack_depth: Option<u32>) -> Result<Traced, String> {
    spawn_with(cmd, shim, out, stack_depth, true)
}

/// [`spawn`], choosing whether the program's output also passes through to ours (`sweep` keeps
/// it off while its progress bar owns the terminal, `top` while its view does; the program then
/// reads no input from the terminal either); `output-<pid>.jsonl` is written either way.
pub fn spawn_with(cmd: &[String], shim: &Path, out: &Path, stack_depth: Option<u32>, passthrough: bool) -> Result<Traced, String> {
    let mut preload = shim.display().to_string();
    if let Ok(old) = std::env::var("LD_PRELOAD") {
        if !old.is_empty() {
            preload = format!("{preload}:{old}");
        }
    }
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).env("LD_PRELOAD", preload).env("VRAMTRACE_DIR", out).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(d) = stack_depth {
        c.env("VRAMTRACE_STACK_DEPTH", d.to_string());
    }
    if !passthrough {
        c.stdin(Stdio::null());
    }
    let mut child = c.spawn().map_err(|e| format!("cannot start {}: {e}", cmd[0]))?;
    let log = out.join(side::output_file_name(child.id()));
    let log = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let log = std::sync::Arc::new(std::sync::Mutex::new(std::io::BufWriter::new(log)));
    let mut tees = Vec::new();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    if passthrough {
        tees.push(tee(stdout, std::io::stdout(), "stdout", log.clone()));
        tees.push(tee(stderr, std::io::stderr(), "stderr", log));
    } else {
        tees.push(tee(stdout, std::io::sink(), "stdout", log.clone()));
        tees.push(tee(stderr, std::io::sink(), "stderr", log));
    }
    Ok(Traced { child, tees })
}

/// Copies one stream through unchanged (chunk by chunk, so prompts and progress bars without a
/// newline still show at once) and logs each complete line with the time it arrived.
fn tee<R: Read + Send + 'static, W: Write + Send + 'static>(
    mut from: R,
    mut to: W,
    stream: &'static str,
    log: std::sync::Arc<std::sync::Mutex<std::io::BufWriter<std::fs::File>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut line = Vec::new();
        let mut passthrough = true;
        let flush_line = |line: &mut Vec<u8>| {
            let text = String::from_utf8_lossy(line);
            let rec = OutputLine { t_ns: monotonic_ns(), stream: stream.into(), line: text.trim_end_matches(['\n', '\r']).into(), pid: None };
            if let Ok(mut l) = log.lock() {
                let _ = l.write_all(side::to_jsonl(&rec).as_bytes());
            }
            line.clear();
        };
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // If our own stdout goes away we keep draining, so the child never blocks on a pipe.
            if passthrough && (to.write_all(&buf[..n]).is_err() || to.flush().is_err()) {
                passthrough = false;
            }
            for &b in &buf[..n] {
                line.push(b);
                if b == b'\n' {
                    flush_line(&mut line);
                }
            }
        }
        if !line.is_empty() {
            flush_line(&mut line);
        }
        if let Ok(mut l) = log.lock() {
            let _ = l.flush();
        }
    })
}

impl Traced {
    /// Waits for the child and the tees; returns the exit code as a shell would report it.
    pub fn wait(mut self) -> Result<i32, String> {
        let status = self.child.wait().map_err(|e| format!("waiting for the program: {e}"))?;
        for t in self.tees {
            let _ = t.join();
        }
        Ok(exit_code(status))
    }
}

/// A program's exit status as a shell reports it (128 + the signal that killed it).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

pub fn run(args: RunArgs) -> Result<ExitCode, String> {
    let shim = crate::shim::find(args.shim.path.as_deref())?;
    let out = OutDir::prepare(args.out, "run")?;
    let traced = spawn(&args.cmd, &shim, &out.path, args.shim.stack_depth).inspect_err(|_| out.discard_if_empty())?;
    // Ctrl-C goes to the whole foreground group: let the program handle it, and stay alive to
    // report on whatever it recorded.
    // SAFETY: SIG_IGN is a valid disposition and installing it has no preconditions.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let code = traced.wait()?;
    let out = out.path;
    let files = crate::common::trace_files(std::slice::from_ref(&out)).unwrap_or_default();
    if files.is_empty() {
        eprintln!(
            "vramtrace: no CUDA driver call was recorded (output in {}): the program made no memory call the shim records, \
             found no CUDA driver (libcuda.so.1), or was not preloaded (a static or setuid program)",
            out.display()
        );
    } else {
        eprintln!("vramtrace: {} trace file(s) in {}", files.len(), out.display());
    }
    if !args.quiet && !files.is_empty() {
        match crate::report::summary(std::slice::from_ref(&out)) {
            Ok(s) => eprintln!("{s}"),
            Err(e) => eprintln!("vramtrace: could not analyze the traces: {e}"),
        }
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
