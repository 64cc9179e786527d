//! Reading `.vtr` files: validates the header, walks records, stops cleanly at a crash-cut tail.
//!
//! The iterator yields every record kind this reader knows and steps over kinds it does not (a
//! newer minor version's), as the format promises; an event of a function it does not know is
//! yielded too, for the consumer to skip or show. What the shim noted about the recording itself
//! (Lost and Cut records) is also gathered in [`Reader::notes`].

use crate::record::*;
use zerocopy::FromBytes;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("not a vramtrace trace (bad magic)")]
    BadMagic,
    #[error("trace format version {major}.{minor} is newer than this vramtrace supports ({VERSION_MAJOR}.x); upgrade vramtrace")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("file too short to be a trace ({0} bytes)")]
    TooShort(usize),
    #[error("corrupt record at byte offset {offset}: {reason}")]
    Corrupt { offset: usize, reason: &'static str },
}

/// How the record stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Not at the end yet.
    Open,
    /// Ended exactly at the end of the file, or at the zero-filled space the writer reserved ahead.
    Clean,
    /// The last record was cut short (the writer died mid-record); everything before it was read.
    Truncated { offset: usize },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub pid: u32,
    pub ppid: u32,
    pub mono_ns: u64,
    pub realtime_ns: u64,
    pub stack_depth: u32,
    pub exe: String,
    pub cmdline: Vec<String>,
    pub version: String,
    pub hostname: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub id: u32,
    pub base: u64,
    pub start: u64,
    pub end: u64,
    pub build_id: Vec<u8>,
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub t_ns: u64,
    pub value: i64,
    pub tid: u32,
    pub stack_id: u32,
    pub label: String,
    /// The Python stack at the marker (a [`PyStack`] id), 0 = none.
    pub py_stack_id: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub t_ns: u64,
    pub ordinal: i32,
    pub name: String,
    pub total_bytes: u64,
    pub driver_version: i32,
    pub uuid: [u8; 16],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Info(Info),
    Module(Module),
    Stack { id: u32, frames: Vec<u64> },
    /// An event; its `api` may be a function this reader does not know (a newer minor version):
    /// such an event is still yielded, for the consumer to skip or show.
    Event(EventRec),
    Marker(Marker),
    End(EndRec),
    Device(DeviceInfo),
    /// Running totals of calls the shim let through unrecorded (also in [`Reader::notes`]).
    Lost(LostRec),
    /// Recording stopped early (also in [`Reader::notes`]).
    Cut(CutRec),
    PyRuntime(PyRuntime),
    PyCode(PyCode),
    PyStack(PyStack),
}

/// What the shim says about the recording itself (Lost and Cut records), gathered while reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notes {
    /// The last running totals of calls the shim let through unrecorded.
    pub lost: LostRec,
    /// Set when recording stopped early because the file could not grow.
    pub cut: Option<CutRec>,
}

/// The interpreter the shim found, and whether it captured its stacks (see `PyStatus`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyRuntime {
    pub t_ns: u64,
    pub hexversion: u32,
    /// A `PyStatus` code; `PyStatus::from_u32` names it (a newer shim may add codes).
    pub status: u32,
    /// Address range of `_PyEval_EvalFrameDefault` in this process (0, 0 when unknown).
    pub eval_start: u64,
    pub eval_end: u64,
    /// The object holding the interpreter: libpython, or the executable.
    pub library: String,
    /// Human-readable detail, e.g. why stacks are not captured.
    pub detail: String,
}

/// A Python code object as the shim read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyCode {
    pub id: u32,
    /// `PY_VERSION_HEX` of the interpreter that ran it: selects the line-table format.
    pub py_version: u32,
    pub first_line: u32,
    /// The line table was cut short by the shim (very large code objects).
    pub linetable_cut: bool,
    pub filename: String,
    pub name: String,
    /// `co_qualname`; empty before Python 3.11 (the code object has none).
    pub qualname: String,
    /// `co_linetable`, raw.
    pub linetable: Vec<u8>,
}

/// One frame of a [`PyStack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PyFrame {
    pub code_id: u32,
    /// Byte offset of the current instruction; `None` before the frame's first instruction.
    pub offset: Option<u32>,
    /// The first frame of a C-level `_PyEval_EvalFrameDefault` invocation: the frames from the
    /// innermost up to and including the first entry frame run in the innermost evaluation
    /// frame of the native stack, the next group in the next one, and so on.
    pub entry: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyStack {
    pub id: u32,
    /// Innermost first.
    pub frames: Vec<PyFrame>,
    /// The thread had more Python frames than were recorded.
    pub truncated: bool,
}

/// Iterates over the records of one trace held in memory (typically a memory map).
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    tail: Tail,
    notes: Notes,
}

struct Cursor<'a> {
    b: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn fixed<T: FromBytes>(&mut self) -> Result<T, TraceError> {
        let (v, rest) = T::read_from_prefix(self.b)
            .map_err(|_| TraceError::Corrupt { offset: self.offset, reason: "record shorter than its fixed part" })?;
        self.b = rest;
        Ok(v)
    }
    fn bytes(&mut self) -> Result<&'a [u8], TraceError> {
        let corrupt = TraceError::Corrupt { offset: self.offset, reason: "string runs past its record" };
        if self.b.len() < 4 {
            return Err(corrupt);
        }
        let n = u32::from_le_bytes(self.b[..4].try_into().unwrap()) as usize;
        let s = self.b.get(4..4 + n).ok_or(corrupt)?;
        self.b = &self.b[4 + n..];
        Ok(s)
    }
    fn string(&mut self) -> Result<String, TraceError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    /// A u32 appended to a record in a later minor version: 0 when the record predates it.
    fn tail_u32(&mut self) -> u32 {
        self.fixed::<u32>().unwrap_or(0)
    }
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Result<Self, TraceError> {
        if data.len() < FILE_HEADER_LEN {
            return Err(if data.len() >= 8 && data[..8] != MAGIC {
                TraceError::BadMagic
            } else {
                TraceError::TooShort(data.len())
            });
        }
        if data[..8] != MAGIC {
            return Err(TraceError::BadMagic);
        }
        let major = u16::from_le_bytes([data[8], data[9]]);
        let minor = u16::from_le_bytes([data[10], data[11]]);
        if major != VERSION_MAJOR {
            return Err(TraceError::UnsupportedVersion { major, minor });
        }
        Ok(Reader { data, pos: FILE_HEADER_LEN, tail: Tail::Open, notes: Notes::default() })
    }

    /// A reader that continues where an earlier one over a shorter copy of the same file stopped
    /// (a trace still being written, mapped again once it grew): `pos` is that reader's
    /// [`Reader::position`] and `notes` its [`Reader::notes`]. A `pos` before the first record or
    /// not on a record boundary (not a multiple of 8) starts at the first record.
    pub fn resume(data: &'a [u8], pos: usize, notes: Notes) -> Result<Self, TraceError> {
        let mut r = Reader::new(data)?;
        if pos > FILE_HEADER_LEN && pos.is_multiple_of(8) {
            r.pos = pos.min(data.len());
        }
        r.notes = notes;
        Ok(r)
    }

    /// How the stream ended; meaningful once the iterator returned `None`.
    pub fn tail(&self) -> Tail {
        self.tail
    }

    /// Lost and Cut records seen so far.
    pub fn notes(&self) -> Notes {
        self.notes
    }

    /// Byte offset of the next record.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn decode(&mut self, kind: RecordKind, offset: usize, body: &'a [u8]) -> Result<Option<Record>, TraceError> {
        let mut c = Cursor { b: body, offset };
        Ok(Some(match kind {
            RecordKind::Info => {
                let f: InfoRec = c.fixed()?;
                let exe = c.string()?;
                let cmd = c.string()?;
                let version = c.string()?;
                let hostname = c.string()?;
                Record::Info(Info {
                    pid: f.pid,
                    ppid: f.ppid,
                    mono_ns: f.mono_ns,
                    realtime_ns: f.realtime_ns,
                    stack_depth: f.stack_depth,
                    exe,
                    cmdline: if cmd.is_empty() { vec![] } else { cmd.split('\0').map(str::to_owned).collect() },
                    version,
                    hostname,
                })
            }
            RecordKind::Module => {
                let f: ModuleRec = c.fixed()?;
                let n = (f.build_id_len as usize).min(f.build_id.len());
                Record::Module(Module {
                    id: f.id,
                    base: f.base,
                    start: f.start,
                    end: f.end,
                    build_id: f.build_id[..n].to_vec(),
                    path: c.string()?,
                })
            }
            RecordKind::Stack => {
                let f: StackRec = c.fixed()?;
                let bytes = c.b.get(..f.depth as usize * 8).ok_or(TraceError::Corrupt {
                    offset,
                    reason: "stack depth runs past its record",
                })?;
                let frames = bytes.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())).collect();
                Record::Stack { id: f.id, frames }
            }
            RecordKind::Event => Record::Event(c.fixed()?),
            RecordKind::Marker => {
                let f: MarkerRec = c.fixed()?;
                let label = c.string()?;
                Record::Marker(Marker { t_ns: f.t_ns, value: f.value, tid: f.tid, stack_id: f.stack_id, label, py_stack_id: c.tail_u32() })
            }
            RecordKind::End => Record::End(c.fixed()?),
            RecordKind::Device => {
                let f: DeviceRec = c.fixed()?;
                Record::Device(DeviceInfo {
                    t_ns: f.t_ns,
                    ordinal: f.ordinal,
                    name: c.string()?,
                    total_bytes: f.total_bytes,
                    driver_version: f.driver_version,
                    uuid: f.uuid,
                })
            }
            RecordKind::Pad => return Ok(None),
            RecordKind::Lost => {
                let l: LostRec = c.fixed()?;
                self.notes.lost = l;
                Record::Lost(l)
            }
            RecordKind::Cut => {
                let cut: CutRec = c.fixed()?;
                self.notes.cut = Some(cut);
                Record::Cut(cut)
            }
            RecordKind::PyRuntime | RecordKind::PyCode | RecordKind::PyStack => decode_python(kind, c)?,
        }))
    }

    fn next_record(&mut self) -> Option<Result<Record, TraceError>> {
        loop {
            if self.tail != Tail::Open {
                return None;
            }
            let rest = &self.data[self.pos..];
            if rest.is_empty() {
                self.tail = Tail::Clean;
                return None;
            }
            if rest.len() < 8 {
                // A header cut by the end of the file.
                self.tail = if rest.iter().all(|&b| b == 0) { Tail::Clean } else { Tail::Truncated { offset: self.pos } };
                return None;
            }
            let word = u64::from_le_bytes(rest[..8].try_into().unwrap());
            if word == 0 {
                // Space the writer reserved but never filled: the end of the data.
                self.tail = Tail::Clean;
                return None;
            }
            let offset = self.pos;
            let fail = |reason| {
                Some(Err(TraceError::Corrupt { offset, reason }))
            };
            let Some(h) = RecordHeader::from_u64(word) else {
                self.tail = Tail::Truncated { offset };
                return fail("bad record header");
            };
            let len = h.len as usize;
            if len < 8 || !len.is_multiple_of(8) || len > MAX_RECORD_LEN {
                self.tail = Tail::Truncated { offset };
                return fail("impossible record length");
            }
            if len > rest.len() {
                self.tail = Tail::Truncated { offset };
                return None;
            }
            self.pos += len;
            let Some(kind) = RecordKind::from_u16(h.kind) else {
                continue; // a newer minor version's record: skip it
            };
            match self.decode(kind, offset, &rest[8..len]) {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => continue,
                Err(e) => {
                    self.tail = Tail::Truncated { offset };
                    return Some(Err(e));
                }
            }
        }
    }
}

fn decode_python(kind: RecordKind, mut c: Cursor<'_>) -> Result<Record, TraceError> {
    let offset = c.offset;
    Ok(match kind {
        RecordKind::PyRuntime => {
            let f: PyRuntimeRec = c.fixed()?;
            Record::PyRuntime(PyRuntime {
                t_ns: f.t_ns,
                hexversion: f.hexversion,
                status: f.status,
                eval_start: f.eval_start,
                eval_end: f.eval_end,
                library: c.string()?,
                detail: c.string()?,
            })
        }
        RecordKind::PyCode => {
            let f: PyCodeRec = c.fixed()?;
            Record::PyCode(PyCode {
                id: f.id,
                py_version: f.py_version,
                first_line: f.first_line,
                linetable_cut: f.flags & PY_CODE_LINETABLE_CUT != 0,
                filename: c.string()?,
                name: c.string()?,
                qualname: c.string()?,
                linetable: c.bytes()?.to_vec(),
            })
        }
        _ => {
            let f: PyStackRec = c.fixed()?;
            let n = f.depth as usize;
            let bytes = c.b.get(..n * 8).ok_or(TraceError::Corrupt { offset, reason: "Python stack depth runs past its record" })?;
            let frames = bytes
                .chunks_exact(8)
                .filter_map(|w| PyFrameRec::read_from_bytes(w).ok())
                .map(|r| {
                    let off = r.offset & !PY_FRAME_ENTRY;
                    PyFrame { code_id: r.code_id, offset: (off != PY_NO_OFFSET).then_some(off), entry: r.offset & PY_FRAME_ENTRY != 0 }
                })
                .collect();
            Record::PyStack(PyStack { id: f.id, frames, truncated: f.flags & PY_STACK_TRUNCATED != 0 })
        }
    })
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Record, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}
