//! `vramtrace`: the one command line. Thin by design — it parses arguments and wires the crates
//! together: `run` (shim + child process), `events` (trace → lines), `report` (analyzer → viewer),
//! `sweep` and `diff`.

mod diff;
mod events;
mod report;
mod run;
mod shim;
mod sweep;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "vramtrace", version, about = "Explain every byte of GPU memory a CUDA program uses")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a program with the shim preloaded, record its traces, print a summary.
    Run(run::RunArgs),
    /// Analyze traces: peak by category, OOM verdicts, top call sites, anomalies.
    Report(report::ReportArgs),
    /// Measure memory growth per token of context against an OpenAI-compatible server.
    Sweep(sweep::SweepArgs),
    /// Compare two runs: what grew, what shrank, new and vanished call sites; a CI gate.
    Diff(diff::DiffArgs),
    /// Print the path of the shim library to preload by hand: `LD_PRELOAD=$(vramtrace shim) prog`.
    Shim,
    /// Print every recorded event, one per line.
    Events {
        /// Trace files (.vtr) or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// One JSON object per line (schema: docs/events-schema.md).
        #[arg(long)]
        json: bool,
        /// Do not symbolize stacks (faster; addresses as module+offset).
        #[arg(long)]
        no_symbols: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run(args) => run::run(args),
        Cmd::Report(args) => report::report(args),
        Cmd::Sweep(args) => sweep::sweep(args),
        Cmd::Diff(args) => diff::diff(args),
        Cmd::Shim => shim::find(None).map(|p| {
            println!("{}", p.display());
            ExitCode::SUCCESS
        }),
        Cmd::Events { paths, json, no_symbols } => events::events(&paths, json, !no_symbols),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vramtrace: {e}");
            ExitCode::from(2)
        }
    }
}

/// Expands directories into their `*.vtr` files (sorted), keeps files as given.
pub fn trace_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut v: Vec<PathBuf> =
                rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "vtr")).collect();
            v.sort();
            if v.is_empty() {
                return Err(format!("{}: no .vtr trace files in this directory", p.display()));
            }
            out.extend(v);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

/// Warnings go to stderr, each once, as `vramtrace: warning: …` (a long list is cut; the report
/// keeps every one).
pub fn warn_all(warnings: &[String]) {
    const SHOWN: usize = 20;
    for w in warnings.iter().take(SHOWN) {
        eprintln!("vramtrace: warning: {w}");
    }
    if warnings.len() > SHOWN {
        eprintln!("vramtrace: warning: … and {} more (all of them are in report.json)", warnings.len() - SHOWN);
    }
}
