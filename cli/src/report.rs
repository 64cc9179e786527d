//! `vramtrace report PATH...`: analyze traces, print the terminal summary, write the JSON report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vramtrace_analyzer::{analyze, load, parse_size, Options, Rules};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Trace files (.vtr) or directories of them (a `vramtrace run --out` directory).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Write the full report as JSON (schema: docs/report-schema.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write report.html, one SVG and one PNG per chart, summary.md and report.json here.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// A rules file (TOML) whose rules take precedence over the built-in attribution rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Device capacity to assume instead of the driver's reported total (e.g. 24GiB).
    #[arg(long, value_parser = parse_size)]
    pub vram: Option<u64>,
}

fn options(rules: Option<&Path>, vram: Option<u64>) -> Result<Options, String> {
    let mut opts = Options::default();
    if let Some(r) = rules {
        opts.rules = Some(Rules::load(r).map_err(|e| e.to_string())?);
    }
    opts.vram = vram;
    Ok(opts)
}

/// The short summary `vramtrace run` prints at the end.
pub fn summary(paths: &[PathBuf]) -> Result<String, String> {
    let loaded = load(paths).map_err(|e| e.to_string())?;
    let report = analyze(&loaded, &Options::default());
    Ok(vramtrace_viewer::text::terminal_summary(&report))
}

/// A spinner on stderr while a long analysis runs (hidden when stderr is not a terminal).
pub fn spinner(msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// Writes the HTML report, charts, Markdown summary and JSON into `dir`; summary.md's
/// reproduce line is the viewer's (the traced root process's command, shell-quoted).
pub fn render(report: &vramtrace_analyzer::Report, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let opts = vramtrace_viewer::RenderOptions::default();
    let written = vramtrace_viewer::render_all(report, dir, &opts).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("vramtrace: report written to {} ({} files)", written.html.display(), written.files().len());
    Ok(())
}

pub fn report(args: ReportArgs) -> Result<ExitCode, String> {
    let opts = options(args.rules.as_deref(), args.vram)?;
    let pb = spinner("reading traces");
    let loaded = load(&args.paths).map_err(|e| {
        pb.finish_and_clear();
        e.to_string()
    })?;
    pb.set_message(format!("analyzing {} events", loaded.traces.iter().map(|f| f.events).sum::<u64>()));
    let report = analyze(&loaded, &opts);
    pb.finish_and_clear();
    for w in &loaded.warnings {
        eprintln!("vramtrace: warning: {w}");
    }
    print!("{}", vramtrace_viewer::text::terminal_summary(&report));
    if let Some(dir) = &args.out {
        render(&report, dir)?;
    }
    if let Some(path) = &args.json {
        let f = std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &report).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("vramtrace: JSON report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
