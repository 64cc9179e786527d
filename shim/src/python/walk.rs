//! The calling thread's Python frames, read where the interpreter keeps them.
//!
//! The thread state comes from `PyGILState_GetThisThreadState()`: it reads a thread-specific key,
//! is documented as callable without the GIL, allocates nothing, and answers for threads that
//! released the GIL (ctypes, torch ops) as for those holding it; a thread Python never saw gets
//! NULL. It is only asked once `Py_IsInitialized()` says the key exists. The thread is parked in
//! our hook, so its own frame chain cannot change under us, and each frame holds a reference to
//! its code object, so neither can be freed meanwhile.
//!
//! The walk is bounded (the configured depth, plus a bound on frames skipped), guarded against
//! cycles (Brent), and every read goes through `Mem`, so a wrong pointer ends it early (the stack
//! is then marked truncated) instead of faulting.

use super::find::{self, Interp};
use super::layout::{Frames, Layout, FRAME_OWNED_BY_CSTACK, FRAME_OWNED_BY_GENERATOR};
use super::mem::{Mem, Slot};
use std::hash::Hasher;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use vramtrace_trace::record::{PY_FRAME_ENTRY, PY_NO_OFFSET};
use vramtrace_trace::PyStatus;

/// Most Python frames kept per stack (the recorder caps the configured depth at the same).
pub const FRAMES_MAX: usize = 128;

/// One frame as captured: the code object's address, a fingerprint that tells it apart from a
/// later code object at the same address (see `fingerprint`), and the frame's
/// `PyFrameRec::offset` (instruction byte offset and entry bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RawFrame {
    pub code: u64,
    pub fingerprint: u32,
    pub offset: u32,
}

/// Ends a truncated stack's key, so a full stack and a truncated one never share an id.
const TRUNCATED: RawFrame = RawFrame { code: 0, fingerprint: u32::MAX, offset: u32::MAX };

/// The Python side of one event.
pub struct Capture {
    /// The process's interpreter (None: no Python, or not initialized yet).
    pub interp: Option<&'static Interp>,
    /// Why there are no frames, when the interpreter's layout is unknown or several interpreters
    /// run; `Capturing` otherwise (a thread without Python state has no frames and this status).
    pub status: PyStatus,
    pub truncated: bool,
    /// Hash of `key()`, computed when the walk ends.
    pub hash: u64,
    len: usize,
    /// `frames[..len]`, innermost first, then `TRUNCATED` when truncated.
    frames: [MaybeUninit<RawFrame>; FRAMES_MAX + 1],
}

impl Capture {
    /// An empty capture, ready for [`Capture::fill`].
    #[inline(always)]
    pub fn new() -> Self {
        Capture { interp: None, status: PyStatus::Capturing, truncated: false, hash: 0, len: 0, frames: [const { MaybeUninit::uninit() }; FRAMES_MAX + 1] }
    }

    /// The calling thread's Python stack, innermost first, at most `depth` frames. Filled in
    /// place: a `Capture` is 2 KiB, too much to copy per event.
    #[inline]
    pub fn fill(&mut self, depth: usize) {
        if depth != 0 && enabled() {
            fill(self, depth);
        }
    }

    pub fn frames(&self) -> &[RawFrame] {
        // SAFETY: `push` initialized `frames[..len]`.
        unsafe { std::slice::from_raw_parts(self.frames.as_ptr().cast(), self.len) }
    }

    /// The frames, then a marker if truncated: equal keys mean the same stack record.
    pub fn key(&self) -> &[RawFrame] {
        let n = self.len + self.truncated as usize;
        // SAFETY: `push` initialized `frames[..len]`, `finish` the marker after them.
        unsafe { std::slice::from_raw_parts(self.frames.as_ptr().cast(), n) }
    }

    fn push(&mut self, f: RawFrame) {
        self.frames[self.len].write(f);
        self.len += 1;
    }

    /// Flags the last frame pushed as the first of its C-level evaluation.
    fn mark_entry(&mut self) {
        if let Some(f) = self.len.checked_sub(1) {
            // SAFETY: `frames[..len]` is initialized.
            unsafe { self.frames[f].assume_init_mut() }.offset |= PY_FRAME_ENTRY;
        }
    }

    fn finish(&mut self, truncated: bool) {
        self.truncated = truncated;
        if truncated {
            self.frames[self.len].write(TRUNCATED);
        }
        // Two independent rotate-xor lanes (short dependency chains), mixed once at the end.
        let (mut a, mut b) = (0u64, 0u64);
        for f in self.key() {
            a = a.rotate_left(5) ^ f.code;
            b = b.rotate_left(5) ^ ((f.fingerprint as u64) << 32 | f.offset as u64);
        }
        let h = (a ^ b.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.hash = h ^ h >> 29;
    }
}

/// `VRAMTRACE_PYTHON=0` turns capture off: 0 = not read yet, 1 = on, 2 = off.
static ENABLED: AtomicU8 = AtomicU8::new(0);

fn enabled() -> bool {
    let mut e = ENABLED.load(Relaxed);
    if e == 0 {
        e = match std::env::var_os("VRAMTRACE_PYTHON") {
            Some(v) if v == "0" => 2,
            Some(v) if v == "1" || v.is_empty() => 1,
            Some(v) => {
                crate::sys::warn(&format!("VRAMTRACE_PYTHON={v:?} is neither 0 nor 1; Python stacks stay on"));
                1
            }
            None => 1,
        };
        ENABLED.store(e, Relaxed);
    }
    e == 1
}

fn fill(cap: &mut Capture, depth: usize) {
    let Some(interp) = find::current() else { return };
    cap.status = interp.status;
    let (Some(l), Some(initialized), Some(gilstate)) = (interp.layout, interp.initialized, interp.gilstate) else {
        cap.interp = Some(interp);
        return;
    };
    // SAFETY: `Py_IsInitialized` reads one field of `_PyRuntime`: no GIL, no allocation.
    if unsafe { initialized() } == 0 {
        return;
    }
    cap.interp = Some(interp);
    let Some(mut mem) = Mem::pin() else { return };
    let Some(head) = mem.u64(interp.runtime + l.runtime_interpreters_head).filter(|&h| h != 0) else { return };
    if mem.u64(head + l.interp_next) != Some(0) {
        cap.status = PyStatus::Subinterpreters;
        return;
    }
    if mem.u64(interp.runtime + l.runtime_finalizing) != Some(0) {
        return;
    }
    // SAFETY: see the module comment: a GIL-free read of a thread-specific key, valid once the
    // interpreter is initialized (checked above).
    let ts = unsafe { gilstate() } as u64;
    let Some(t) = mem.view(ts, l.tstate_size).filter(|t| ts != 0 && t.u64(l.tstate_interp) == Some(head)) else { return };
    let mut frame = t.u64(l.tstate_frame).unwrap_or(0);
    if let Some(off) = l.cframe_current_frame {
        frame = if frame == 0 { 0 } else { mem.u64(frame + off).unwrap_or(0) };
    }
    let truncated = walk(cap, &mut mem, interp, &l, frame, depth.min(FRAMES_MAX));
    cap.finish(truncated);
}

/// What one frame of the chain is.
enum Kind {
    Python { code: u64, offset: u64, entry: bool },
    /// 3.12+: pushed by a C-level evaluation below its first Python frame.
    Boundary,
    /// Not shown by Python either (a frame that has not started).
    Skip,
}

/// Walks from `frame` outwards; returns whether frames were left out.
fn walk(cap: &mut Capture, mem: &mut Mem, interp: &Interp, l: &Layout, mut frame: u64, depth: usize) -> bool {
    let extents = (l.frame_extent(), l.code_extent());
    let limit = depth * 2 + 16;
    let (mut saved, mut power, mut steps) = (0u64, 1usize, 0usize);
    let mut visited = 0;
    while frame != 0 {
        visited += 1;
        if visited > limit || frame == saved {
            return true;
        }
        steps += 1;
        if steps == power {
            (saved, power, steps) = (frame, power * 2, 0);
        }
        let Some((kind, previous)) = read_frame(mem, l, extents.0, frame, cap.len == 0) else { return true };
        match kind {
            Kind::Python { code, offset, entry } => {
                if cap.len == depth {
                    return true;
                }
                let Some(fingerprint) = fingerprint(mem, interp, l, extents.1, code) else { return true };
                let offset = offset as u32 | if entry { PY_FRAME_ENTRY } else { 0 };
                cap.push(RawFrame { code, fingerprint, offset });
            }
            Kind::Boundary => cap.mark_entry(),
            Kind::Skip => {}
        }
        frame = previous;
    }
    false
}

/// One frame: what it is and the next one out. Only the innermost Python frame can be one that
/// has not started (every frame further out is calling something), so only it is checked.
fn read_frame(mem: &mut Mem, l: &Layout, extent: u64, frame: u64, innermost: bool) -> Option<(Kind, u64)> {
    let f = mem.view_as(Slot::Frame, frame, extent)?;
    let previous = f.u64(l.frame_previous)?;
    let code = f.u64(l.frame_code)?;
    if l.frames == Frames::Objects {
        let lasti = f.u32(l.frame_instr)? as i32;
        let offset = if (0..PY_NO_OFFSET as i32 / 2).contains(&lasti) { lasti as u64 * 2 } else { PY_NO_OFFSET as u64 };
        return Some((Kind::Python { code, offset, entry: true }, previous));
    }
    let owner = f.u8(l.frame_owner?)?;
    if l.frames == Frames::CStack && owner == FRAME_OWNED_BY_CSTACK {
        return Some((Kind::Boundary, previous));
    }
    let instr = f.u64(l.frame_instr)?;
    let start = code.checked_add(l.code_code_adaptive?)?;
    if let Some(ft) = l.code_firsttraceable.filter(|_| innermost && owner != FRAME_OWNED_BY_GENERATOR) {
        // Not past its RESUME yet: `_PyFrame_IsIncomplete`, which Python's own walks skip too.
        let first = mem.u32(code.checked_add(ft)?)? as i32 as i64;
        if (instr as i64) < start as i64 + first * 2 {
            return Some((Kind::Skip, previous));
        }
    }
    let offset = instr.checked_sub(start).filter(|&o| o < PY_NO_OFFSET as u64).unwrap_or(PY_NO_OFFSET as u64);
    let entry = match l.frame_is_entry {
        Some(off) => f.u8(off)? != 0,
        None => false,
    };
    Some((Kind::Python { code, offset, entry }, previous))
}

/// Checks that `code` is a code object and returns what tells it apart from another code object
/// later created at the same address. 3.12+: its `co_version`, unique per code object. 3.10,
/// 3.11 (or an exhausted counter): a hash of the addresses of its file name, names and line table
/// objects, its first line, and the line table's length and first 8 bytes; a different code
/// object at the same address differs in one of them unless it shares all those objects and
/// starts with the same line entries.
fn fingerprint(mem: &mut Mem, interp: &Interp, l: &Layout, extent: u64, code: u64) -> Option<u32> {
    let c = mem.view_as(Slot::Code, code, extent)?;
    if c.u64(l.object_type)? != interp.code_type {
        return None;
    }
    if let Some(version) = l.code_version.and_then(|off| c.u32(off)).filter(|&v| v != 0) {
        return Some(version);
    }
    let mut h = rustc_hash::FxHasher::default();
    for off in [Some(l.code_filename), Some(l.code_name), l.code_qualname].into_iter().flatten() {
        h.write_u64(c.u64(off)?);
    }
    h.write_u32(c.u32(l.code_firstlineno)?);
    let table = c.u64(l.code_linetable)?;
    let t = mem.view_as(Slot::Bytes, table, l.bytes_data + 8)?;
    if t.u64(l.object_type)? != interp.bytes_type {
        return None;
    }
    let len = t.u64(l.bytes_size)?;
    let mask = if len >= 8 { u64::MAX } else { (1u64 << (len * 8)) - 1 };
    h.write_u64(table);
    h.write_u64(len);
    h.write_u64(t.u64(l.bytes_data)? & mask);
    let h = h.finish();
    Some((h >> 32) as u32 ^ h as u32)
}
