//! `vramtrace report PATH...`: analyse traces, print the terminal summary, write the report
//! bundle (`-o DIR`) and the JSON report (`--json FILE|-`).

use crate::common::{load_and_analyze, prepare_out_dir, AnalysisArgs, JsonTarget};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vramtrace_analyzer::{Options, Report};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Trace files (.vtr) or directories of them (a `vramtrace run --out` directory).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Write the full report as JSON (schema: docs/report-schema.md); `-` for standard output.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace the --json file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Write report.html, one SVG and one PNG per chart, summary.md and report.json here.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// The terminal summary `vramtrace run` prints at the end.
pub fn summary(paths: &[PathBuf]) -> Result<String, String> {
    let report = load_and_analyze(paths, &Options::default(), "the traces")?;
    Ok(vramtrace_viewer::text::terminal_summary(&report))
}

/// Writes the HTML report, charts, Markdown summary and JSON into `dir`; summary.md's
/// reproduce line is the viewer's (the traced root process's command, shell-quoted).
pub fn render(report: &Report, dir: &Path) -> Result<(), String> {
    let written = vramtrace_viewer::render_all(report, dir, &vramtrace_viewer::RenderOptions::default()).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("vramtrace: report written to {} ({} files)", written.html.display(), written.files().len());
    Ok(())
}

pub fn report(args: ReportArgs) -> Result<ExitCode, String> {
    let opts = args.analysis.options()?;
    // Output paths are checked before the analysis, which can take minutes.
    let json = args.json.as_deref().map(|j| JsonTarget::check(j, args.force)).transpose()?;
    if let Some(dir) = &args.out {
        prepare_out_dir(dir)?;
    }
    let report = load_and_analyze(&args.paths, &opts, "traces")?;
    // With the JSON on standard output, the summary would corrupt it.
    if !json.as_ref().is_some_and(JsonTarget::is_stdout) {
        print!("{}", vramtrace_viewer::text::terminal_summary(&report));
    }
    if let Some(dir) = &args.out {
        render(&report, dir)?;
    }
    if let Some(target) = &json {
        target.write(&report, "JSON report")?;
    }
    Ok(ExitCode::SUCCESS)
}
