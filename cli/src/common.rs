//! What every command shares: reading and analysing traces (a spinner while it takes, the
//! report's warnings on stderr once), checking output paths before any work starts, and the
//! argument parsers that refuse impossible values with one line.
//!
//! Exit codes, the same for every command: 0 done (warnings may have been printed); 1 the work
//! was done but its verdict is negative (`diff`'s gate exceeded, `sweep` completed no step);
//! 2 an error, printed as one line `vramtrace: <what>: <why>`.

use indicatif::{ProgressBar, ProgressDrawTarget};
use serde::Serialize;
use std::path::{Path, PathBuf};
use vramtrace_analyzer::{analyze, load, parse_size, Options, Report, Rules};

/// A spinner on stderr while a long step runs (hidden when stderr is not a terminal).
pub fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
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

/// Loads, symbolizes and analyses traces (files or directories) under a spinner naming `what`;
/// prints the report's warnings once.
pub fn load_and_analyze(paths: &[PathBuf], opts: &Options, what: &str) -> Result<Report, String> {
    let pb = spinner(&format!("reading {what}"));
    let loaded = load(paths).map_err(|e| {
        pb.finish_and_clear();
        e.to_string()
    })?;
    pb.set_message(format!("analyzing {} events", loaded.traces.iter().map(|f| f.events).sum::<u64>()));
    let report = analyze(&loaded, opts);
    pb.finish_and_clear();
    warn_all(&report.warnings);
    Ok(report)
}

/// The analysis options a command takes (`report`, `top`).
#[derive(clap::Args)]
pub struct AnalysisArgs {
    /// A rules file (TOML) whose rules take precedence over the built-in attribution rules.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Device capacity to assume instead of the driver's reported total (e.g. 24GiB).
    #[arg(long, value_parser = positive_size, allow_hyphen_values = true)]
    pub vram: Option<u64>,
}

impl AnalysisArgs {
    pub fn options(&self) -> Result<Options, String> {
        options(self.rules.as_deref(), self.vram)
    }
}

/// Analysis options from `--rules` and `--vram`.
pub fn options(rules: Option<&Path>, vram: Option<u64>) -> Result<Options, String> {
    let rules = rules.map(|r| Rules::load(r).map_err(|e| e.to_string())).transpose()?;
    Ok(Options { rules, vram, ..Options::default() })
}

/// The `*.vtr` files of the given paths: directories expanded (sorted), files kept.
pub fn trace_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| format!("{}: {}", p.display(), vramtrace_analyzer::io_message(&e)))?;
            let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "vtr")).collect();
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

/// A whole number of at least 1 (token counts, steps, seconds). Given with
/// `allow_hyphen_values`, so `-3` reaches here and is refused as a value, not taken for a flag.
pub fn positive_count(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

/// A size of more than 0 bytes (a device capacity: `24GiB`).
pub fn positive_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("{s:?}: a device capacity must be more than 0 bytes")),
        n => Ok(n),
    }
}

/// Checks an output directory (`-o DIR`) before any work: created if missing, refused if it
/// is a file or not writable.
pub fn prepare_out_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{}: exists and is not a directory", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {}", dir.display(), vramtrace_analyzer::io_message(&e)))?;
    let probe = dir.join(".vramtrace-write-test");
    std::fs::write(&probe, b"").map_err(|e| format!("{}: not writable: {}", dir.display(), vramtrace_analyzer::io_message(&e)))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Where a `--json` document goes: standard output for `-`, else a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonTarget {
    Stdout,
    File(PathBuf),
}

impl JsonTarget {
    /// Checked before any work: an existing file is replaced only with `--force`.
    pub fn check(arg: &Path, force: bool) -> Result<JsonTarget, String> {
        if arg == Path::new("-") {
            return Ok(JsonTarget::Stdout);
        }
        if arg.is_dir() {
            return Err(format!("--json {}: is a directory", arg.display()));
        }
        if arg.exists() && !force {
            return Err(format!("--json {}: the file exists; pass --force to replace it", arg.display()));
        }
        let parent = arg.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(format!("--json {}: no such directory {}", arg.display(), parent.display()));
        }
        Ok(JsonTarget::File(arg.to_path_buf()))
    }

    /// Writes `v` pretty-printed; says where when it went to a file.
    pub fn write<T: Serialize>(&self, v: &T, what: &str) -> Result<(), String> {
        let mut js = serde_json::to_string_pretty(v).map_err(|e| format!("{what}: {e}"))?;
        js.push('\n');
        match self {
            JsonTarget::Stdout => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                // A closed stdout (piped into head) is not an error.
                let _ = out.write_all(js.as_bytes()).and_then(|_| out.flush());
            }
            JsonTarget::File(p) => {
                std::fs::write(p, js).map_err(|e| format!("cannot write {}: {}", p.display(), vramtrace_analyzer::io_message(&e)))?;
                eprintln!("vramtrace: {what} written to {}", p.display());
            }
        }
        Ok(())
    }

    pub fn is_stdout(&self) -> bool {
        *self == JsonTarget::Stdout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_and_targets_refuse_with_one_line() {
        assert_eq!(positive_count("12"), Ok(12));
        assert!(positive_count("-3").unwrap_err().contains("at least 1"));
        assert!(positive_count("0").is_err());
        assert_eq!(positive_size("24GiB"), Ok(24 << 30));
        assert!(positive_size("0").unwrap_err().contains("more than 0"));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("r.json");
        assert_eq!(JsonTarget::check(Path::new("-"), false), Ok(JsonTarget::Stdout));
        assert_eq!(JsonTarget::check(&f, false), Ok(JsonTarget::File(f.clone())));
        std::fs::write(&f, "{}").unwrap();
        assert!(JsonTarget::check(&f, false).unwrap_err().contains("--force"));
        assert!(JsonTarget::check(&f, true).is_ok());
        assert!(JsonTarget::check(&d.path().join("no/such/r.json"), false).unwrap_err().contains("no such directory"));
        assert!(prepare_out_dir(&f).unwrap_err().contains("not a directory"));
    }
}
