//! `vramtrace diff OLD NEW`: what changed between two runs, and a CI gate.
//!
//! Each side is a trace file, a directory of traces (a `vramtrace run --out` directory), or a
//! report.json (`vramtrace report --json FILE`, or a `report -o DIR` directory holding one).
//! Traces are analysed here; a report is read back as it is. The comparison itself is
//! `vramtrace_analyzer::diff` (pure), the output `vramtrace_viewer::diff`.
//!
//! Exit codes: 0; 1 when a gate limit is exceeded, with one line on stderr; 2 on any error
//! (main.rs).

use crate::common::{load_and_analyze, options, prepare_out_dir, JsonTarget};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vramtrace_analyzer::diff::{diff as compare, Amount, DiffOptions};
use vramtrace_analyzer::{io_message, parse_size, Category, Options, Report};

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The baseline: a trace (.vtr), a directory of traces, or a report.json.
    pub old: PathBuf,
    /// The run to compare with it: a trace, a directory of traces, or a report.json.
    pub new: PathBuf,
    /// Write diff.html, diff.md, diff.json and the charts (SVG and PNG) into this directory.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Write the diff as JSON (schema: docs/diff-schema.md); `-` for standard output.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace the --json file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Changes smaller than this are noise, reported as unchanged: a size (2MiB) or a percentage
    /// of the old peak (1%). Default: the larger of 1 MiB and 0.5% of the old peak.
    #[arg(long, value_parser = parse_amount, value_name = "SIZE|PCT")]
    pub threshold: Option<Amount>,
    /// Gate: exit 1 if the peak grew by more than this: a percentage of the old peak (5%) or a
    /// size (512MiB).
    #[arg(long, value_parser = parse_amount, value_name = "PCT|SIZE")]
    pub max_peak_increase: Option<Amount>,
    /// Gate per category, repeatable: CAT=LIMIT, e.g. kv_cache=0, compute=10%, weights=100MiB
    /// (a percentage is of the old value of that category). Exit 1 when exceeded.
    #[arg(long = "max-increase", value_parser = parse_category_limit, value_name = "CAT=LIMIT")]
    pub max_increase: Vec<(Category, Amount)>,
    /// A rules file (TOML) for the sides given as traces (a report.json is already attributed).
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

/// `5%` → a percentage, anything else a size (`0`, `100MiB`, `1G`).
fn parse_amount(s: &str) -> Result<Amount, String> {
    match s.trim().strip_suffix('%') {
        Some(p) => match p.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Amount::Percent(v)),
            _ => Err(format!("{s:?} is not a percentage (examples: 5%, 0.5%)")),
        },
        None => parse_size(s).map(Amount::Bytes),
    }
}

fn parse_category_limit(s: &str) -> Result<(Category, Amount), String> {
    let (cat, limit) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected CATEGORY=LIMIT, e.g. kv_cache=0 or compute=10%"))?;
    let c = Category::from_name(cat.trim()).ok_or_else(|| {
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
        format!("{cat:?} is not a category ({})", names.join(", "))
    })?;
    Ok((c, parse_amount(limit)?))
}

/// What a path on the command line holds.
enum Input {
    Traces,
    Report(PathBuf),
}

fn classify(p: &Path) -> Result<Input, String> {
    let meta = std::fs::metadata(p).map_err(|e| format!("{}: {}", p.display(), io_message(&e)))?;
    if meta.is_dir() {
        let rd = std::fs::read_dir(p).map_err(|e| format!("{}: {}", p.display(), io_message(&e)))?;
        let has_trace = rd.filter_map(|e| e.ok()).any(|e| e.path().extension().is_some_and(|x| x == "vtr"));
        if has_trace {
            return Ok(Input::Traces);
        }
        // A `vramtrace report -o DIR` directory.
        let rj = p.join("report.json");
        return if rj.is_file() { Ok(Input::Report(rj)) } else { Err(format!("{}: no .vtr trace files and no report.json in this directory", p.display())) };
    }
    // By content: the trace magic, else JSON; the extension only for a damaged trace.
    let mut head = [0u8; 64];
    let n = std::io::Read::read(&mut std::fs::File::open(p).map_err(|e| format!("{}: {}", p.display(), io_message(&e)))?, &mut head).map_err(|e| format!("{}: {}", p.display(), io_message(&e)))?;
    if n >= 8 && head[..8] == vramtrace_trace::record::MAGIC {
        Ok(Input::Traces)
    } else if head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        Ok(Input::Report(p.to_path_buf()))
    } else if p.extension().is_some_and(|x| x == "vtr") {
        Ok(Input::Traces)
    } else {
        Err(format!("{}: neither a vramtrace trace (.vtr) nor a report.json", p.display()))
    }
}

fn read_report(p: &Path) -> Result<Report, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {}", p.display(), io_message(&e)))?;
    Report::from_json(&bytes).map_err(|e| format!("{}: {e}", p.display()))
}

/// Reads or analyses one side.
fn side(p: &Path, opts: &Options, rules_given: bool) -> Result<Report, String> {
    match classify(p)? {
        Input::Report(rp) => {
            if rules_given {
                eprintln!("vramtrace: warning: --rules does not apply to {}: a report.json is already attributed", rp.display());
            }
            read_report(&rp)
        }
        Input::Traces => load_and_analyze(&[p.to_path_buf()], opts, &p.display().to_string()),
    }
}

pub fn diff(args: DiffArgs) -> Result<ExitCode, String> {
    let opts = options(args.rules.as_deref(), None)?;
    let json = args.json.as_deref().map(|j| JsonTarget::check(j, args.force)).transpose()?;
    if let Some(dir) = &args.out {
        prepare_out_dir(dir)?;
    }
    let old = side(&args.old, &opts, args.rules.is_some())?;
    let new = side(&args.new, &opts, args.rules.is_some())?;
    let dopts = DiffOptions {
        old_name: args.old.display().to_string(),
        new_name: args.new.display().to_string(),
        threshold: args.threshold,
        max_peak_increase: args.max_peak_increase,
        max_increase: args.max_increase.clone(),
    };
    let d = compare(&old, &new, &dopts);
    if !json.as_ref().is_some_and(JsonTarget::is_stdout) {
        print!("{}", vramtrace_viewer::diff::diff_terminal(&d));
    }
    if let Some(dir) = &args.out {
        let written = vramtrace_viewer::diff::render_diff(vramtrace_viewer::diff::DiffInput { diff: &d, old: &old, new: &new }, dir).map_err(|e| e.to_string())?;
        eprintln!("vramtrace: diff written to {} ({} files)", written.html.display(), written.files().len());
    }
    if let Some(target) = &json {
        target.write(&d, "JSON diff")?;
    }
    match d.gate_failure() {
        Some(line) => {
            eprintln!("vramtrace: {line}");
            Ok(ExitCode::from(1))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_category_limits_parse() {
        assert_eq!(parse_amount("5%"), Ok(Amount::Percent(5.0)));
        assert_eq!(parse_amount("0.5 %"), Ok(Amount::Percent(0.5)));
        assert_eq!(parse_amount("0"), Ok(Amount::Bytes(0)));
        assert_eq!(parse_amount("100MiB"), Ok(Amount::Bytes(100 << 20)));
        assert!(parse_amount("-5%").is_err());
        assert!(parse_amount("lots").is_err());
        assert_eq!(parse_category_limit("kv_cache=0"), Ok((Category::KvCache, Amount::Bytes(0))));
        assert_eq!(parse_category_limit("compute=10%"), Ok((Category::Compute, Amount::Percent(10.0))));
        let e = parse_category_limit("kv=0").unwrap_err();
        assert!(e.contains("not a category") && e.contains("kv_cache"), "{e}");
        assert!(parse_category_limit("kv_cache").unwrap_err().contains("CATEGORY=LIMIT"));
    }
}
