use vramtrace_trace::*;

fn info() -> Info {
    Info {
        pid: 42,
        ppid: 1,
        mono_ns: 1000,
        realtime_ns: 2000,
        stack_depth: 32,
        exe: "/usr/bin/llama-server".into(),
        cmdline: vec!["llama-server".into(), "-c".into(), "4096".into()],
        version: "0.1.0".into(),
        hostname: "box".into(),
    }
}

fn device() -> DeviceInfo {
    DeviceInfo { t_ns: 8, ordinal: 0, name: "NVIDIA H100 80GB HBM3".into(), total_bytes: 85 << 30, driver_version: 13000, uuid: [7; 16] }
}

fn sample() -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &info()).unwrap();
    w.module(&Module { id: 1, base: 0x1000, start: 0x1000, end: 0x9000, build_id: vec![1, 2, 3], path: "/lib/x.so".into() })
        .unwrap();
    w.stack(1, &[0x1234, 0x5678]).unwrap();
    w.event(&EventRec { t_ns: 5, size: 4096, ptr: 0xdead0000, api: Api::MemAlloc as u16, stack_id: 1, ..Default::default() })
        .unwrap();
    w.marker(6, 7, "tokens", 512).unwrap();
    w.device(&device()).unwrap();
    w.end(9).unwrap();
    w.into_inner()
}

/// Everything `next` yields from a reader over `data`, how the stream ended, and the last error.
fn drain<T>(data: &[u8], mut next: impl FnMut(&mut Reader) -> Option<Result<T, TraceError>>) -> (Vec<T>, Tail, Option<TraceError>) {
    let mut r = Reader::new(data).unwrap();
    let mut v = vec![];
    let mut err = None;
    while let Some(x) = next(&mut r) {
        match x {
            Ok(x) => v.push(x),
            Err(e) => err = Some(e),
        }
    }
    (v, r.tail(), err)
}

/// Through the plain iterator, which steps over Python records.
fn records(data: &[u8]) -> (Vec<Record>, Tail, Option<TraceError>) {
    drain(data, |r| r.next())
}

#[test]
fn round_trip_every_record_kind() {
    let data = sample();
    let (recs, tail, err) = records(&data);
    assert!(err.is_none());
    assert_eq!(tail, Tail::Clean);
    assert_eq!(recs.len(), 7);
    assert_eq!(recs[0], Record::Info(info()));
    assert_eq!(recs[5], Record::Device(device()));
    match &recs[2] {
        Record::Stack { id, frames } => assert_eq!((*id, frames.as_slice()), (1, &[0x1234u64, 0x5678][..])),
        r => panic!("{r:?}"),
    }
    match &recs[3] {
        Record::Event(e) => assert_eq!((e.size, e.ptr, Api::from_id(e.api)), (4096, 0xdead0000, Some(Api::MemAlloc))),
        r => panic!("{r:?}"),
    }
    match &recs[4] {
        Record::Marker(m) => assert_eq!((m.label.as_str(), m.value, m.tid), ("tokens", 512, 7)),
        r => panic!("{r:?}"),
    }
}

#[test]
fn zero_tail_is_a_clean_end() {
    let mut data = sample();
    data.extend(std::iter::repeat_n(0, 4096));
    let (recs, tail, err) = records(&data);
    assert_eq!((recs.len(), tail, err.is_none()), (7, Tail::Clean, true));
}

/// Cut anywhere, a trace reads as the records that end before the cut, without error.
fn check_every_cut<T: PartialEq + std::fmt::Debug>(data: &[u8], read: impl Fn(&[u8]) -> (Vec<T>, Tail, Option<TraceError>)) {
    let full = read(data).0;
    for cut in 16..data.len() {
        let (recs, tail, err) = read(&data[..cut]);
        assert!(err.is_none(), "cut at {cut}: {err:?}");
        assert!(full.starts_with(&recs), "cut at {cut}");
        // The records read are exactly those that end at or before the cut.
        assert!(recs.len() < full.len());
        assert!(matches!(tail, Tail::Truncated { .. } | Tail::Clean));
    }
}

#[test]
fn every_truncation_point_reads_the_complete_prefix() {
    check_every_cut(&sample(), records);
}

#[test]
fn clear_errors_for_bad_input() {
    assert!(matches!(Reader::new(b"hello world, not a trace"), Err(TraceError::BadMagic)));
    assert!(matches!(Reader::new(b"VRAMTRC\0"), Err(TraceError::TooShort(8))));
    let mut data = sample();
    data[8] = 9;
    let e = Reader::new(&data).err().unwrap();
    assert!(matches!(e, TraceError::UnsupportedVersion { major: 9, .. }));
    assert!(e.to_string().contains("upgrade"));
    // Flip a byte inside the second record's header: reported as corruption with its offset.
    let mut data = sample();
    let first_len = u32::from_le_bytes(data[16..20].try_into().unwrap()) as usize;
    data[16 + first_len + 1] ^= 0xff;
    let (recs, _, err) = records(&data);
    assert_eq!(recs.len(), 1);
    let msg = err.unwrap().to_string();
    assert!(msg.contains("corrupt record at byte offset"), "{msg}");
}

#[test]
fn unknown_record_kinds_are_skipped() {
    use vramtrace_trace::record::*;
    let mut data = sample();
    let mut buf = vec![0u8; 64];
    // A record of a kind this reader does not know, appended before the end.
    let (h, n) = encode(RecordKind::End, &EndRec::default(), &[], &[], &mut buf).unwrap();
    let mut hdr = RecordHeader::from_u64(h).unwrap();
    hdr.kind = 99;
    buf[..8].copy_from_slice(&hdr.to_u64().to_le_bytes());
    data.extend_from_slice(&buf[..n]);
    let (recs, tail, err) = records(&data);
    assert_eq!((recs.len(), tail, err.is_none()), (7, Tail::Clean, true));
}

#[test]
fn record_sizes_match_the_documented_layout() {
    use std::mem::size_of;
    use vramtrace_trace::record::*;
    // docs/trace-format.md states these sizes; a change here is a format change.
    assert_eq!(size_of::<InfoRec>(), 32);
    assert_eq!(size_of::<ModuleRec>(), 64);
    assert_eq!(size_of::<StackRec>(), 8);
    assert_eq!(size_of::<EventRec>(), 96);
    assert_eq!(size_of::<MarkerRec>(), 24);
    assert_eq!(size_of::<EndRec>(), 16);
    assert_eq!(size_of::<DeviceRec>(), 40);
    assert_eq!(size_of::<PyRuntimeRec>(), 32);
    assert_eq!(size_of::<PyCodeRec>(), 16);
    assert_eq!(size_of::<PyStackRec>(), 8);
    assert_eq!(size_of::<PyFrameRec>(), 8);
    assert_eq!(std::mem::offset_of!(EventRec, py_stack_id), 92);
}

fn py_code() -> PyCode {
    PyCode {
        id: 1,
        py_version: 0x030c01f0,
        first_line: 10,
        linetable_cut: false,
        filename: "/srv/vllm/v1/worker/gpu_model_runner.py".into(),
        name: "load_model".into(),
        qualname: "GPUModelRunner.load_model".into(),
        linetable: vec![0x80, 0, 0xd8, 0x04, 0x05, 0xff],
    }
}

fn py_stack() -> PyStack {
    PyStack {
        id: 1,
        frames: vec![
            PyFrame { code_id: 1, offset: Some(24), entry: false },
            PyFrame { code_id: 1, offset: None, entry: true },
        ],
        truncated: true,
    }
}

fn py_runtime() -> PyRuntime {
    PyRuntime {
        t_ns: 3,
        hexversion: 0x030c01f0,
        status: PyStatus::Capturing as u32,
        eval_start: 0x7000,
        eval_end: 0x9000,
        library: "/usr/lib/libpython3.12.so.1.0".into(),
        detail: "CPython 3.12.1".into(),
    }
}

/// A 1.2 trace: the Python records between the native ones.
fn python_sample() -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &info()).unwrap();
    w.py_runtime(&py_runtime()).unwrap();
    w.py_code(&py_code()).unwrap();
    w.py_stack(&py_stack()).unwrap();
    w.event(&EventRec { t_ns: 5, size: 4096, api: Api::MemAlloc as u16, py_stack_id: 1, ..Default::default() }).unwrap();
    w.marker_with_py_stack(6, 7, "tokens", 512, 1).unwrap();
    w.end(9).unwrap();
    w.into_inner()
}

#[test]
fn python_records_round_trip() {
    let data = python_sample();
    assert_eq!(u16::from_le_bytes([data[10], data[11]]), 2, "minor version 2");
    let (rs, tail, err) = records(&data);
    assert_eq!((tail, err.is_none(), rs.len()), (Tail::Clean, true, 7));
    assert_eq!(rs[1], Record::PyRuntime(py_runtime()));
    assert_eq!(rs[2], Record::PyCode(py_code()));
    assert_eq!(rs[3], Record::PyStack(py_stack()));
    match &rs[4] {
        Record::Event(e) => assert_eq!((e.py_stack_id, e.size), (1, 4096)),
        e => panic!("{e:?}"),
    }
    match &rs[5] {
        Record::Marker(m) => assert_eq!((m.label.as_str(), m.value, m.py_stack_id), ("tokens", 512, 1)),
        e => panic!("{e:?}"),
    }
    assert_eq!(PyStatus::from_u32(4), Some(PyStatus::Subinterpreters));
    assert_eq!(PyStatus::from_u32(99), None);
}

#[test]
fn every_truncation_point_of_a_python_trace_reads_the_complete_prefix() {
    check_every_cut(&python_sample(), records);
}

#[test]
fn a_1_1_trace_reads_unchanged() {
    use vramtrace_trace::record::*;
    for minor in [0u16, 1] {
        let mut data = file_header().to_vec();
        data[10..12].copy_from_slice(&minor.to_le_bytes());
        let mut buf = vec![0u8; 4096];
        // Old layout: the fixed part, then the strings, and nothing after them.
        let ev = EventRec { t_ns: 5, size: 4096, ptr: 0xdead0000, api: Api::MemAlloc as u16, stack_id: 1, ..Default::default() };
        let n = encode_full(RecordKind::Event, &ev, &[], &[], &mut buf).unwrap();
        data.extend_from_slice(&buf[..n]);
        let m = MarkerRec { t_ns: 6, value: 512, tid: 7, stack_id: 0 };
        for label in ["tokens", "abc", "abcd", "x"] {
            let n = encode_full(RecordKind::Marker, &m, &[], &[label.as_bytes()], &mut buf).unwrap();
            data.extend_from_slice(&buf[..n]);
        }
        let (recs, tail, err) = records(&data);
        assert_eq!((tail, err.is_none(), recs.len()), (Tail::Clean, true, 5));
        assert_eq!(recs[0], Record::Event(ev));
        for (r, label) in recs[1..].iter().zip(["tokens", "abc", "abcd", "x"]) {
            assert_eq!(r, &Record::Marker(Marker { t_ns: 6, value: 512, tid: 7, stack_id: 0, label: label.into(), py_stack_id: 0 }));
        }
    }
}

/// Lost and Cut records (1.2) describe the recording, not the program: they are yielded, and
/// also gathered into the reader's notes (the last totals win).
#[test]
fn lost_and_cut_records_are_yielded_and_gathered_as_notes() {
    let mut w = TraceWriter::new(Vec::new(), &info()).unwrap();
    w.lost(&LostRec { t_ns: 3, calls: 1, lookups: 0 }).unwrap();
    w.event(&EventRec { t_ns: 5, size: 4096, api: Api::MemAlloc as u16, ..Default::default() }).unwrap();
    w.cut(&CutRec { t_ns: 6, errno: 28, _reserved: 0, bytes: 1 << 20 }).unwrap();
    w.lost(&LostRec { t_ns: 7, calls: 9, lookups: 2 }).unwrap();
    w.end(8).unwrap();
    let data = w.into_inner();
    let mut r = Reader::new(&data).unwrap();
    let recs: Vec<Record> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 6, "info, lost, event, cut, lost, end: {recs:?}");
    assert!(matches!(recs[3], Record::Cut(CutRec { errno: 28, .. })));
    assert!(matches!(recs[5], Record::End(_)));
    let notes = r.notes();
    assert_eq!(notes.lost, LostRec { t_ns: 7, calls: 9, lookups: 2 }, "the last totals win");
    assert_eq!(notes.cut.map(|c| (c.errno, c.bytes)), Some((28, 1 << 20)));
    // A trace without them has no notes.
    let plain = sample();
    let mut r = Reader::new(&plain).unwrap();
    assert_eq!(r.by_ref().count(), 7);
    assert_eq!(r.notes(), Notes::default());
}

/// An event of a function id this reader does not know (a newer minor version) is neither
/// corruption nor the end: it is yielded, and what follows is read.
#[test]
fn an_unknown_function_id_is_read_past() {
    let mut w = TraceWriter::new(Vec::new(), &info()).unwrap();
    w.event(&EventRec { t_ns: 5, api: 999, ..Default::default() }).unwrap();
    w.event(&EventRec { t_ns: 6, size: 4096, api: Api::MemAlloc as u16, ..Default::default() }).unwrap();
    w.end(8).unwrap();
    let (recs, tail, err) = records(&w.into_inner());
    assert_eq!((tail, err.is_none(), recs.len()), (Tail::Clean, true, 4));
    assert!(matches!(&recs[1], Record::Event(e) if e.api == 999));
    assert!(matches!(&recs[2], Record::Event(e) if e.size == 4096));
}

#[test]
fn a_resumed_reader_continues_a_growing_file_where_the_last_one_stopped() {
    let full = sample();
    let (all, _, _) = records(&full);
    // The file as the shim grows it, record by record: beyond the last published record, the
    // next one's payload may be written already, its header word (stored last) still zero, then
    // the reserved zeros. Each reader resumes at the previous one's position, notes carried;
    // together they read the file once.
    let mut ends = vec![16];
    let mut r = Reader::new(&full).unwrap();
    while let Some(Ok(_)) = r.next() {
        ends.push(r.position());
    }
    let mut got = Vec::new();
    let (mut pos, mut notes) = (0, Notes::default());
    for (i, &cut) in ends.iter().enumerate() {
        let mut grown = full.clone();
        grown.resize(full.len() + 64, 0);
        let next = ends.get(i + 1).copied().unwrap_or(cut);
        grown[cut..(cut + 8).min(next.max(cut))].fill(0);
        grown[next..].fill(0);
        let mut r = Reader::resume(&grown, pos, notes).unwrap();
        for rec in r.by_ref() {
            got.push(rec.unwrap());
        }
        assert_eq!(r.tail(), Tail::Clean, "a record not yet written is the reserved tail, not damage (cut {cut})");
        (pos, notes) = (r.position(), r.notes());
    }
    assert_eq!(got, all);
    assert!(Reader::resume(&[0u8; 64], 16, Notes::default()).is_err(), "the header is still checked");
}
