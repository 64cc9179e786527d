//! A plain `io::Write` trace writer, for tools and synthetic traces. The shim has its own
//! crash-safe writer (shared memory map) built on the same `record::encode`.

use crate::record::*;
use crate::reader::{DeviceInfo, Info, Module, PyCode, PyRuntime, PyStack};
use std::io::{self, Write};

pub struct TraceWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the file header and the process description.
    pub fn new(mut out: W, info: &Info) -> io::Result<Self> {
        out.write_all(&file_header())?;
        let mut w = TraceWriter { out, buf: vec![0; MAX_RECORD_LEN] };
        let fixed = InfoRec {
            pid: info.pid,
            ppid: info.ppid,
            mono_ns: info.mono_ns,
            realtime_ns: info.realtime_ns,
            stack_depth: info.stack_depth,
            _reserved: 0,
        };
        let cmd = info.cmdline.join("\0");
        w.put(RecordKind::Info, &fixed, &[], &[info.exe.as_bytes(), cmd.as_bytes(), info.version.as_bytes(), info.hostname.as_bytes()])?;
        Ok(w)
    }

    fn put<T: zerocopy::IntoBytes + zerocopy::Immutable>(
        &mut self,
        kind: RecordKind,
        fixed: &T,
        raw: &[u8],
        strings: &[&[u8]],
    ) -> io::Result<()> {
        let n = encode_full(kind, fixed, raw, strings, &mut self.buf)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        self.out.write_all(&self.buf[..n])
    }

    pub fn module(&mut self, m: &Module) -> io::Result<()> {
        let mut build_id = [0u8; 32];
        let n = m.build_id.len().min(32);
        build_id[..n].copy_from_slice(&m.build_id[..n]);
        let fixed = ModuleRec { id: m.id, build_id_len: n as u32, base: m.base, start: m.start, end: m.end, build_id };
        self.put(RecordKind::Module, &fixed, &[], &[m.path.as_bytes()])
    }

    pub fn stack(&mut self, id: u32, frames: &[u64]) -> io::Result<()> {
        let raw: Vec<u8> = frames.iter().flat_map(|f| f.to_le_bytes()).collect();
        self.put(RecordKind::Stack, &StackRec { id, depth: frames.len() as u32 }, &raw, &[])
    }

    pub fn event(&mut self, e: &EventRec) -> io::Result<()> {
        self.put(RecordKind::Event, e, &[], &[])
    }

    pub fn marker(&mut self, t_ns: u64, tid: u32, label: &str, value: i64) -> io::Result<()> {
        self.marker_with_py_stack(t_ns, tid, label, value, 0)
    }

    /// A marker with the Python stack it was set from (`py_stack_id`, 0 = none).
    pub fn marker_with_py_stack(&mut self, t_ns: u64, tid: u32, label: &str, value: i64, py_stack_id: u32) -> io::Result<()> {
        let fixed = MarkerRec { t_ns, value, tid, stack_id: 0 };
        self.put(RecordKind::Marker, &fixed, &py_stack_id.to_le_bytes(), &[label.as_bytes()])
    }

    pub fn py_runtime(&mut self, r: &PyRuntime) -> io::Result<()> {
        let fixed = PyRuntimeRec { t_ns: r.t_ns, eval_start: r.eval_start, eval_end: r.eval_end, hexversion: r.hexversion, status: r.status };
        self.put(RecordKind::PyRuntime, &fixed, &[], &[r.library.as_bytes(), r.detail.as_bytes()])
    }

    pub fn py_code(&mut self, c: &PyCode) -> io::Result<()> {
        let flags = if c.linetable_cut { PY_CODE_LINETABLE_CUT } else { 0 };
        let fixed = PyCodeRec { id: c.id, py_version: c.py_version, first_line: c.first_line, flags };
        self.put(RecordKind::PyCode, &fixed, &[], &[c.filename.as_bytes(), c.name.as_bytes(), c.qualname.as_bytes(), &c.linetable])
    }

    pub fn py_stack(&mut self, s: &PyStack) -> io::Result<()> {
        let frames: Vec<PyFrameRec> = s
            .frames
            .iter()
            .map(|f| PyFrameRec { code_id: f.code_id, offset: f.offset.unwrap_or(PY_NO_OFFSET) | if f.entry { PY_FRAME_ENTRY } else { 0 } })
            .collect();
        let fixed = PyStackRec { id: s.id, depth: frames.len() as u16, flags: if s.truncated { PY_STACK_TRUNCATED } else { 0 } };
        self.put(RecordKind::PyStack, &fixed, zerocopy::IntoBytes::as_bytes(frames.as_slice()), &[])
    }

    pub fn device(&mut self, d: &DeviceInfo) -> io::Result<()> {
        let fixed = DeviceRec { t_ns: d.t_ns, total_bytes: d.total_bytes, ordinal: d.ordinal, driver_version: d.driver_version, uuid: d.uuid };
        self.put(RecordKind::Device, &fixed, &[], &[d.name.as_bytes()])
    }

    pub fn lost(&mut self, l: &LostRec) -> io::Result<()> {
        self.put(RecordKind::Lost, l, &[], &[])
    }

    pub fn cut(&mut self, c: &CutRec) -> io::Result<()> {
        self.put(RecordKind::Cut, c, &[], &[])
    }

    pub fn end(&mut self, t_ns: u64) -> io::Result<()> {
        self.put(RecordKind::End, &EndRec { t_ns, _reserved: 0 }, &[], &[])
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
