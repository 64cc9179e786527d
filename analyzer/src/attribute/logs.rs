//! Runner log lines used as an attribution fallback for stripped binaries.
//!
//! llama.cpp (and ik_llama.cpp, Ollama's runner) print the size of every static buffer they
//! allocate: `load_tensors: CUDA0 model buffer size = 3745.02 MiB`, `llama_kv_cache: CUDA0 KV
//! buffer size = 512.00 MiB`, `llama_context: CUDA0 compute buffer size = 300.01 MiB`. When
//! stacks carry no names, an otherwise-unknown allocation of that size (to the printed two
//! decimals) made shortly before the line, on that device, is what the line describes. vLLM's
//! `GPU KV cache size: N tokens` line marks the moment its per-layer KV tensors are allocated.
//! Parsing is by hand (no regex): the formats are simple and this runs on every output line.

use super::Category;

/// A parsed buffer-size line.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferLine {
    pub t_ns: u64,
    pub pid: Option<u32>,
    pub category: Category,
    /// `CUDA<n>` → n; `None` when the line names no CUDA device.
    pub device: Option<i32>,
    pub mib: f64,
    pub line: String,
}

impl BufferLine {
    /// Bytes the printed figure can stand for: it is rounded to two decimals of a MiB.
    pub fn byte_range(&self) -> (u64, u64) {
        let lo = ((self.mib - 0.005).max(0.0) * 1048576.0).floor() as u64;
        let hi = ((self.mib + 0.005) * 1048576.0).ceil() as u64;
        (lo, hi)
    }

    /// Short kind name used in rule names (`log:kv_buffer`).
    pub fn kind(&self) -> &'static str {
        match self.category {
            Category::Weights => "model_buffer",
            Category::KvCache => "kv_buffer",
            Category::Compute => "compute_buffer",
            _ => "buffer",
        }
    }
}

/// Parses one llama.cpp-family buffer line. Host buffers (`CUDA_Host`, `CPU`) are skipped: host
/// memory is attributed by API, and their sizes must not capture a device allocation.
pub fn parse_buffer_line(line: &str) -> Option<(Category, Option<i32>, f64)> {
    let at = line.find("buffer size")?;
    let before = &line[..at];
    let after = &line[at + "buffer size".len()..];
    let eq = after.find('=')?;
    let num_part = after[eq + 1..].trim_start();
    let end = num_part.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(num_part.len());
    let mib: f64 = num_part[..end].parse().ok()?;
    let unit = num_part[end..].trim_start();
    let mib = if unit.starts_with("MiB") || unit.starts_with("MB") {
        mib
    } else if unit.starts_with("GiB") || unit.starts_with("GB") {
        mib * 1024.0
    } else if unit.starts_with("KiB") || unit.starts_with("KB") {
        mib / 1024.0
    } else {
        return None;
    };
    let words: Vec<&str> = before.split_whitespace().collect();
    let (category, dev_word) = match words.last().copied() {
        Some("model") => (Category::Weights, words.len().checked_sub(2).map(|i| words[i])),
        Some("KV") | Some("RS") => (Category::KvCache, words.len().checked_sub(2).map(|i| words[i])),
        Some("compute") => (Category::Compute, words.len().checked_sub(2).map(|i| words[i])),
        // Older llama.cpp: `llm_load_tensors:      CUDA0 buffer size = … MiB`.
        Some(w) if before.contains("load_tensors") => (Category::Weights, Some(w)),
        _ => return None,
    };
    let dev_word = dev_word?;
    let device = match dev_word.strip_prefix("CUDA") {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok(),
        Some(_) => return None, // CUDA_Host and friends
        None if dev_word.starts_with("CPU") || dev_word.contains("Host") => return None,
        None => None,
    };
    Some((category, device, mib))
}

/// True for vLLM's lines printed just before it allocates the KV cache tensors.
pub fn is_vllm_kv_line(line: &str) -> bool {
    line.contains("GPU KV cache size:") || line.contains("# GPU blocks:") || line.contains("# cuda blocks:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llama_cpp_lines() {
        assert_eq!(parse_buffer_line("load_tensors:        CUDA0 model buffer size =  3745.02 MiB"), Some((Category::Weights, Some(0), 3745.02)));
        assert_eq!(parse_buffer_line("llama_kv_cache:      CUDA1 KV buffer size =   512.00 MiB"), Some((Category::KvCache, Some(1), 512.0)));
        assert_eq!(parse_buffer_line("llama_context:      CUDA0 compute buffer size =   300.01 MiB"), Some((Category::Compute, Some(0), 300.01)));
        assert_eq!(parse_buffer_line("llm_load_tensors:      CUDA0 buffer size =  3745.02 MiB"), Some((Category::Weights, Some(0), 3745.02)));
        assert_eq!(parse_buffer_line("llama_context:  CUDA_Host compute buffer size =    16.01 MiB"), None);
        assert_eq!(parse_buffer_line("load_tensors:   CPU_Mapped model buffer size =   281.81 MiB"), None);
        assert_eq!(parse_buffer_line("hello world"), None);
        let b = BufferLine { t_ns: 0, pid: None, category: Category::KvCache, device: Some(0), mib: 512.0, line: String::new() };
        let (lo, hi) = b.byte_range();
        assert!(lo <= 512 << 20 && (512 << 20) <= hi && hi - lo < 11000);
    }
}
