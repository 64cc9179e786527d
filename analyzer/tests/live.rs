//! A live session against the batch analysis: two processes' traces (two GPUs, steps with
//! growth, an OOM, a side-file phase) grow record by record the way the shim writes them — into
//! a zero-filled reserved tail, each record's payload before its header word — and after every
//! step the session's snapshot must equal the batch analysis of the same records.
//!
//! What is compared, after each step (all records up to time T written, `refresh_until(T)`):
//! - the whole [`Snapshot`] (per GPU: used bytes, capacity, live bytes by category, peak, top
//!   sites live now, growth points and fits, OOM count and last OOM; per process: state, VRAM
//!   now and peak; events applied) against [`snapshot_of`] the same prefix loaded from disk by
//!   the batch loader — a replay in which a process without an End record keeps running, as it
//!   does for a live reader (`analyze` would end it at its last event);
//! - against `analyze` of the same prefix with an End record at T for each process that has
//!   none yet (as if everything stopped now; `analyze` would otherwise end such a process at its
//!   last event, before later events of the others): each GPU's peak (time, total, by
//!   category), growth points and fits, and the OOMs (all fields, the site by key) — the
//!   report's figures that an end after everything cannot change.
//!
//! Warnings are not compared (a live reader also warns about what is not written yet).

mod common;
use common::*;
use std::os::unix::fs::FileExt;
use std::path::Path;
use vramtrace_analyzer::live::{snapshot_of, ProcessState, Session, Snapshot};
use vramtrace_analyzer::{analyze, load, Options, Report};
use vramtrace_trace::side::{markers_file_name, to_jsonl, SideMarker};
use vramtrace_trace::{Api, DeviceInfo, Info, Reader, Record, TraceWriter};

const BASE: u64 = 0x40_0000;

fn oom(t: &mut Tr, size: u64, stack: u32) {
    t.ev(MS, Api::MemAlloc, |e| {
        e.result = 2;
        e.size = size;
        e.free = 300 * MIB;
        e.total = 8 * GIB;
        e.stack_id = stack;
    });
}

/// Process 101: weights on two GPUs, six steps whose KV grows, an OOM, an exit. Process 202:
/// starts later, allocates with and without a stack while a side-file phase is open, never ends.
fn traces() -> (Vec<u8>, Vec<u8>, Vec<SideMarker>) {
    let mut a = Tr::new(101);
    a.module(1, "/nonexistent/libapp.so", BASE, BASE, BASE + 0x10_0000, b"\x01\x02");
    a.w.device(&DeviceInfo { t_ns: T0, ordinal: 0, name: "Fake GPU".into(), total_bytes: 8 * GIB, driver_version: 12040, uuid: [0; 16] }).unwrap();
    let weights = a.stack(&[BASE + 0x1000, BASE + 0x2000]);
    let kv = a.stack(&[BASE + 0x3000, BASE + 0x2000]);
    let tmp = a.stack(&[BASE + 0x4000]);
    a.at(T0 + MS);
    a.get_info(8 * GIB - 300 * MIB, 8 * GIB);
    a.alloc(0x1000_0000, 2 * GIB, weights);
    a.alloc_dev(0x2000_0000, GIB, 1, weights);
    for step in 1..=6u64 {
        a.marker(MS, "step_start", 0);
        a.alloc(0x3000_0000 + step * 0x1000_0000, step * 64 * MIB, kv);
        a.alloc(0x9000_0000, 32 * MIB, tmp);
        a.free(0x9000_0000);
        a.marker(MS, "tokens", (step * 1000) as i64);
    }
    oom(&mut a, 7 * GIB, kv);
    a.free(0x2000_0000);
    a.end();

    let mut b = Tr::new(202);
    b.module(1, "/nonexistent/libother.so", BASE, BASE, BASE + 0x10_0000, b"\x03");
    let own = b.stack(&[BASE + 0x5000]);
    b.at(T0 + 5 * MS + MS / 2);
    for k in 0..10u64 {
        b.ev(3 * MS, Api::MemAlloc, |e| {
            e.ptr = 0x5000_0000 + k * 0x100_0000;
            e.size = 16 * MIB;
            e.device = (k % 2) as i32;
            e.stack_id = if k % 3 == 0 { own } else { 0 };
        });
        if k % 4 == 3 {
            b.free(0x5000_0000 + (k - 1) * 0x100_0000);
        }
    }
    oom(&mut b, GIB, 0);
    let side = vec![
        SideMarker { t_ns: T0 + 7 * MS + MS / 4, label: "phase:kv_cache".into(), value: 1 },
        SideMarker { t_ns: T0 + 20 * MS + MS / 4, label: "phase:kv_cache".into(), value: 0 },
    ];
    (a.bytes(), b.bytes(), side)
}

/// Each record's end offset and time (untimed records — stacks, modules — take the time of the
/// next timed one: they are written just before the call that needs them).
fn records(bytes: &[u8]) -> Vec<(usize, u64)> {
    let mut r = Reader::new(bytes).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next() {
        let t = match rec.unwrap() {
            Record::Event(e) => Some(e.t_ns),
            Record::Marker(m) => Some(m.t_ns),
            Record::End(e) => Some(e.t_ns),
            _ => None,
        };
        out.push((r.position(), t));
    }
    let mut next = u64::MAX;
    let mut timed: Vec<(usize, u64)> = out
        .iter()
        .rev()
        .map(|&(end, t)| {
            next = t.unwrap_or(next);
            (end, next)
        })
        .collect();
    timed.reverse();
    timed
}

/// End offset of the records written by time `t`: those before the first one after `t`.
fn prefix(recs: &[(usize, u64)], t: u64) -> usize {
    recs.iter().take_while(|&&(_, rt)| rt <= t).last().map_or(vramtrace_trace::record::FILE_HEADER_LEN, |&(end, _)| end)
}

/// Grows `path` (zero-filled ahead) to `to`; the next record's payload is written too, its
/// header word left zero: not yet published.
fn grow(path: &Path, bytes: &[u8], to: usize, next: Option<usize>) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&bytes[..to], 0).unwrap();
    if let Some(n) = next {
        f.write_all_at(&bytes[to + 8..n], (to + 8) as u64).unwrap();
    }
}

fn has_end(bytes: &[u8]) -> bool {
    Reader::new(bytes).unwrap().any(|r| matches!(r, Ok(Record::End(_))))
}

/// The bytes of an End record at `t`.
fn end_record(t: u64) -> Vec<u8> {
    let head = TraceWriter::new(Vec::new(), &Info::default()).unwrap().into_inner().len();
    let mut w = TraceWriter::new(Vec::new(), &Info::default()).unwrap();
    w.end(t).unwrap();
    w.into_inner()[head..].to_vec()
}

fn without_warnings(mut s: Snapshot) -> Snapshot {
    s.warnings.clear();
    s
}

fn same_as_report(s: &Snapshot, r: &Report, step: &str) {
    for d in &s.devices {
        let rd = r.devices.iter().find(|x| x.device == d.device).unwrap();
        assert_eq!((d.peak.t_ns, d.peak.total_bytes, d.peak.by_category), (rd.peak.t_ns, rd.peak.total_bytes, rd.peak.by_category), "GPU {} peak at {step}", d.device);
        let rg = r.growth.iter().find(|g| g.device == d.device);
        assert_eq!(d.growth.as_ref(), rg, "GPU {} growth at {step}", d.device);
        let ooms: Vec<_> = r.ooms.iter().filter(|o| o.device == d.device).collect();
        assert_eq!(d.ooms, ooms.len() as u64, "GPU {} OOMs at {step}", d.device);
        if let (Some(got), Some(want)) = (&d.last_oom, ooms.last()) {
            let key = want.site.map(|i| r.sites[i].key.clone());
            assert_eq!(got.site.as_ref().map(|s| s.key.clone()), key, "last OOM's site at {step}");
            assert_eq!(vramtrace_analyzer::Oom { site: want.site, ..got.oom.clone() }, **want, "last OOM at {step}");
        }
    }
}

/// Grows the traces through `times` taking `stride` of them per refresh; with `ahead`, each
/// refresh also finds the records of the next stride already written, which must wait (they
/// are younger than the time the refresh is told is complete). Returns the last snapshot.
fn follow(stride: usize, ahead: bool) -> Snapshot {
    let (a, b, side) = traces();
    let (ra, rb) = (records(&a), records(&b));
    let live = TempDir::new("live");
    let names = ["vramtrace-101.vtr", "vramtrace-202.vtr"];
    for (name, bytes) in names.iter().zip([&a, &b]) {
        // Created by the shim, reserved ahead, nothing published yet.
        let f = std::fs::File::create(live.path().join(name)).unwrap();
        f.set_len(bytes.len() as u64 + 64 * 1024).unwrap();
    }
    let opts = Options::default();
    let mut session = Session::new(live.path(), opts.clone());
    session.refresh_until(T0).unwrap();
    let empty = session.snapshot();
    assert!(empty.processes.is_empty() && empty.warnings.is_empty(), "files without a header are not read yet: {empty:?}");

    let mut times: Vec<u64> = ra.iter().chain(&rb).map(|r| r.1).chain(side.iter().map(|m| m.t_ns)).collect();
    times.sort();
    times.dedup();
    let mut cuts: Vec<u64> = times.iter().copied().step_by(stride).collect();
    cuts.push(*times.last().unwrap());
    cuts.dedup();
    let side_path = |dir: &Path| dir.join(markers_file_name("test"));
    let (mut seen_oom, mut seen_weights) = (false, false);
    for (i, &t) in cuts.iter().enumerate() {
        let step = format!("stride {stride}{} step {i} at +{} ns", if ahead { " ahead" } else { "" }, t - T0);
        let written = if ahead { cuts.get(i + 1).copied().unwrap_or(t) } else { t };
        let lines = |upto: u64| side.iter().filter(|m| m.t_ns <= upto).map(to_jsonl).collect::<String>();
        std::fs::write(side_path(live.path()), lines(written)).unwrap();
        for ((name, bytes), recs) in names.iter().zip([&a, &b]).zip([&ra, &rb]) {
            let to = prefix(recs, written);
            grow(&live.path().join(name), bytes, to, recs.iter().find(|r| r.0 > to).map(|r| r.0));
        }
        let (batch, ended) = (TempDir::new("batch"), TempDir::new("ended"));
        for ((name, bytes), recs) in names.iter().zip([&a, &b]).zip([&ra, &rb]) {
            let to = prefix(recs, t);
            std::fs::write(batch.path().join(name), &bytes[..to]).unwrap();
            let mut stopped = bytes[..to].to_vec();
            if !has_end(&stopped) {
                stopped.extend(end_record(t));
            }
            std::fs::write(ended.path().join(name), stopped).unwrap();
        }
        for dir in [batch.path(), ended.path()] {
            std::fs::write(side_path(dir), lines(t)).unwrap();
        }
        session.refresh_until(t).unwrap();
        let got = session.snapshot();
        let want = snapshot_of(&load(&[batch.path().to_path_buf()]).unwrap(), &opts);
        if ahead {
            // A process whose first records are written but younger is already listed.
            assert_eq!((got.t_ns, got.events, &got.devices), (want.t_ns, want.events, &want.devices), "{step}");
        } else {
            assert_eq!(without_warnings(got.clone()), without_warnings(want), "{step}");
        }
        same_as_report(&got, &analyze(&load(&[ended.path().to_path_buf()]).unwrap(), &opts), &step);
        seen_oom |= got.devices.iter().any(|d| d.last_oom.is_some());
        seen_weights |= got.devices.first().and_then(|d| d.top_sites.first()).is_some_and(|x| x.bytes == 2 * GIB);
    }
    assert!(seen_oom, "the OOM was shown");
    assert!(seen_weights, "the weights were the largest site live while process 101 ran");
    session.snapshot()
}

#[test]
fn a_growing_trace_reads_like_the_batch_analysis_at_every_step() {
    let s = follow(1, false);
    // The whole run was seen: both GPUs, the growth, one process exited, one running.
    assert_eq!(s.devices.iter().map(|d| d.device).collect::<Vec<_>>(), [0, 1]);
    let g0 = s.devices[0].growth.as_ref().expect("growth on GPU 0");
    assert_eq!(g0.points.len(), 6);
    assert!(g0.total_fit.as_ref().is_some_and(|f| f.slope_bytes_per_token > 60_000.0), "{g0:?}");
    assert_eq!(s.devices[0].capacity_bytes, Some(8 * GIB));
    assert!(s.devices[0].live.kv_cache > 0, "the side-file phase decided process 202's allocations");
    let d0 = &s.devices[0];
    assert_eq!(d0.top_sites.iter().map(|x| x.bytes).sum::<u64>(), d0.used_bytes - d0.live.runtime, "after 101's exit, what is live is 202's: {:?}", d0.top_sites);
    let states: Vec<_> = s.processes.iter().map(|p| (p.pid, p.state)).collect();
    assert_eq!(states, [(101, ProcessState::Exited), (202, ProcessState::Running)]);
}

#[test]
fn refreshes_that_read_many_records_of_several_files_merge_them_in_time_order() {
    for stride in [3, 7] {
        let s = follow(stride, false);
        assert_eq!(s, follow(1, false), "stride {stride}: the end is the same however the run was read");
    }
}

#[test]
fn records_younger_than_the_refresh_wait_for_the_next() {
    let s = follow(4, true);
    assert_eq!(s.devices, follow(1, false).devices);
}

#[test]
fn damage_is_a_warning_and_the_rest_is_still_read() {
    let dir = TempDir::new("live-damage");
    std::fs::write(dir.path().join("junk.vtr"), b"this is not a trace at all, not at all").unwrap();
    let mut good = Tr::new(301);
    good.at(T0 + MS);
    good.alloc(0x1000, 64 * MIB, 0);
    std::fs::write(dir.path().join("vramtrace-301.vtr"), good.bytes()).unwrap();
    let mut bad = Tr::new(302);
    bad.at(T0 + 2 * MS);
    bad.alloc(0x2000, 32 * MIB, 0);
    let mut bytes = bad.bytes();
    let path = dir.path().join("vramtrace-302.vtr");
    std::fs::write(&path, &bytes).unwrap();
    let mut s = Session::new(dir.path(), Options::default());
    s.refresh_until(u64::MAX).unwrap();
    // Then a record whose header fails its check arrives: the file stops there.
    bytes.extend_from_slice(&[0xff; 64]);
    std::fs::write(&path, &bytes).unwrap();
    s.refresh_until(u64::MAX).unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.devices[0].live.unknown, 96 * MIB, "both processes' allocations: {snap:?}");
    assert!(snap.warnings.iter().any(|w| w.contains("junk.vtr") && w.contains("not a vramtrace trace") && w.ends_with("skipped")), "{:?}", snap.warnings);
    assert!(snap.warnings.iter().any(|w| w.contains("vramtrace-302.vtr") && w.contains("corrupt record")), "{:?}", snap.warnings);
    s.refresh_until(u64::MAX).unwrap();
    assert_eq!(s.snapshot().warnings.len(), snap.warnings.len(), "each warning once");

    let gone = Session::new(&dir.path().join("missing"), Options::default()).refresh().unwrap_err().to_string();
    assert!(gone.contains("missing") && gone.contains("no such file or directory") && !gone.contains('\n'), "{gone}");
}

#[test]
fn a_refresh_applies_finished_traces_and_ends_processes_no_longer_running_here() {
    // Times ahead of this machine's clock: written by an earlier boot or another machine, so
    // nothing here still writes them — one trace with its End record, one without.
    let later = vramtrace_trace::clock::monotonic_ns() + 1_000_000 * SEC;
    let dir = TempDir::new("live-finished");
    for (pid, ends) in [(401, true), (402, false)] {
        let mut t = Tr::new(pid);
        t.at(later);
        t.alloc(0x1000, 64 * MIB, 0);
        t.alloc(0x2000, 64 * MIB, 0);
        t.free(0x1000);
        if ends {
            t.end();
        }
        t.write(dir.path());
    }
    let mut s = Session::new(dir.path(), Options::default());
    s.refresh().unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.events, 6, "every event applied: {snap:?}");
    let states: Vec<_> = snap.processes.iter().map(|p| (p.pid, p.state)).collect();
    assert_eq!(states, [(401, ProcessState::Exited), (402, ProcessState::Gone)]);
    assert_eq!(snap.devices[0].peak.total_bytes, 256 * MIB, "both processes, merged by time");
    assert_eq!(snap.devices[0].used_bytes, 0, "what both held went with them");
}

#[test]
fn a_refresh_that_finds_a_long_burst_reads_it_in_bounded_passes_in_the_same_order() {
    // Two processes, 80 k events each (more than one pass of a refresh): each takes 1 GiB for
    // 0.2 ms every millisecond, the second half a millisecond after the first — never both at
    // once. A pass that stopped reading one file between its allocation and its free must not
    // apply the other's later ones before it: the peak stays 1 GiB.
    let dir = TempDir::new("live-burst");
    for (pid, offset) in [(501u32, 0), (502, MS / 2)] {
        let mut t = Tr::new(pid);
        t.at(T0 + offset);
        for i in 0..40_000u64 {
            t.ev(MS - MS / 5, Api::MemAlloc, |e| {
                e.ptr = 0x1_0000_0000 + i * 0x1000;
                e.size = GIB;
            });
            t.ev(MS / 5, Api::MemFree, |e| e.ptr = 0x1_0000_0000 + i * 0x1000);
        }
        t.write(dir.path());
    }
    let mut s = Session::new(dir.path(), Options::default());
    s.refresh_until(u64::MAX).unwrap();
    let got = s.snapshot();
    assert_eq!(got.events, 160_000);
    assert_eq!(got.devices[0].peak.total_bytes, GIB, "never both at once");
    assert_eq!(without_warnings(got), without_warnings(snapshot_of(&load(&[dir.path().to_path_buf()]).unwrap(), &Options::default())));
}
