//! Where CPython keeps what a stack walk reads, per version.
//!
//! 3.10–3.12: offsets from each version's own headers (`offsets.c`, compiled against the headers
//! of every interpreter on the machine by this module's tests, prints them). They hold for every
//! patch release of a minor version: CPython keeps these structures stable within one. 3.13:
//! read at run time from `_Py_DebugOffsets`, which CPython places at the start of `_PyRuntime` for
//! tools like this one (cookie `xdebugpy`). A later minor version changed that struct's layout, so
//! it is refused by version rather than misread.
//!
//! How frames chain:
//! - 3.10: `tstate->frame` is a `PyFrameObject`; `f_back`, `f_code`, `f_lasti` (an index in code
//!   units). Every Python frame has its own C-level evaluation.
//! - 3.11, 3.12: `tstate->cframe->current_frame` is a `_PyInterpreterFrame`; `previous`,
//!   `f_code`, `prev_instr` (a pointer into the code's bytecode). Python-to-Python calls share one
//!   C-level evaluation: 3.11 flags its first frame (`is_entry`); 3.12 pushes a frame owned by the
//!   C stack below it.
//! - 3.13: `tstate->current_frame`, `f_executable`, `instr_ptr`; C-stack frames as in 3.12.

/// How a version chains its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frames {
    /// 3.10: `PyFrameObject`s, one C-level evaluation each.
    Objects,
    /// 3.11: `_PyInterpreterFrame`s with an `is_entry` flag.
    Flagged,
    /// 3.12+: `_PyInterpreterFrame`s with C-stack-owned frames between evaluations.
    CStack,
}

/// A frame pushed by the C-level evaluation itself (3.12+), not a Python function.
pub const FRAME_OWNED_BY_CSTACK: u8 = 3;
/// A generator's or coroutine's frame: never incomplete (3.11+).
pub const FRAME_OWNED_BY_GENERATOR: u8 = 1;

/// Byte offsets, relative to the start of each structure; `None` where a version has no such field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub frames: Frames,
    pub runtime_finalizing: u64,
    pub runtime_interpreters_head: u64,
    pub interp_next: u64,
    pub tstate_size: u64,
    pub tstate_interp: u64,
    /// 3.10 `frame`, 3.11/3.12 `cframe`, 3.13 `current_frame`.
    pub tstate_frame: u64,
    /// 3.11/3.12: `_PyCFrame.current_frame`.
    pub cframe_current_frame: Option<u64>,
    pub frame_previous: u64,
    pub frame_code: u64,
    /// 3.10 `f_lasti` (i32, code units); later a pointer to the current instruction.
    pub frame_instr: u64,
    pub frame_owner: Option<u64>,
    pub frame_is_entry: Option<u64>,
    pub code_filename: u64,
    pub code_name: u64,
    pub code_qualname: Option<u64>,
    pub code_linetable: u64,
    pub code_firstlineno: u64,
    pub code_code_adaptive: Option<u64>,
    pub code_firsttraceable: Option<u64>,
    /// 3.12+: `co_version`, a number each new code object takes from an interpreter-wide counter
    /// (0 once the counter ran out).
    pub code_version: Option<u64>,
    pub object_type: u64,
    pub bytes_size: u64,
    pub bytes_data: u64,
    pub unicode_length: u64,
    pub unicode_state: u64,
    pub unicode_ascii_size: u64,
    pub unicode_compact_size: u64,
}

impl Layout {
    /// Bytes of a frame the walk reads.
    pub fn frame_extent(&self) -> u64 {
        let fields = [Some(self.frame_previous), Some(self.frame_code), Some(self.frame_instr), self.frame_owner, self.frame_is_entry];
        fields.into_iter().flatten().max().unwrap_or(0) + 8
    }

    /// Bytes of a code object the walk reads.
    pub fn code_extent(&self) -> u64 {
        let fields = [
            Some(self.object_type),
            Some(self.code_filename),
            Some(self.code_name),
            self.code_qualname,
            Some(self.code_linetable),
            Some(self.code_firstlineno),
            self.code_firsttraceable,
            self.code_version,
        ];
        fields.into_iter().flatten().max().unwrap_or(0) + 8
    }
}

/// Offsets shared by every version in this file.
const COMMON: Layout = Layout {
    frames: Frames::CStack,
    runtime_finalizing: 0,
    runtime_interpreters_head: 0,
    interp_next: 0,
    tstate_size: 0,
    tstate_interp: 16,
    tstate_frame: 0,
    cframe_current_frame: None,
    frame_previous: 8,
    frame_code: 0,
    frame_instr: 56,
    frame_owner: Some(70),
    frame_is_entry: None,
    code_filename: 112,
    code_name: 120,
    code_qualname: Some(128),
    code_linetable: 136,
    code_firstlineno: 68,
    code_code_adaptive: None,
    code_firsttraceable: None,
    code_version: None,
    object_type: 8,
    bytes_size: 16,
    bytes_data: 32,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_size: 40,
    unicode_compact_size: 56,
};

pub const V3_10: Layout = Layout {
    frames: Frames::Objects,
    runtime_finalizing: 16,
    runtime_interpreters_head: 32,
    tstate_size: 280,
    tstate_frame: 24,
    frame_previous: 24,
    frame_code: 32,
    frame_instr: 96,
    frame_owner: None,
    code_filename: 104,
    code_name: 112,
    code_qualname: None,
    code_linetable: 120,
    code_firstlineno: 40,
    unicode_ascii_size: 48,
    unicode_compact_size: 72,
    ..COMMON
};

pub const V3_11: Layout = Layout {
    frames: Frames::Flagged,
    runtime_finalizing: 24,
    runtime_interpreters_head: 40,
    tstate_size: 360,
    tstate_frame: 56,
    cframe_current_frame: Some(8),
    frame_previous: 48,
    frame_code: 32,
    frame_owner: Some(69),
    frame_is_entry: Some(68),
    code_firstlineno: 72,
    code_code_adaptive: Some(184),
    code_firsttraceable: Some(168),
    unicode_ascii_size: 48,
    unicode_compact_size: 72,
    ..COMMON
};

pub const V3_12: Layout = Layout {
    runtime_finalizing: 24,
    runtime_interpreters_head: 40,
    tstate_size: 288,
    tstate_frame: 56,
    cframe_current_frame: Some(0),
    code_code_adaptive: Some(192),
    code_firsttraceable: Some(176),
    code_version: Some(92),
    ..COMMON
};

/// The layout of a 3.10–3.12 interpreter (`minor` of 3.x), from its headers.
pub fn from_headers(minor: u32) -> Option<Layout> {
    match minor {
        10 => Some(V3_10),
        11 => Some(V3_11),
        12 => Some(V3_12),
        _ => None,
    }
}

/// The part of 3.13's `_Py_DebugOffsets` the walk uses: (field, byte offset of its u64 inside the
/// struct). The struct is a cookie, a version, a free-threaded flag, then sections of u64
/// offsets, each section starting with the size of the structure it describes.
mod debug_offsets_3_13 {
    pub const VERSION: u64 = 8;
    pub const FREE_THREADED: u64 = 16;
    pub const RUNTIME_FINALIZING: u64 = 32;
    pub const RUNTIME_INTERPRETERS_HEAD: u64 = 40;
    pub const INTERP_NEXT: u64 = 64;
    pub const TSTATE_SIZE: u64 = 152;
    pub const TSTATE_INTERP: u64 = 176;
    pub const TSTATE_CURRENT_FRAME: u64 = 184;
    pub const FRAME_SIZE: u64 = 224;
    pub const FRAME_PREVIOUS: u64 = 232;
    pub const FRAME_EXECUTABLE: u64 = 240;
    pub const FRAME_INSTR_PTR: u64 = 248;
    pub const FRAME_OWNER: u64 = 264;
    pub const CODE_FILENAME: u64 = 280;
    pub const CODE_NAME: u64 = 288;
    pub const CODE_QUALNAME: u64 = 296;
    pub const CODE_LINETABLE: u64 = 304;
    pub const CODE_FIRSTLINENO: u64 = 312;
    pub const CODE_LOCALSPLUSNAMES: u64 = 328;
    pub const CODE_CODE_ADAPTIVE: u64 = 344;
    pub const OBJECT_TYPE: u64 = 360;
    pub const BYTES_SIZE: u64 = 520;
    pub const BYTES_DATA: u64 = 528;
    pub const UNICODE_STATE: u64 = 544;
    pub const UNICODE_LENGTH: u64 = 552;
    pub const UNICODE_ASCII_SIZE: u64 = 560;
}

/// The cookie `_Py_DebugOffsets` starts with.
pub const DEBUG_COOKIE: &[u8; 8] = b"xdebugpy";
/// Offset of `_Py_DebugOffsets.free_threaded`, the same in every version that has the struct.
pub const DEBUG_FREE_THREADED: u64 = debug_offsets_3_13::FREE_THREADED;

/// A 3.13 layout from the `_Py_DebugOffsets` at `read`'s offset 0 (`read(off)` reads the u64 at
/// that offset of the struct). `Err` names what did not fit.
pub fn from_debug_offsets(hexversion: u32, mut read: impl FnMut(u64) -> Option<u64>) -> Result<Layout, String> {
    use debug_offsets_3_13 as d;
    let mut get = |off: u64| read(off).ok_or_else(|| "_Py_DebugOffsets is not readable".to_string());
    if get(d::VERSION)? != hexversion as u64 {
        return Err("_Py_DebugOffsets.version differs from Py_Version".into());
    }
    let compact_extra = 16; // PyCompactUnicodeObject adds utf8_length and utf8 to PyASCIIObject
    let l = Layout {
        frames: Frames::CStack,
        runtime_finalizing: get(d::RUNTIME_FINALIZING)?,
        runtime_interpreters_head: get(d::RUNTIME_INTERPRETERS_HEAD)?,
        interp_next: get(d::INTERP_NEXT)?,
        tstate_size: get(d::TSTATE_SIZE)?,
        tstate_interp: get(d::TSTATE_INTERP)?,
        tstate_frame: get(d::TSTATE_CURRENT_FRAME)?,
        cframe_current_frame: None,
        frame_previous: get(d::FRAME_PREVIOUS)?,
        frame_code: get(d::FRAME_EXECUTABLE)?,
        frame_instr: get(d::FRAME_INSTR_PTR)?,
        frame_owner: Some(get(d::FRAME_OWNER)?),
        frame_is_entry: None,
        code_filename: get(d::CODE_FILENAME)?,
        code_name: get(d::CODE_NAME)?,
        code_qualname: Some(get(d::CODE_QUALNAME)?),
        code_linetable: get(d::CODE_LINETABLE)?,
        code_firstlineno: get(d::CODE_FIRSTLINENO)?,
        code_code_adaptive: Some(get(d::CODE_CODE_ADAPTIVE)?),
        code_firsttraceable: None,
        // Not among the debug offsets: the u32 just before `co_localsplusnames` (checked
        // against the 3.13 headers by the tests).
        code_version: Some(get(d::CODE_LOCALSPLUSNAMES)?.checked_sub(4).ok_or("_Py_DebugOffsets: co_localsplusnames at 0")?),
        object_type: get(d::OBJECT_TYPE)?,
        bytes_size: get(d::BYTES_SIZE)?,
        bytes_data: get(d::BYTES_DATA)?,
        unicode_length: get(d::UNICODE_LENGTH)?,
        unicode_state: get(d::UNICODE_STATE)?,
        unicode_ascii_size: get(d::UNICODE_ASCII_SIZE)?,
        unicode_compact_size: get(d::UNICODE_ASCII_SIZE)? + compact_extra,
    };
    // Sizes bound every offset: a struct that does not describe itself consistently is not used.
    let frame_size = get(d::FRAME_SIZE)?;
    if l.frame_extent() > frame_size + 8 || l.tstate_frame + 8 > l.tstate_size || l.tstate_interp + 8 > l.tstate_size {
        return Err("_Py_DebugOffsets describes fields outside their structures".into());
    }
    Ok(l)
}

#[cfg(test)]
mod tests;
