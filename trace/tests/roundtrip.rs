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

fn records(data: &[u8]) -> (Vec<Record>, Tail, Option<TraceError>) {
    let mut r = Reader::new(data).unwrap();
    let mut v = vec![];
    let mut err = None;
    for x in r.by_ref() {
        match x {
            Ok(x) => v.push(x),
            Err(e) => err = Some(e),
        }
    }
    (v, r.tail(), err)
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
    data.extend(std::iter::repeat(0).take(4096));
    let (recs, tail, err) = records(&data);
    assert_eq!((recs.len(), tail, err.is_none()), (7, Tail::Clean, true));
}

#[test]
fn every_truncation_point_reads_the_complete_prefix() {
    let data = sample();
    let full = records(&data).0;
    for cut in 16..data.len() {
        let (recs, tail, err) = records(&data[..cut]);
        assert!(err.is_none(), "cut at {cut}: {err:?}");
        assert!(full.starts_with(&recs), "cut at {cut}");
        // The records read are exactly those that end at or before the cut.
        assert!(recs.len() < full.len());
        assert!(matches!(tail, Tail::Truncated { .. } | Tail::Clean));
    }
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
}

/// Lost and Cut records (1.2) describe the recording, not the program: they are gathered into the
/// reader's notes and the record stream around them is unchanged.
#[test]
fn lost_and_cut_records_become_notes() {
    let mut w = TraceWriter::new(Vec::new(), &info()).unwrap();
    w.lost(&LostRec { t_ns: 3, calls: 1, lookups: 0 }).unwrap();
    w.event(&EventRec { t_ns: 5, size: 4096, api: Api::MemAlloc as u16, ..Default::default() }).unwrap();
    w.cut(&CutRec { t_ns: 6, errno: 28, _reserved: 0, bytes: 1 << 20 }).unwrap();
    w.lost(&LostRec { t_ns: 7, calls: 9, lookups: 2 }).unwrap();
    w.end(8).unwrap();
    let data = w.into_inner();
    let mut r = Reader::new(&data).unwrap();
    let recs: Vec<Record> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 3, "info, event, end: {recs:?}");
    assert!(matches!(recs[2], Record::End(_)));
    let notes = r.notes();
    assert_eq!(notes.lost, LostRec { t_ns: 7, calls: 9, lookups: 2 }, "the last totals win");
    assert_eq!(notes.cut.map(|c| (c.errno, c.bytes)), Some((28, 1 << 20)));
    // A trace without them has no notes.
    let plain = sample();
    let mut r = Reader::new(&plain).unwrap();
    assert_eq!(r.by_ref().count(), 7);
    assert_eq!(r.notes(), Notes::default());
}
