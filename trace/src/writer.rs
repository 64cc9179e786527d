//! A plain `io::Write` trace writer, for tools and synthetic traces. The shim has its own
//! crash-safe writer (shared memory map) built on the same `record::encode`.

use crate::record::*;
use crate::reader::{DeviceInfo, Info, Module};
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
        self.put(RecordKind::Marker, &MarkerRec { t_ns, value, tid, stack_id: 0 }, &[], &[label.as_bytes()])
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
