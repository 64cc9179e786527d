//! The one clock of every record and side file: `CLOCK_MONOTONIC` in nanoseconds. The shim stamps
//! events with it, `vramtrace run` stamps captured output lines with it, `sweep` stamps its
//! markers with it; the analyzer merges them all on this one time axis, so they must agree.
//! `CLOCK_REALTIME` is read only once per trace, to show wall-clock times.
//!
//! No allocation, no locks: safe inside the shim's hooks.

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `CLOCK_MONOTONIC` now, in ns: the time axis of traces, output lines and markers.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// `CLOCK_REALTIME` now, in ns since the epoch.
pub fn realtime_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}
