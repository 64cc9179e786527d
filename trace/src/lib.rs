//! The vramtrace trace format (`.vtr`), shared by the shim (writer) and the analyzer (reader).
//!
//! Besides the format itself, this bottom crate owns the contracts every other crate shares: the
//! clock ([`clock`]), the recorded functions and CUresult codes ([`api`]), the run directory's
//! file names and side files ([`side`]), and byte sizes as typed and printed ([`units`]).
//!
//! A file is a 16-byte header followed by self-delimiting, 8-byte-aligned records (process info,
//! modules, deduplicated native and Python stacks, Python code objects, events, markers, end). The layout is fixed `#[repr(C)]` structs
//! (zerocopy) rather than a serialization framework: the shim writes a record with one copy and no
//! allocation, and the bytes on disk are exactly what `docs/trace-format.md` describes.

pub mod api;
pub mod clock;
pub mod reader;
pub mod record;
pub mod side;
pub mod units;
pub mod writer;

pub use api::{result_name, Api, ApiKind, Fields};
pub use reader::{DeviceInfo, Info, Marker, Module, Notes, PyCode, PyFrame, PyRuntime, PyStack, Reader, Record, Tail, TraceError};
pub use record::{CutRec, EndRec, EventRec, LostRec, PyStatus};
pub use writer::TraceWriter;

/// Reads a whole trace file into records, tolerating a crash-cut tail. Returns the records, how
/// the stream ended, and the first corruption error if one stopped the read early.
pub fn read_file(path: &std::path::Path) -> Result<(Vec<Record>, Tail, Option<TraceError>), TraceError> {
    read_file_with_notes(path).map(|(records, tail, err, _)| (records, tail, err))
}

/// [`read_file`], plus what the shim noted about the recording (Lost and Cut records).
pub fn read_file_with_notes(path: &std::path::Path) -> Result<(Vec<Record>, Tail, Option<TraceError>, Notes), TraceError> {
    let data = std::fs::read(path).map_err(|source| TraceError::Io { path: path.display().to_string(), source })?;
    let mut r = Reader::new(&data)?;
    let mut out = Vec::new();
    let mut err = None;
    for rec in r.by_ref() {
        match rec {
            Ok(rec) => out.push(rec),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    Ok((out, r.tail(), err, r.notes()))
}
