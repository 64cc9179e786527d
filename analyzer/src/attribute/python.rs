//! Built-in rules on Python frames: the functions under which vLLM, SGLang, Hugging Face
//! transformers and PyTorch allocate their weights, KV cache, activations and CUDA graphs. Each
//! names a qualified name (`co_qualname`; on Python 3.10, which has none, the last component is
//! matched against `co_name`, and only in the rule's file) and the file it lives in, as its path
//! ends in an installed package. Names were read from each project's source (the file is cited
//! beside each rule, as a path inside that project's repository).
//!
//! Two kinds (`Tier`): *scope* rules for CUDA-graph capture own everything allocated while they
//! are on the stack (the warmup and captured forwards, the graph's private pool), as vLLM and
//! SGLang count graph memory as the free-memory change over the whole capture; *site* rules
//! decide by the innermost matching frame (a KV-cache update inside `generate` is KV cache).
//! Functions that wrap every forward (vLLM's `CUDAGraphWrapper.__call__`) or whose callers
//! decide (`BaseRunner.warmup`) are deliberately not rules.

use super::rules::{FrameFilter, Tier};
use super::{Category, Pattern, Rule};

/// One row of the table: every (qualified name, file) pair becomes a rule of that name. No
/// qualified names: any function in those files.
struct Row {
    name: &'static str,
    quals: &'static [&'static str],
    files: &'static [&'static str],
    category: Category,
    tier: Tier,
}

const VLLM_RUNNERS: &[&str] = &["*/vllm/v1/worker/gpu_model_runner.py", "*/vllm/v1/worker/gpu/model_runner.py"];
const SGLANG_RUNNER: &[&str] = &["*/sglang/srt/model_executor/model_runner.py"];

#[rustfmt::skip]
const ROWS: &[Row] = {
    use Category::*;
    use Tier::*;
    &[
        // vLLM V1 (vllm/v1/worker/gpu_model_runner.py, vllm/v1/worker/gpu/model_runner.py and
        // vllm/v1/worker/gpu/cudagraph_utils.py): capture_model runs the warmups and captures
        // into the graph pool; its graph memory is what vLLM logs as "Graph capturing finished".
        Row { name: "vllm.capture_model", quals: &["GPUModelRunner.capture_model", "GPUModelRunner._capture_cudagraphs", "GPUModelRunner._warmup_and_capture"], files: VLLM_RUNNERS, category: CudaGraphs, tier: Scope },
        Row { name: "vllm.cudagraph_manager", quals: &["CudaGraphManager.capture", "ModelCudaGraphManager.capture"], files: &["*/vllm/v1/worker/gpu/cudagraph_utils.py"], category: CudaGraphs, tier: Scope },
        Row { name: "vllm.encoder_cudagraph", quals: &["EncoderCudaGraphManager.capture"], files: &["*/vllm/v1/worker/encoder_cudagraph.py"], category: CudaGraphs, tier: Scope },
        // V0 (vllm/worker/model_runner.py, through 0.10).
        Row { name: "vllm.v0_capture_model", quals: &["GPUModelRunnerBase.capture_model", "CUDAGraphRunner.capture"], files: &["*/vllm/worker/model_runner.py"], category: CudaGraphs, tier: Scope },
        // Weights: GPUModelRunner.load_model and the loaders it calls
        // (vllm/model_executor/model_loader/base_loader.py, default_loader.py, utils.py).
        Row { name: "vllm.load_model", quals: &["GPUModelRunner.load_model", "GPUModelRunner.reload_weights"], files: VLLM_RUNNERS, category: Weights, tier: Site },
        Row { name: "vllm.model_loader", quals: &[], files: &["*/vllm/model_executor/model_loader/*"], category: Weights, tier: Site },
        Row { name: "vllm.v0_load_model", quals: &["GPUModelRunnerBase.load_model"], files: &["*/vllm/worker/model_runner.py"], category: Weights, tier: Site },
        // KV cache: initialize_kv_cache and the tensors it allocates (vllm/v1/worker/utils.py
        // allocate_kv_cache, vllm/v1/worker/gpu/attn_utils.py init_kv_cache), block tables
        // (vllm/v1/worker/block_table.py), V0's CacheEngine (vllm/worker/cache_engine.py).
        Row { name: "vllm.initialize_kv_cache", quals: &["GPUModelRunner.initialize_kv_cache", "GPUModelRunner.initialize_kv_cache_tensors", "GPUModelRunner._allocate_kv_cache_tensors", "GPUModelRunner._reshape_kv_cache_tensors"], files: VLLM_RUNNERS, category: KvCache, tier: Site },
        Row { name: "vllm.kv_cache_tensors", quals: &["allocate_kv_cache", "init_kv_cache"], files: &["*/vllm/v1/worker/utils.py", "*/vllm/v1/worker/gpu/attn_utils.py"], category: KvCache, tier: Site },
        Row { name: "vllm.block_table", quals: &["BlockTable.__init__", "MultiGroupBlockTable.__init__"], files: &["*/vllm/v1/worker/block_table.py", "*/vllm/v1/worker/gpu/block_table.py"], category: KvCache, tier: Site },
        Row { name: "vllm.v0_cache_engine", quals: &["CacheEngine.__init__", "CacheEngine._allocate_kv_cache"], files: &["*/vllm/worker/cache_engine.py"], category: KvCache, tier: Site },
        // Compute: the profile and dummy runs, serving steps, the sampler (vllm/v1/sample/).
        Row { name: "vllm.compute", quals: &["GPUModelRunner.profile_run", "GPUModelRunner._dummy_run", "GPUModelRunner._dummy_sampler_run", "GPUModelRunner._dummy_pooler_run", "GPUModelRunner.execute_model", "GPUModelRunner.sample_tokens", "GPUModelRunner._sample", "GPUModelRunner._model_forward"], files: VLLM_RUNNERS, category: Compute, tier: Site },
        Row { name: "vllm.sampler", quals: &[], files: &["*/vllm/v1/sample/*"], category: Compute, tier: Site },
        Row { name: "vllm.v0_compute", quals: &["GPUModelRunnerBase.profile_run", "ModelRunner.execute_model"], files: &["*/vllm/worker/model_runner.py"], category: Compute, tier: Site },

        // SGLang (python/sglang/srt/...): graph runners and their capture backends
        // (model_executor/runner/decode_cuda_graph_runner.py, prefill_cuda_graph_runner.py,
        // runner_backend/*, model_runner_components/cuda_graph_setup.py), older CudaGraphRunner
        // (model_executor/cuda_graph_runner.py) and the speculative ones.
        Row { name: "sglang.cuda_graph_runner", quals: &["DecodeCudaGraphRunner.__init__", "DecodeCudaGraphRunner.capture", "DecodeCudaGraphRunner._capture", "DecodeCudaGraphRunner._capture_one_stream", "DecodeCudaGraphRunner.capture_one_shape", "PrefillCudaGraphRunner.__init__", "PrefillCudaGraphRunner.capture", "PrefillCudaGraphRunner._capture", "PrefillCudaGraphRunner.capture_one_shape", "*CudaGraphRunner.capture_one_batch_size", "CudaGraphRunner.__init__", "CudaGraphRunner.capture"], files: &["*/sglang/srt/*cuda_graph_runner.py"], category: CudaGraphs, tier: Scope },
        Row { name: "sglang.graph_backends", quals: &["*CudaGraphBackend.capture_one"], files: &["*/sglang/srt/model_executor/runner_backend/*"], category: CudaGraphs, tier: Scope },
        Row { name: "sglang.capture_decode_graph", quals: &["capture_decode_graph"], files: &["*/sglang/srt/model_executor/model_runner_components/cuda_graph_setup.py"], category: CudaGraphs, tier: Scope },
        // Weights: ModelRunner.load_model (model_executor/model_runner.py,
        // model_runner_components/load_model_utils.py), the loaders (model_loader/), weight
        // updates (model_runner_components/weight_updater.py).
        Row { name: "sglang.load_model", quals: &["ModelRunner.load_model", "load_model_with_memory_saver"], files: &["*/sglang/srt/model_executor/model_runner.py", "*/sglang/srt/model_executor/model_runner_components/load_model_utils.py"], category: Weights, tier: Site },
        Row { name: "sglang.model_loader", quals: &[], files: &["*/sglang/srt/model_loader/*", "*/sglang/srt/model_executor/model_runner_components/weight_updater.py"], category: Weights, tier: Site },
        // KV cache: the memory pools (mem_cache/) and who allocates them.
        Row { name: "sglang.mem_cache", quals: &[], files: &["*/sglang/srt/mem_cache/*"], category: KvCache, tier: Site },
        Row { name: "sglang.alloc_memory_pool", quals: &["ModelRunner.alloc_memory_pool", "ModelRunner.init_memory_pool", "TpModelWorker.alloc_memory_pool"], files: &["*/sglang/srt/model_executor/model_runner.py", "*/sglang/srt/managers/tp_worker.py"], category: KvCache, tier: Site },
        // Compute: the eager runner (model_executor/runner/eager_runner.py), forwards, sampling.
        Row { name: "sglang.eager_runner", quals: &[], files: &["*/sglang/srt/model_executor/runner/eager_runner.py", "*/sglang/srt/layers/sampler.py", "*/sglang/srt/layers/logits_processor.py"], category: Compute, tier: Site },
        Row { name: "sglang.compute", quals: &["ModelRunner.forward", "ModelRunner._forward_raw", "ModelRunner.sample", "ModelRunner.prewarm_sampling"], files: SGLANG_RUNNER, category: Compute, tier: Site },
        Row { name: "sglang.forward_batch", quals: &["TpModelWorker.forward_batch_generation"], files: &["*/sglang/srt/managers/tp_worker.py"], category: Compute, tier: Site },

        // Hugging Face transformers (src/transformers/modeling_utils.py,
        // core_model_loading.py — checkpoint tensors materialized on a thread pool —,
        // cache_utils.py, generation/continuous_batching/cache.py, generation/utils.py,
        // models/*/modeling_*.py).
        Row { name: "hf.from_pretrained", quals: &["PreTrainedModel.from_pretrained", "PreTrainedModel._load_pretrained_model", "PreTrainedModel._move_missing_keys_from_meta_to_device", "PreTrainedModel._initialize_missing_keys", "caching_allocator_warmup", "PreTrainedModel.to", "PreTrainedModel.cuda", "PreTrainedModel.half", "PreTrainedModel.float"], files: &["*/transformers/modeling_utils.py"], category: Weights, tier: Site },
        Row { name: "hf.core_model_loading", quals: &[], files: &["*/transformers/core_model_loading.py"], category: Weights, tier: Site },
        Row { name: "hf.cache", quals: &[], files: &["*/transformers/cache_utils.py", "*/transformers/generation/continuous_batching/cache.py"], category: KvCache, tier: Site },
        Row { name: "hf.generate", quals: &["GenerationMixin.generate", "GenerationMixin._sample", "GenerationMixin._beam_search", "GenerationMixin._assisted_decoding"], files: &["*/transformers/generation/utils.py"], category: Compute, tier: Site },
        Row { name: "hf.forward", quals: &["*.forward"], files: &["*/transformers/models/*/modeling_*.py"], category: Compute, tier: Site },

        // Generic PyTorch (torch/nn/modules/module.py, torch/nn/parameter.py,
        // torch/serialization.py; torch/_inductor/cudagraph_trees.py and torch/cuda/graphs.py
        // for graphs captured by torch.compile and make_graphed_callables).
        Row { name: "torch.module_to", quals: &["Module._apply", "Module.to", "Module.cuda", "Module.to_empty", "Module.half", "Module.float", "Module.bfloat16", "Module.type"], files: &["*/torch/nn/modules/module.py"], category: Weights, tier: Site },
        Row { name: "torch.load_state_dict", quals: &["Module.load_state_dict", "Module._load_from_state_dict"], files: &["*/torch/nn/modules/module.py"], category: Weights, tier: Site },
        Row { name: "torch.materialize", quals: &["UninitializedTensorMixin.materialize"], files: &["*/torch/nn/parameter.py"], category: Weights, tier: Site },
        Row { name: "torch.serialization", quals: &[], files: &["*/torch/serialization.py"], category: Weights, tier: Site },
        Row { name: "torch.cudagraph_trees", quals: &["CUDAGraphTreeManager.record_function", "CUDAGraphTreeManager.run_eager", "CUDAGraphNode.*", "CUDAWarmupNode.run"], files: &["*/torch/_inductor/cudagraph_trees.py"], category: CudaGraphs, tier: Scope },
        Row { name: "torch.make_graphed_callables", quals: &["make_graphed_callables"], files: &["*/torch/cuda/graphs.py"], category: CudaGraphs, tier: Scope },
    ]
};

/// The rules of the table, scope rules first.
pub(super) fn rules() -> Vec<Rule> {
    let mut out = Vec::new();
    for row in ROWS {
        let quals: Vec<Option<&str>> = if row.quals.is_empty() { vec![None] } else { row.quals.iter().map(|&q| Some(q)).collect() };
        for q in &quals {
            for file in row.files {
                out.push(Rule {
                    name: format!("builtin:{}", row.name),
                    pattern: q.map(Pattern::new),
                    module: None,
                    file: Some(Pattern::new(file)),
                    within: None,
                    frames: FrameFilter::Python,
                    tier: row.tier,
                    category: row.category,
                });
            }
        }
    }
    out
}
