//! The rules file (`--rules`): parsed, then asked to decide stacks — a few fixed ones shaped
//! like llama.cpp's and PyTorch's, and one carried by the input.

use crate::one_line;
use vramtrace_analyzer::symbolize::demangle;
use vramtrace_analyzer::{Attributor, Frame, Rules};
use vramtrace_trace::record::MAX_STACK_DEPTH;

/// Lays out an input: the rules file (TOML), a NUL byte, then one frame per line, innermost
/// first: the raw symbol, optionally a tab and the module's path.
pub fn rules_input(toml: &str, frames: &[(&str, Option<&str>)]) -> Vec<u8> {
    let lines: Vec<String> = frames.iter().map(|(s, m)| m.map_or_else(|| s.to_string(), |m| format!("{s}\t{m}"))).collect();
    [toml.as_bytes(), &[0], lines.join("\n").as_bytes()].concat()
}

fn frame(symbol: &str, module: Option<&str>) -> Frame {
    // As the symbolizer fills it: the demangled name, and the raw one when it differs.
    let function = demangle(symbol).unwrap_or_else(|| symbol.to_string());
    let symbol = (function != symbol).then(|| symbol.to_string());
    Frame { function: Some(function), symbol, module: module.map(str::to_string), ..Frame::default() }
}

fn fixed_stacks() -> Vec<Vec<Frame>> {
    let ggml = Some("/opt/llama.cpp/build/bin/libggml-cuda.so");
    let torch = Some("/usr/lib/python3/site-packages/torch/lib/libc10_cuda.so");
    vec![
        vec![
            frame("ggml_backend_cuda_buffer_type_alloc_buffer", ggml),
            frame("ggml_backend_alloc_ctx_tensors_from_buft", ggml),
            frame("_ZN11llama_model12load_tensorsER18llama_model_loader", Some("/opt/llama.cpp/build/bin/libllama.so")),
        ],
        vec![frame("_ZN18ggml_cuda_pool_vmm5allocEmPm", ggml), frame("ggml_cuda_op_mul_mat", ggml)],
        vec![frame("_ZN3c104cuda20CUDACachingAllocator6Native22NativeCachingAllocator6mallocEPPvimP11CUstream_st", torch)],
        vec![frame("main", Some("/usr/bin/app")), frame("__libc_start_main", Some("/lib/x86_64-linux-gnu/libc.so.6"))],
        vec![],
    ]
}

/// The rules file up to the first NUL (not UTF-8: read lossily, where `--rules` refuses the
/// file); the frames after it, at most as many as the shim ever records.
pub fn rules(data: &[u8]) {
    let (toml, stack) = match data.iter().position(|&c| c == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let rules = match Rules::from_toml_str(&String::from_utf8_lossy(toml)) {
        Ok(r) => r,
        Err(e) => return one_line("a rules-file error", &e.to_string()),
    };
    let stack = String::from_utf8_lossy(stack);
    let input: Vec<Frame> = stack
        .lines()
        .take(MAX_STACK_DEPTH as usize)
        .map(|l| match l.split_once('\t') {
            Some((s, m)) => frame(s, Some(m)),
            None => frame(l, None),
        })
        .collect();
    let mut a = Attributor::new(Some(&rules));
    for frames in fixed_stacks().iter().chain([&input]) {
        std::hint::black_box(a.decide(frames));
    }
}
