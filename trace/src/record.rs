//! Fixed-layout records. Every record is `RecordHeader` (8 bytes) + a payload, padded to 8 bytes.
//! Layouts are `#[repr(C)]` little-endian structs read and written with zerocopy, so a record is
//! one `memcpy` in the shim's hot path and needs no parsing code that can drift from the writer.
//! See `docs/trace-format.md` for the normative description.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// First 8 bytes of every trace file.
pub const MAGIC: [u8; 8] = *b"VRAMTRC\0";
/// Major format version: a reader refuses a newer major. Minor additions (new record kinds,
/// fields appended to a record's tail) keep the major and are skipped by older readers.
pub const VERSION_MAJOR: u16 = 1;
/// 1.1: Device records. 1.2: Lost and Cut records; Python stacks (PyRuntime, PyCode and
/// PyStack records, an event's `py_stack_id`, a marker's Python stack id after its label).
pub const VERSION_MINOR: u16 = 2;
/// Size of the file header: magic + major + minor + 4 reserved bytes.
pub const FILE_HEADER_LEN: usize = 16;
/// Largest record a reader accepts; a bigger length is corruption, not data.
pub const MAX_RECORD_LEN: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum RecordKind {
    Info = 1,
    Module = 2,
    Stack = 3,
    Event = 4,
    Marker = 5,
    End = 6,
    /// Filler to the end of a pre-allocated file chunk; carries nothing.
    Pad = 7,
    /// A GPU the process created a context on (since 1.1).
    Device = 8,
    /// Running totals of calls the shim let through unrecorded (since 1.2).
    Lost = 9,
    /// Recording stopped early: the file could not grow (since 1.2).
    Cut = 10,
    /// The CPython interpreter found in the process and whether its stacks are captured (since 1.2).
    PyRuntime = 11,
    /// A Python code object, written once (since 1.2).
    PyCode = 12,
    /// A deduplicated Python stack (since 1.2).
    PyStack = 13,
}

impl RecordKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Info,
            2 => Self::Module,
            3 => Self::Stack,
            4 => Self::Event,
            5 => Self::Marker,
            6 => Self::End,
            7 => Self::Pad,
            8 => Self::Device,
            9 => Self::Lost,
            10 => Self::Cut,
            11 => Self::PyRuntime,
            12 => Self::PyCode,
            13 => Self::PyStack,
            _ => return None,
        })
    }
}

/// The 8-byte record header, stored as one little-endian u64 so a writer can publish a record
/// with a single atomic store after its payload is in place: a reader then never sees a torn
/// record, only zeros (end of data) or a complete one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Total record length in bytes, header and padding included; a multiple of 8, at least 8.
    pub len: u32,
    pub kind: u16,
}

impl RecordHeader {
    fn check(len: u32, kind: u16) -> u16 {
        (len as u16) ^ ((len >> 16) as u16) ^ kind ^ 0x5A5A
    }
    pub fn to_u64(self) -> u64 {
        self.len as u64 | (self.kind as u64) << 32 | (Self::check(self.len, self.kind) as u64) << 48
    }
    /// Decodes a header word; `None` if the check bits do not match (corruption).
    pub fn from_u64(w: u64) -> Option<Self> {
        let len = w as u32;
        let kind = (w >> 32) as u16;
        let check = (w >> 48) as u16;
        (check == Self::check(len, kind)).then_some(RecordHeader { len, kind })
    }
}

/// Process description; the first record of every file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct InfoRec {
    pub pid: u32,
    pub ppid: u32,
    /// CLOCK_MONOTONIC (ns) when the file was created; event times use the same clock.
    pub mono_ns: u64,
    /// CLOCK_REALTIME (ns since the epoch) taken at the same moment, to show wall-clock times.
    pub realtime_ns: u64,
    /// Configured stack depth (0 = stacks off).
    pub stack_depth: u32,
    pub _reserved: u32,
    // followed by strings: executable, command line (arguments joined by NUL), vramtrace version,
    // host name
}

/// A loaded module (shared object or the executable), for offline symbolization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ModuleRec {
    pub id: u32,
    pub build_id_len: u32,
    /// Load bias: runtime address = `base` + address in the ELF file.
    pub base: u64,
    /// Lowest and highest runtime address covered by the module's loadable segments.
    pub start: u64,
    pub end: u64,
    pub build_id: [u8; 32],
    // followed by one string: the path
}

/// Devices a trace may name: ordinals 0..MAX_DEVICES, and -1 for host memory or a call whose
/// device the shim could not tell. Anything else in an event is corruption, not a GPU.
pub const MAX_DEVICES: i32 = 64;

/// Whether `device` is an ordinal a trace may name (see [`MAX_DEVICES`]).
pub const fn valid_device(device: i32) -> bool {
    device == -1 || (device >= 0 && device < MAX_DEVICES)
}

/// Most frames a stack may record (`VRAMTRACE_STACK_DEPTH`, `--stack-depth`).
pub const MAX_STACK_DEPTH: u32 = 128;

/// A deduplicated call stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct StackRec {
    /// Stack id, > 0; events refer to it. Ids are per file.
    pub id: u32,
    pub depth: u32,
    // followed by `depth` u64 return addresses, innermost first
}

/// One intercepted driver call. Field meaning per function: `docs/trace-format.md`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EventRec {
    pub t_ns: u64,
    /// Bytes requested / mapped / reserved.
    pub size: u64,
    /// Device or host pointer, or virtual address.
    pub ptr: u64,
    /// VMM handle, pool, or context.
    pub handle: u64,
    /// VMM map offset, reserve alignment, or pitch.
    pub offset: u64,
    pub flags: u64,
    pub stream: u64,
    /// Driver-reported free / total bytes, when known (0 when not).
    pub free: u64,
    pub total: u64,
    pub tid: u32,
    /// 0 = no stack captured.
    pub stack_id: u32,
    /// Device ordinal, -1 = host or unknown.
    pub device: i32,
    /// CUresult as returned to the program.
    pub result: u32,
    /// `Api` id.
    pub api: u16,
    pub _pad: u16,
    /// The calling thread's Python stack (a PyStack record's id); 0 = none (since 1.2; zero
    /// padding before).
    pub py_stack_id: u32,
}

/// A user marker (`vramtrace_mark(label, value)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MarkerRec {
    pub t_ns: u64,
    pub value: i64,
    pub tid: u32,
    pub stack_id: u32,
    // followed by one string: the label, then (since 1.2) a u32: the Python stack id, 0 = none
}

/// A GPU as the driver describes it, written once per device when the process first creates a
/// context on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DeviceRec {
    pub t_ns: u64,
    /// `cuDeviceTotalMem` (0 if unknown).
    pub total_bytes: u64,
    pub ordinal: i32,
    /// `cuDriverGetVersion`, e.g. 12090 (0 if unknown).
    pub driver_version: i32,
    /// `cuDeviceGetUuid` (zeros if unknown).
    pub uuid: [u8; 16],
    // followed by one string: the device name (`cuDeviceGetName`)
}

/// What the shim found out about the CPython interpreter of the process, written once per file for
/// each status it reaches (a later status, such as a second interpreter appearing, is written
/// when it happens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PyRuntimeRec {
    pub t_ns: u64,
    /// Address range of the interpreter's `_PyEval_EvalFrameDefault` (0, 0 when unknown): the
    /// native frames the Python frames belong to.
    pub eval_start: u64,
    pub eval_end: u64,
    /// `PY_VERSION_HEX` of the interpreter (0 when unknown).
    pub hexversion: u32,
    /// [`PyStatus`] code.
    pub status: u32,
    // followed by strings: the object holding the interpreter (path), a detail
}

/// Whether Python stacks are captured, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PyStatus {
    /// Events carry the Python stack of the calling thread.
    Capturing = 0,
    /// A Python version whose layout this shim does not know (older than 3.10, or newer than the
    /// `_Py_DebugOffsets` layouts it knows).
    UnsupportedVersion = 1,
    /// The interpreter's structures did not pass the shim's checks.
    UnknownLayout = 2,
    /// A free-threaded (no-GIL) build.
    FreeThreaded = 3,
    /// More than one interpreter in the process.
    Subinterpreters = 4,
}

impl PyStatus {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Capturing,
            1 => Self::UnsupportedVersion,
            2 => Self::UnknownLayout,
            3 => Self::FreeThreaded,
            4 => Self::Subinterpreters,
            _ => return None,
        })
    }
}

/// A Python code object. Written once per file before the first stack that refers to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PyCodeRec {
    /// Code id, > 0; Python frames refer to it. Ids are per file.
    pub id: u32,
    /// `PY_VERSION_HEX` of the interpreter: says how to read the line table.
    pub py_version: u32,
    /// `co_firstlineno`.
    pub first_line: u32,
    /// Bit 0: the line table was cut short (offsets past its end have no known line).
    pub flags: u32,
    // followed by strings: co_filename, co_name, co_qualname (empty before 3.11), co_linetable
    // (raw bytes)
}

pub const PY_CODE_LINETABLE_CUT: u32 = 1;

/// A deduplicated Python stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PyStackRec {
    /// Stack id, > 0; events and markers refer to it. Ids are per file.
    pub id: u32,
    pub depth: u16,
    /// Bit 0: the thread had more Python frames than recorded.
    pub flags: u16,
    // followed by `depth` PyFrameRec, innermost first
}

pub const PY_STACK_TRUNCATED: u16 = 1;

/// One Python frame of a PyStack record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PyFrameRec {
    pub code_id: u32,
    /// Bits 0–30: byte offset of the current instruction in the code (`PyCode_Addr2Line`'s
    /// argument), or [`PY_NO_OFFSET`]. Bit 31 ([`PY_FRAME_ENTRY`]): this frame is the first one
    /// of a C-level `_PyEval_EvalFrameDefault` invocation.
    pub offset: u32,
}

/// The frame has not started executing: its line is the code's first line.
pub const PY_NO_OFFSET: u32 = 0x7fff_ffff;
pub const PY_FRAME_ENTRY: u32 = 1 << 31;

/// Written when the process exits normally. Its absence means the process crashed or was killed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EndRec {
    pub t_ns: u64,
    pub _reserved: u64,
}

/// Running totals, since the file began, of what the shim let through without recording it: calls
/// that arrived while the same thread was inside the shim's own code (a signal handler that
/// interrupted it) and calls made after the file was cut. Written before the next record once a
/// total changed, and before End; the last one in the file has the final totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct LostRec {
    pub t_ns: u64,
    /// Driver calls and markers not recorded.
    pub calls: u64,
    /// `dlsym` / `cuGetProcAddress` answers handed back without our wrapper (calls made later
    /// through those pointers are not recorded either).
    pub lookups: u64,
}

/// The file could not grow (disk full, file size limit, its descriptor taken over by the program):
/// nothing after this point was recorded, except a final Lost and End record, for which space was
/// kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CutRec {
    pub t_ns: u64,
    /// The `errno` that stopped growth (ENOSPC 28, EFBIG 27, EBADF 9, ...).
    pub errno: i32,
    pub _reserved: u32,
    /// File size in bytes when it was cut.
    pub bytes: u64,
}

pub const fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

/// Encodes one record into `out[8..]` and returns its header word and total length; the caller
/// stores the header word into `out[..8]` (atomically, when publishing into a shared mapping).
/// `strings` are appended as u32 length + bytes; `raw` is appended verbatim after them.
/// Returns `None` if `out` is too small.
pub fn encode<T: IntoBytes + Immutable + ?Sized>(
    kind: RecordKind,
    fixed: &T,
    raw: &[u8],
    strings: &[&[u8]],
    out: &mut [u8],
) -> Option<(u64, usize)> {
    let mut n = 8;
    let mut put = |b: &[u8], n: &mut usize| -> Option<()> {
        out.get_mut(*n..*n + b.len())?.copy_from_slice(b);
        *n += b.len();
        Some(())
    };
    put(fixed.as_bytes(), &mut n)?;
    for s in strings {
        put(&(s.len() as u32).to_le_bytes(), &mut n)?;
        put(s, &mut n)?;
    }
    put(raw, &mut n)?;
    let total = pad8(n);
    if total > MAX_RECORD_LEN {
        return None;
    }
    out.get_mut(n..total)?.fill(0);
    let header = RecordHeader { len: total as u32, kind: kind as u16 };
    Some((header.to_u64(), total))
}

/// Encodes a record with its header in place, for writers that publish with a plain write.
pub fn encode_full<T: IntoBytes + Immutable + ?Sized>(
    kind: RecordKind,
    fixed: &T,
    raw: &[u8],
    strings: &[&[u8]],
    out: &mut [u8],
) -> Option<usize> {
    let (h, len) = encode(kind, fixed, raw, strings, out)?;
    out[..8].copy_from_slice(&h.to_le_bytes());
    Some(len)
}

/// The 16-byte file header.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    h[10..12].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    h
}
