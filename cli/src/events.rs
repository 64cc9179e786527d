//! `vramtrace events`: every event and marker of one or more traces (and side files), merged in
//! time order by the analyzer's one event stream, one line each as the viewer renders it.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use vramtrace_analyzer::{load, load_traces, StreamItem};
use vramtrace_viewer::events::{event_line, marker_line, side_marker_line, Format};

pub fn events(paths: &[PathBuf], json: bool, symbols: bool) -> Result<ExitCode, String> {
    let loaded = if symbols { load(paths) } else { load_traces(paths) }.map_err(|e| e.to_string())?;
    let mut warnings = loaded.warnings.clone();
    warnings.extend(loaded.symbols.warnings.iter().cloned());
    crate::common::warn_all(&warnings);
    let format = if json { Format::Json } else { Format::Text };
    let first_start = loaded.traces.iter().map(|t| t.info.mono_ns).filter(|&t| t > 0).min().unwrap_or(0);
    let mut out = BufWriter::new(std::io::stdout().lock());
    for item in loaded.stream() {
        let line = match item {
            StreamItem::Event { file, event } => {
                let info = &loaded.traces[file].info;
                let stack: Vec<String> = loaded.event_frames(file, event.stack_id, event.py_stack_id).iter().map(ToString::to_string).collect();
                event_line(info.pid, info.mono_ns, &event, &stack, format)
            }
            StreamItem::Marker { file, marker } => {
                let info = &loaded.traces[file].info;
                marker_line(info.pid, info.mono_ns, marker, format)
            }
            StreamItem::SideMarker(m) => side_marker_line(first_start, m, format),
            StreamItem::End { .. } => continue,
        };
        if writeln!(out, "{line}").is_err() {
            return Ok(ExitCode::SUCCESS); // stdout closed (piped into head): not an error
        }
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}
