//! The shim when the program unloads the driver and loads it again: nothing stale is called,
//! nothing keeps the driver loaded that the program unloaded, and the calls made through the
//! second load are recorded like the first.

use vramtrace_e2e::*;

/// `reload MODE` on the stub driver (a plain C library that really unloads), with and without
/// the shim: the same output — including whether the library was unloaded and whether the
/// second load landed elsewhere — and every driver call the program printed is in the trace.
fn reload(mode: &str) {
    let plain = stub_command(&runner("reload"), &[mode]).output().unwrap();
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    let plain_out = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(plain_out.contains("UNLOADED yes\nMOVED yes\n"), "the setting this test needs: {plain_out}");
    let run = traced_within(stub_command(&runner("reload"), &[mode]), 60);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(normalized(&plain.stdout), normalized(&run.output.stdout), "{mode}: the program saw the same");
    let t = run.trace();
    let seen: Vec<Call> = calls(&run.stdout()).into_iter().filter(|c| vramtrace_trace::Api::from_name(&c.api).is_some()).collect();
    let recorded: Vec<(String, u64)> =
        t.events.iter().map(|e| (vramtrace_trace::Api::from_id(e.api).unwrap().name().to_owned(), e.ptr)).collect();
    let expected: Vec<(String, u64)> = seen.iter().map(|c| (c.api.clone(), if c.api == "cuDevicePrimaryCtxRetain" { 0 } else { c.ptr })).collect();
    assert_eq!(recorded, expected, "{mode}: every call through either load recorded, in order");
}

/// Calls through the first load, unload, load elsewhere, call again.
#[test]
fn the_driver_unloaded_after_calls_and_loaded_elsewhere() {
    reload("call");
}

/// Only lookups through the first load (no call), then the same.
#[test]
fn the_driver_unloaded_after_lookups_and_loaded_elsewhere() {
    reload("nocall");
}
