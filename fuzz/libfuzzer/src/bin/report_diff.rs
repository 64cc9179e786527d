#![no_main]

#[global_allocator]
static ALLOC: vramtrace_fuzz::Capped = vramtrace_fuzz::Capped;

libfuzzer_sys::fuzz_target!(|data: &[u8]| vramtrace_fuzz::report_diff(data));
