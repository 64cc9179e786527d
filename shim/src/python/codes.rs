//! Python stacks as trace records: per trace file, each code object is written once (file name,
//! names, first line, raw line table, Python version) and each distinct stack once (code ids and
//! instruction offsets), so an event carries one stack id, as for native stacks.
//!
//! Code identity: a code object's address is only a cache key. Each captured frame carries a
//! fingerprint of the code object (see `walk::fingerprint`); an address seen again with another
//! fingerprint holds a new code object, which is read and described again. Code ids are given by
//! content, so two code objects with the same file, names, first line and line table share one.

use super::find::Interp;
use super::layout::Layout;
use super::mem::Mem;
use super::walk::{Capture, RawFrame};
use rustc_hash::FxHashMap;
use vramtrace_trace::record::{PyCodeRec, PyFrameRec, PyRuntimeRec, PyStackRec, RecordKind, PY_CODE_LINETABLE_CUT, PY_STACK_TRUNCATED};
use vramtrace_trace::PyStatus;
use zerocopy::IntoBytes;

/// Writes one record: kind, fixed part, strings, then raw bytes after them. An error (the file
/// needs to grow first) leaves the tables as if the record had never been asked for: a table
/// entry is added only once its record is written, so a retried `add` neither repeats nor skips
/// a record.
pub type Emit<'a, E> = dyn FnMut(RecordKind, &[u8], &[u8], &[&[u8]]) -> Result<(), E> + 'a;

/// Characters kept of a file name or a name; line-table bytes kept. Together they keep a code
/// record well inside the shim's 64 KiB record buffer.
const NAME_MAX_CHARS: u64 = 1024;
const LINETABLE_MAX: u64 = 48 << 10;

/// What has been written to one trace file. Lives with the file's writer: a new file (after a
/// fork) starts empty.
#[derive(Default)]
pub struct Tables {
    /// Captured stacks (`Capture::hash`, frames) → stack id.
    seen: hashbrown::HashTable<(u64, Box<[RawFrame]>, u32)>,
    /// Stacks by content (code id and offset per frame, then the truncation flag) → stack id.
    stacks: FxHashMap<Box<[u64]>, u32>,
    /// Code object address → (fingerprint, code id) last found there.
    at: FxHashMap<u64, (u32, u32)>,
    /// Code objects by content → code id.
    codes: FxHashMap<Box<[u8]>, u32>,
    /// (interpreter, status) pairs a PyRuntime record already describes.
    described: Vec<(usize, PyStatus)>,
}

fn tag(cap: &Capture, interp: &Interp) -> (usize, PyStatus) {
    (interp as *const Interp as usize, cap.status)
}

impl Tables {
    /// The stack id of `cap` when nothing needs writing for it (the common case: a stack seen
    /// before); `None` sends the caller to [`Tables::add`].
    pub fn known(&self, cap: &Capture) -> Option<u32> {
        let Some(interp) = cap.interp else { return Some(0) };
        if !self.described.contains(&tag(cap, interp)) {
            return None;
        }
        if cap.frames().is_empty() {
            return Some(0);
        }
        self.seen_id(cap)
    }

    fn seen_id(&self, cap: &Capture) -> Option<u32> {
        self.seen.find(cap.hash, |(h, frames, _)| *h == cap.hash && **frames == *cap.key()).map(|e| e.2)
    }

    /// Writes, through `emit`, whatever `cap` needs that this file lacks (the interpreter's
    /// description, new code objects, the stack), and returns the stack id (0 = no Python stack).
    pub fn add<E>(&mut self, cap: &Capture, emit: &mut Emit<E>) -> Result<u32, E> {
        let Some(interp) = cap.interp else { return Ok(0) };
        if !self.described.contains(&tag(cap, interp)) {
            describe_runtime(cap, interp, emit)?;
            self.described.push(tag(cap, interp));
        }
        if cap.frames().is_empty() {
            return Ok(0);
        }
        if let Some(id) = self.seen_id(cap) {
            return Ok(id);
        }
        let mut mem = None;
        let mut recs = Vec::with_capacity(cap.frames().len());
        let mut content = Vec::with_capacity(cap.frames().len() + 1);
        for f in cap.frames() {
            let code_id = self.code_id(interp, f, &mut mem, emit)?;
            recs.push(PyFrameRec { code_id, offset: f.offset });
            content.push((code_id as u64) << 32 | f.offset as u64);
        }
        content.push(cap.truncated as u64);
        let id = intern(&mut self.stacks, content, |id| {
            let flags = if cap.truncated { PY_STACK_TRUNCATED } else { 0 };
            let rec = PyStackRec { id, depth: recs.len() as u16, flags };
            emit(RecordKind::PyStack, rec.as_bytes(), recs.as_bytes(), &[])
        })?;
        self.seen.insert_unique(cap.hash, (cap.hash, cap.key().into(), id), |e| e.0);
        Ok(id)
    }

    fn code_id<E>(&mut self, interp: &Interp, f: &RawFrame, mem: &mut Option<Mem>, emit: &mut Emit<E>) -> Result<u32, E> {
        if let Some(&(fp, id)) = self.at.get(&f.code) {
            if fp == f.fingerprint {
                return Ok(id);
            }
        }
        if mem.is_none() {
            *mem = Mem::pin();
        }
        let code = match (mem.as_mut(), interp.layout) {
            (Some(m), Some(l)) => Code::read(m, interp, &l, f.code),
            _ => Code::unreadable(),
        };
        let id = intern(&mut self.codes, code.key(), |id| {
            let flags = if code.cut { PY_CODE_LINETABLE_CUT } else { 0 };
            let rec = PyCodeRec { id, py_version: interp.hexversion, first_line: code.first_line, flags };
            emit(RecordKind::PyCode, rec.as_bytes(), &[], &[&code.filename, &code.name, &code.qualname, &code.linetable])
        })?;
        self.at.insert(f.code, (f.fingerprint, id));
        Ok(id)
    }
}

/// The id of `key` in `ids`; a new key gets the next id (1, 2, …), announced to `new`, and is
/// entered only once `new` succeeded.
fn intern<T: Eq + std::hash::Hash, E>(ids: &mut FxHashMap<Box<[T]>, u32>, key: Vec<T>, new: impl FnOnce(u32) -> Result<(), E>) -> Result<u32, E> {
    if let Some(&id) = ids.get(key.as_slice()) {
        return Ok(id);
    }
    let id = ids.len() as u32 + 1;
    new(id)?;
    ids.insert(key.into(), id);
    Ok(id)
}

fn describe_runtime<E>(cap: &Capture, interp: &Interp, emit: &mut Emit<E>) -> Result<(), E> {
    let detail = if cap.status == interp.status {
        interp.detail.clone()
    } else {
        format!("{}: more than one interpreter runs in the process; Python stacks are not captured", interp.detail)
    };
    let rec = PyRuntimeRec {
        t_ns: crate::sys::now_ns(),
        eval_start: interp.eval.0,
        eval_end: interp.eval.1,
        hexversion: interp.hexversion,
        status: cap.status as u32,
    };
    emit(RecordKind::PyRuntime, rec.as_bytes(), &[], &[interp.library.as_bytes(), detail.as_bytes()])
}

/// What a code record says about a code object.
struct Code {
    first_line: u32,
    filename: Vec<u8>,
    name: Vec<u8>,
    qualname: Vec<u8>,
    linetable: Vec<u8>,
    cut: bool,
}

impl Code {
    fn unreadable() -> Code {
        Code { first_line: 0, filename: b"?".to_vec(), name: b"?".to_vec(), qualname: Vec::new(), linetable: Vec::new(), cut: true }
    }

    /// Reads the code object at `code` (checked to be one by the capture).
    fn read(m: &mut Mem, interp: &Interp, l: &Layout, code: u64) -> Code {
        let mut c = Code::unreadable();
        let field = |m: &mut Mem, off: Option<u64>| off.and_then(|o| m.u64(code + o)).map_or(Vec::new(), |p| string(m, interp, l, p));
        c.filename = field(m, Some(l.code_filename));
        c.name = field(m, Some(l.code_name));
        c.qualname = field(m, l.code_qualname);
        c.first_line = m.u32(code + l.code_firstlineno).map_or(0, |v| (v as i32).max(0) as u32);
        if let Some(table) = m.u64(code + l.code_linetable) {
            let len = m.u64(table + l.bytes_size).unwrap_or(0);
            let take = len.min(LINETABLE_MAX);
            if m.bytes(table + l.bytes_data, take as usize, &mut c.linetable) {
                c.cut = take < len;
            }
        }
        c
    }

    /// Everything the record says, as one key.
    fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(32 + self.filename.len() + self.name.len() + self.qualname.len() + self.linetable.len());
        k.extend_from_slice(&self.first_line.to_le_bytes());
        k.push(self.cut as u8);
        for part in [&self.filename, &self.name, &self.qualname, &self.linetable] {
            k.extend_from_slice(&(part.len() as u32).to_le_bytes());
            k.extend_from_slice(part);
        }
        k
    }
}

/// A `str` object's text as UTF-8 (at most `NAME_MAX_CHARS` characters); "?" if it is not a
/// readable `str`.
fn string(m: &mut Mem, interp: &Interp, l: &Layout, obj: u64) -> Vec<u8> {
    decode_str(m, interp, l, obj).unwrap_or_else(|| b"?".to_vec())
}

fn decode_str(m: &mut Mem, interp: &Interp, l: &Layout, obj: u64) -> Option<Vec<u8>> {
    if !m.readable(obj, l.unicode_compact_size + 8) || m.u64(obj + l.object_type)? != interp.unicode_type {
        return None;
    }
    // PyASCIIObject.state: interned (2 bits), kind (3), compact (1), ascii (1), ...
    let state = m.u32(obj + l.unicode_state)?;
    let (kind, compact, ascii) = ((state >> 2) & 7, state >> 5 & 1 != 0, state >> 6 & 1 != 0);
    let len = m.u64(obj + l.unicode_length)?.min(NAME_MAX_CHARS);
    let data = match (compact, ascii) {
        (true, true) => obj + l.unicode_ascii_size,
        (true, false) => obj + l.unicode_compact_size,
        (false, _) => m.u64(obj + l.unicode_compact_size)?,
    };
    if !matches!(kind, 1 | 2 | 4) {
        return None;
    }
    let mut raw = Vec::new();
    if !m.bytes(data, (len * kind as u64) as usize, &mut raw) {
        return None;
    }
    let text: String = match kind {
        1 => raw.iter().map(|&b| b as char).collect(),
        2 => raw.chunks_exact(2).map(|c| char::from_u32(u16::from_le_bytes([c[0], c[1]]) as u32).unwrap_or('\u{fffd}')).collect(),
        _ => raw.chunks_exact(4).map(|c| char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}')).collect(),
    };
    Some(text.into_bytes())
}
