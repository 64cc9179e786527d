//! `vramtrace sweep`: memory growth per token of context, measured against an OpenAI-compatible
//! server — llama-server, ik_llama.cpp, vLLM, Ollama.
//!
//! With a command, the server runs under the shim exactly as with `vramtrace run` (its traces and
//! captured output go to `--out`) and is stopped at the end; without one, an already running
//! server is driven and only the markers are written. Each step sends one fresh prompt of a
//! growing token count to `/v1/completions` (`max_tokens: 1`, prompt caching off) and brackets it
//! with sidecar markers in `<out>/markers-sweep.jsonl`, on the shim's clock (CLOCK_MONOTONIC):
//! `request_start` before the request, `prompt_tokens` = `usage.prompt_tokens` after the answer.
//! The analyzer takes the highest VRAM between the two as the step's sample, fits
//! `bytes = a + b·tokens` per category and predicts the context at which the device is full
//! (docs/report-schema.md, "Marker" and "Growth").
//!
//! A failed step must not become a sample (its memory did not grow as its token count says), so
//! it gets a `request_failed` marker instead of closing the step — unless the trace shows an
//! out-of-memory failure inside it: then the step is closed with its token count, which makes the
//! analyzer leave it out of the fit *and* name it as the step the OOM happened in.

//!
//! - `http`: the client, and what the server's answers mean (pure functions, fuzzed);
//! - `prompt`: prompts of a chosen token count that never share a beginning;
//! - `server`: waiting for the server, and stopping it;
//! - `step`: one request bracketed by markers, and how it ended.

mod http;
mod prompt;
mod server;
mod step;

pub use http::{completion_tokens, error_message, first_model, normalize_url, readiness, tokenize_count, Readiness};

use crate::common::{load_and_analyze, positive_count, positive_size, spinner, trace_files};
use crate::run::{spawn_with, OutDir, Traced};
use http::Client;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use server::{stop_server, wait_ready};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use step::{Markers, Status, Step, Sweeper};
use vramtrace_analyzer::Options;
use vramtrace_viewer::sweep::{growth_summary, steps_table, SweepStep};
use vramtrace_viewer::util::shell_join;

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (a trailing /v1 is accepted).
    #[arg(long)]
    pub url: String,
    /// Model name sent with each request; default: the first model /v1/models lists.
    #[arg(long)]
    pub model: Option<String>,
    /// Prompt tokens of the first step.
    #[arg(long, default_value_t = 256, value_parser = positive_count, allow_hyphen_values = true)]
    pub from: u64,
    /// Prompt tokens of the last step.
    #[arg(long, default_value_t = 65536, value_parser = positive_count, allow_hyphen_values = true)]
    pub to: u64,
    /// Number of steps (requests), at most 1000.
    #[arg(long, default_value_t = 12, value_parser = positive_count, allow_hyphen_values = true)]
    pub steps: u64,
    /// How the token counts are spaced between --from and --to.
    #[arg(long, value_enum, default_value_t = Spacing::Geometric)]
    pub spacing: Spacing,
    /// Device capacity to predict the maximum context for, instead of the driver's total (e.g. 24GiB).
    #[arg(long, value_parser = positive_size, allow_hyphen_values = true)]
    pub vram: Option<u64>,
    /// Directory for traces, server output, markers and reports (created if missing).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 600, value_parser = positive_count, allow_hyphen_values = true)]
    pub timeout: u64,
    /// Seconds the server may take until it answers: model loading when started here
    /// (default 600), else just a check that it is up (default 10).
    #[arg(long, value_parser = positive_count, allow_hyphen_values = true)]
    pub startup_timeout: Option<u64>,
    #[command(flatten)]
    pub shim: crate::run::ShimArgs,
    /// Show the server's output even while the progress bar is on the terminal.
    #[arg(long)]
    pub server_output: bool,
    /// The server command, started under the shim; without it, the server at --url is used as is.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Spacing {
    Geometric,
    Linear,
}

/// Poll interval while waiting for the server to come up or go away.
const POLL: Duration = Duration::from_millis(100);
/// More steps than this is a typo, not a measurement.
const MAX_STEPS: u64 = 1000;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // Second Ctrl-C: the user wants out now.
        // SAFETY: _exit is async-signal-safe and ends the process without running anything else.
        unsafe { libc::_exit(130) };
    }
}

/// The token counts to measure, or why the arguments cannot give them.
fn plan(from: u64, to: u64, steps: u64, spacing: Spacing) -> Result<Vec<u64>, String> {
    if to < from {
        return Err(format!("--from {from} --to {to}: --to must be at least --from"));
    }
    let distinct = to - from + 1;
    if steps > MAX_STEPS || steps > distinct {
        return Err(format!("--steps {steps}: at most {} (the distinct token counts from {from} to {to}, and never more than {MAX_STEPS})", distinct.min(MAX_STEPS)));
    }
    Ok(targets(from, to, steps, spacing))
}

/// Token counts from `from` to `to` (both included), geometric or linear, without repeats.
fn targets(from: u64, to: u64, steps: u64, spacing: Spacing) -> Vec<u64> {
    let n = steps.max(1) as usize;
    let mut v: Vec<u64> = (0..n)
        .map(|i| {
            if n == 1 {
                return from;
            }
            let f = i as f64 / (n - 1) as f64;
            let x = match spacing {
                Spacing::Geometric => from as f64 * (to as f64 / from as f64).powf(f),
                Spacing::Linear => from as f64 + (to - from) as f64 * f,
            };
            x.round() as u64
        })
        .collect();
    v.dedup();
    v
}

/// A line on stderr that does not tear the progress bar.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

pub fn sweep(args: SweepArgs) -> Result<ExitCode, String> {
    let base = normalize_url(&args.url)?;
    let plan = plan(args.from, args.to, args.steps, args.spacing)?;
    let out_dir = OutDir::prepare(args.out.clone(), "sweep")?;
    let out = out_dir.path.clone();
    let with_server = !args.cmd.is_empty();
    if with_server && trace_files(std::slice::from_ref(&out)).is_ok_and(|f| !f.is_empty()) {
        return Err(format!("{} already holds traces from an earlier run; choose an empty --out", out.display()));
    }
    let interactive = std::io::stderr().is_terminal();
    let bar = if interactive { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.enable_steady_tick(Duration::from_millis(120));
    // SAFETY: `on_sigint` is async-signal-safe (an atomic swap and `_exit`).
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };

    let mut server = if with_server {
        let start = || -> Result<Traced, String> {
            let shim = crate::shim::find(args.shim.path.as_deref())?;
            // A server already answering there would be measured instead of the one started
            // here (which would then fail to bind its port).
            if let Ok((code, _)) = Client::new(&base, Duration::from_secs(2)).get("/v1/models") {
                return Err(format!("something already answers at {base} (HTTP {code}); stop it or give the server another port"));
            }
            // The server's output would tear the progress bar apart: it goes to
            // output-<pid>.jsonl only, unless asked for or unless there is no bar.
            spawn_with(&args.cmd, &shim, &out, args.shim.stack_depth, args.server_output || !interactive)
        };
        let s = start().inspect_err(|_| out_dir.discard_if_empty())?;
        say(&bar, format!("vramtrace: started {} (pid {}) under the shim; traces in {}", args.cmd[0], s.child.id(), out.display()));
        Some(s)
    } else {
        None
    };

    // Everything that can fail with the server up runs here, so the server is always stopped.
    let output_shown = args.server_output || !interactive;
    let result = drive(&args, &base, &plan, &out, server.as_mut(), output_shown, &bar);
    let stopped = server.map(stop_server);
    bar.finish_and_clear();
    // SAFETY: restoring the default disposition has no preconditions.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    // A server that died on its own was already reported (by the wait, or as a step's result).
    let died_reported = result.as_ref().map_or(true, |steps| steps.last().is_some_and(|s| s.status == Status::ServerDied));
    if let Some(st) = stopped.filter(|st| !(st.by_itself && died_reported)) {
        eprintln!("vramtrace: server {}", st.how);
    }
    let steps = result?;

    // Per-step record for scripts, next to the report.
    let sweep_json = out.join("sweep.json");
    let doc = json!({"url": base, "model": args.model, "targets": plan, "steps": steps.iter().map(Step::json).collect::<Vec<_>>()});
    std::fs::write(&sweep_json, format!("{doc:#}\n")).map_err(|e| format!("cannot write {}: {e}", sweep_json.display()))?;

    let done = steps.iter().filter(|s| s.status == Status::Ok).count();
    let shown: Vec<SweepStep> = steps.iter().map(Step::view).collect();
    print!("{}", steps_table(&base, plan.len(), &shown));

    if trace_files(std::slice::from_ref(&out)).is_err() {
        println!("no traces in {0}: analyze with `vramtrace report <trace dir> {0}/markers-sweep.jsonl`", out.display());
    } else {
        let opts = Options { vram: args.vram, ..Options::default() };
        let report = load_and_analyze(std::slice::from_ref(&out), &opts, "the traces")?;
        print!("{}", growth_summary(&report, &shown));
        let path = out.join("report.json");
        let f = std::fs::File::create(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &report).map_err(|e| format!("{}: {e}", path.display()))?;
        // The HTML report (with the growth chart) is a bonus: a rendering failure is a warning.
        let pb = spinner("rendering the HTML report");
        let repro = shell_join(&std::iter::once("vramtrace".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>());
        let rendered = vramtrace_viewer::render_all(&report, &out, &vramtrace_viewer::RenderOptions { repro: Some(repro), ..Default::default() });
        pb.finish_and_clear();
        match rendered {
            Ok(w) => println!("report: {} and {} (per-step results: {})", w.html.display(), path.display(), sweep_json.display()),
            Err(e) => {
                eprintln!("vramtrace: warning: HTML report not written: {e}");
                println!("report: {} (per-step results: {})", path.display(), sweep_json.display());
            }
        }
    }
    Ok(if done == 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Waits for the server, then runs the steps; stops early when the server is gone or on Ctrl-C.
fn drive(
    args: &SweepArgs,
    base: &str,
    plan: &[u64],
    out: &Path,
    mut server: Option<&mut Traced>,
    output_shown: bool,
    bar: &ProgressBar,
) -> Result<Vec<Step>, String> {
    let startup = args.startup_timeout.unwrap_or(if server.is_some() { 600 } else { 10 });
    wait_ready(base, server.as_deref_mut(), out, output_shown, Duration::from_secs(startup), bar)?;
    let client = Client::new(base, Duration::from_secs(args.timeout));
    let model = match &args.model {
        Some(m) => Some(m.clone()),
        // vLLM and Ollama need the model's name; llama-server ignores it.
        None => client.get("/v1/models").ok().and_then(|(c, b)| first_model(c, &b)),
    };
    let tokenize = client.post("/tokenize", &json!({"content": "hello world"})).is_ok_and(|(c, b)| tokenize_count(c, &b).is_some());
    let traced_here = server.is_some() || trace_files(&[out.to_path_buf()]).is_ok();
    let mut sw = Sweeper { client, model, tokenize, ratio: 1.0, rng: prompt::Rng::new(), markers: Markers::create(out)?, out, traced_here, output_shown };
    say(
        bar,
        format!(
            "vramtrace: sweeping {} step(s), {}..{} prompt tokens; model {}; token counts {}",
            plan.len(),
            plan[0],
            plan[plan.len() - 1],
            sw.model.as_deref().unwrap_or("(server default)"),
            if sw.tokenize { "calibrated with the server's /tokenize" } else { "scaled from usage.prompt_tokens" }
        ),
    );
    if !bar.is_hidden() {
        bar.set_length(plan.len() as u64);
        bar.set_position(0);
        bar.set_style(ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg} ({elapsed})").expect("static template").progress_chars("=> "));
    }
    let mut steps = Vec::new();
    for (i, &target) in plan.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            say(bar, "vramtrace: interrupted; analyzing the steps so far".into());
            break;
        }
        bar.set_message(format!("step {}: {target} tokens", i + 1));
        let step = sw.run_step(i + 1, target, server.as_deref_mut())?;
        bar.inc(1);
        let n = step.tokens().map(|n| format!("{n} tokens")).unwrap_or_else(|| format!("~{target} tokens"));
        say(bar, format!("vramtrace: step {}/{}: {n}: {} ({:.2} s)", i + 1, plan.len(), step.describe(), step.seconds));
        let stop = matches!(step.status, Status::ServerDied | Status::Unreachable | Status::Interrupted);
        steps.push(step);
        if stop {
            break;
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_spacing() {
        assert_eq!(targets(256, 65536, 9, Spacing::Geometric), vec![256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]);
        assert_eq!(targets(100, 500, 5, Spacing::Linear), vec![100, 200, 300, 400, 500]);
        assert_eq!(targets(10, 10, 4, Spacing::Geometric), vec![10]);
        assert_eq!(targets(7, 9, 1, Spacing::Linear), vec![7]);
    }

    #[test]
    fn plans_are_checked() {
        assert_eq!(plan(1, 2, 2, Spacing::Linear), Ok(vec![1, 2]));
        assert!(plan(1, 2, 1_000_000, Spacing::Linear).unwrap_err().contains("at most 2"));
        assert!(plan(1, 100_000, 5000, Spacing::Geometric).unwrap_err().contains("at most 1000"));
        assert!(plan(10, 5, 3, Spacing::Linear).unwrap_err().contains("--to must be at least --from"));
    }
}
