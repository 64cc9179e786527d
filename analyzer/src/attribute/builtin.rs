//! The built-in rule table: the native functions and libraries through which llama.cpp (and the
//! runners that share its anatomy), vendor libraries, PyTorch and XLA allocate device memory,
//! then the Python frameworks' functions (`python.rs`). Names were read from those projects'
//! sources; see docs/architecture.md for how to add one.

use super::rules::{FrameFilter, Tier};
use super::{Category, Pattern, Rule, Rules};

impl Rules {
    /// The rules vramtrace knows without configuration, most specific first.
    pub fn builtin() -> Rules {
        use Category::*;
        let r = |name: &str, pattern: Option<&str>, module: Option<&str>, within: Option<&str>, category| Rule {
            name: format!("builtin:{name}"),
            pattern: pattern.map(Pattern::new),
            module: module.map(Pattern::new),
            file: None,
            within: within.map(Pattern::new),
            frames: FrameFilter::Native,
            tier: Tier::Site,
            category,
        };
        let f = |name: &str, pattern: &str, category| r(name, Some(pattern), None, None, category);
        let generic = |rule: Rule| Rule { tier: Tier::Generic, ..rule };
        let mut rules = vec![
            // ggml scratch pools first: they are the innermost distinguishing frame of any
            // allocation made while computing, whatever called the compute.
            f("ggml.cuda_pool_vmm", "ggml_cuda_pool_vmm", ScratchPool),
            f("ggml.cuda_pool_leg", "ggml_cuda_pool_leg", ScratchPool),
            // KV cache: the llama_kv_cache constructor (older releases: llama_kv_cache_init,
            // llama_kv_cache_unified), including recurrent-state caches.
            f("llama.kv_cache_ctor", "llama_kv_cache::llama_kv_cache(", KvCache),
            f("llama.kv_cache_unified_ctor", "llama_kv_cache_unified::llama_kv_cache_unified(", KvCache),
            f("llama.kv_cache_init", "llama_kv_cache_init", KvCache),
            f("llama.memory_recurrent_ctor", "llama_memory_recurrent::llama_memory_recurrent(", KvCache),
            // Compute buffers: the graph allocator's reserve, and the scheduler's.
            f("ggml.gallocr_reserve", "ggml_gallocr_reserve_n", Compute),
            f("ggml.sched_reserve", "ggml_backend_sched_reserve", Compute),
            f("llama.context_reserve", "llama_context::reserve", Compute),
            f("llama.context_graph_reserve", "llama_context::graph_reserve", Compute),
            // Weights: the model loader, and the generic tensor allocator when called under it.
            r("ggml.alloc_ctx_tensors_under_load", Some("ggml_backend_alloc_ctx_tensors_from_buft"), None, Some("load_tensors"), Weights),
            f("llama.model_base_load_tensors", "llama_model_base::load_tensors", Weights),
            f("llama.model_load_tensors", "llama_model::load_tensors", Weights),
            f("llama.llm_load_tensors", "llm_load_tensors", Weights),
            // Vendor library workspaces and handles.
            f("cublas.create", "cublasCreate", Workspace),
            f("cublas.workspace", "cublasSetWorkspace", Workspace),
            f("cublaslt.create", "cublasLtCreate", Workspace),
            r("cublas.module", None, Some("libcublas"), None, Workspace),
            f("cudnn.create", "cudnnCreate", Workspace),
            r("cudnn.module", None, Some("libcudnn"), None, Workspace),
            f("nccl.symbol", "nccl", Workspace),
            r("nccl.module", None, Some("libnccl"), None, Workspace),
            r("cufft.module", None, Some("libcufft"), None, Workspace),
            // PyTorch's caching allocator (native, expandable segments, cudaMallocAsync backend)
            // and XLA's BFC allocator only say "some framework's cache": a Python frame that
            // decides (python.rs) wins over them anywhere on the stack.
            generic(f("torch.caching_allocator", "CUDACachingAllocator", FrameworkCache)),
            generic(f("torch.cuda_malloc_async", "CudaMallocAsync", FrameworkCache)),
            generic(r("torch.c10_cuda", None, Some("libc10_cuda"), None, FrameworkCache)),
            generic(f("xla.bfc_allocator", "tsl::BFCAllocator", FrameworkCache)),
            generic(f("xla.device_mem_allocator", "DeviceMemAllocator", FrameworkCache)),
        ];
        rules.extend(super::python::rules());
        Rules { rules }
    }
}
