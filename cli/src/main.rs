//! `vramtrace`: the one command line. It parses arguments and calls the command (the commands
//! live in this crate's library, `src/lib.rs`); errors are one line on stderr and exit code 2.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vramtrace_cli::{diff, events, report, run, shim, sweep, top};

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
    /// Watch a run live: per GPU what is in use, by category and call site, growth, OOMs.
    Top(top::TopArgs),
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
        Cmd::Top(args) => top::top(args),
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
