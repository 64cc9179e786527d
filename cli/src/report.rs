//! `vramtrace report PATH...`: analyze traces, print the terminal summary, write the JSON report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vramtrace_analyzer::{analyze, load, Options, Rules};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Trace files (.vtr) or directories of them (a `vramtrace run --out` directory).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Write the full report as JSON (schema: docs/report-schema.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A rules file (TOML) whose rules take precedence over the built-in attribution rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Device capacity to assume instead of the driver's reported total (e.g. 24GiB).
    #[arg(long, value_parser = parse_size)]
    pub vram: Option<u64>,
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| format!("{s:?} is not a size (examples: 24GiB, 80G, 1073741824)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB)")),
    };
    Ok((num * mult) as u64)
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

pub fn report(args: ReportArgs) -> Result<ExitCode, String> {
    let opts = options(args.rules.as_deref(), args.vram)?;
    let loaded = load(&args.paths).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        eprintln!("vramtrace: warning: {w}");
    }
    let report = analyze(&loaded, &opts);
    print!("{}", vramtrace_viewer::text::terminal_summary(&report));
    if let Some(path) = &args.json {
        let f = std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &report).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("vramtrace: JSON report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
