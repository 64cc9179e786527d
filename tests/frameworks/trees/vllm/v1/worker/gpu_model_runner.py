"""vllm/v1/worker/gpu_model_runner.py: GPUModelRunner, reduced to what allocates GPU memory and
how those methods call each other in vLLM's V1 engine:

  load_model -> BaseModelLoader.load_model -> model construction (weights)
  profile_run -> _dummy_run + _dummy_sampler_run (activation peak)
  profile_cudagraph_memory -> _init_minimal_kv_cache_for_profiling -> initialize_kv_cache,
      then _warmup_and_capture per batch size into a temporary pool, then everything is freed
  initialize_kv_cache -> may_reinitialize_input_batch + initialize_kv_cache_tensors
      -> allocate_kv_cache (one buffer for every layer)
  capture_model -> _capture_cudagraphs -> _warmup_and_capture -> _dummy_run (warmups, then the
      capture through CUDAGraphWrapper into the global graph pool)
  execute_model + sample_tokens (serving)
"""

import gc
from collections import namedtuple

import torch
from torchlike.testing import expect
from vllm.compilation.cuda_graph import CUDAGraphWrapper
from vllm.config import CUDAGraphMode
from vllm.forward_context import BatchDescriptor, set_forward_context
from vllm.logger import init_logger
from vllm.model_executor.model_loader import get_model_loader
from vllm.platforms import current_platform
from vllm.tracing import instrument
from vllm.utils.mem_utils import DeviceMemoryProfiler, format_gib
from vllm.v1.core.kv_cache_utils import get_kv_cache_config
from vllm.v1.cudagraph_dispatcher import CudagraphDispatcher
from vllm.v1.sample.sampler import Sampler
from vllm.v1.worker.gpu_input_batch import InputBatch
from vllm.v1.worker.utils import allocate_kv_cache, bind_kv_cache

logger = init_logger(__name__)

ExecuteModelState = namedtuple("ExecuteModelState", ["scheduler_output", "hidden_states", "logits"])

# The attention backend's kernel block size differs from the cache's block size, so the persistent
# batch is rebuilt when the KV cache is initialised (as vLLM does when they differ).
KERNEL_BLOCK_SIZE = 32


class GPUModelRunner:
    def __init__(self, vllm_config, device):
        self.vllm_config = vllm_config
        self.model_config = vllm_config.model_config
        self.cache_config = vllm_config.cache_config
        self.compilation_config = vllm_config.compilation_config
        self.load_config = vllm_config.load_config
        self.device = device
        sc = vllm_config.scheduler_config
        self.max_num_tokens = sc.max_num_batched_tokens
        self.max_num_reqs = sc.max_num_seqs
        self.sampler = Sampler()
        self.cudagraph_dispatcher = CudagraphDispatcher(vllm_config)
        self.kv_caches = []
        self.execute_model_state = None
        self._init_block_sizes = [self.cache_config.block_size]
        self.input_batch = InputBatch(self.max_num_reqs, self.model_config.max_model_len, self.max_num_tokens, self._init_block_sizes)

    def get_model(self):
        return self.model

    @instrument(span_name="Loading (GPU)")
    def load_model(self, load_dummy_weights=False):
        logger.info_once("Starting to load model %s...", self.model_config.model)
        with DeviceMemoryProfiler() as m:
            model_loader = get_model_loader(self.load_config)
            self.model = model_loader.load_model(vllm_config=self.vllm_config, model_config=self.model_config)
        self.model_memory_usage = m.consumed_memory
        logger.info_once("Model loading took %s GiB memory and %.6f seconds", format_gib(self.model_memory_usage), 0.0)
        if self.compilation_config.cudagraph_mode == CUDAGraphMode.FULL:
            self.model = CUDAGraphWrapper(self.model, self.vllm_config, runtime_mode=CUDAGraphMode.FULL)

    # ---- dummy runs: profiling, warmup, capture ----------------------------------------------

    @torch.inference_mode()
    def _dummy_run(self, num_tokens, cudagraph_runtime_mode=None, uniform_decode=False, is_profile=False, is_graph_capturing=False):
        if cudagraph_runtime_mode is None:
            cudagraph_runtime_mode, batch_descriptor = self.cudagraph_dispatcher.dispatch(num_tokens, uniform_decode)
        else:
            batch_descriptor = BatchDescriptor(num_tokens, uniform_decode)
        with set_forward_context(None, self.vllm_config, num_tokens=num_tokens, cudagraph_runtime_mode=cudagraph_runtime_mode, batch_descriptor=batch_descriptor):
            outputs = self.model(input_ids=num_tokens, positions=None)
        return outputs, outputs

    @torch.inference_mode()
    def _dummy_sampler_run(self, hidden_states):
        logits = self.model.compute_logits(self.max_num_reqs)
        output = self.sampler(logits=logits, sampling_metadata=None)
        logits.free()
        return output

    def profile_run(self, randomize_inputs=False):
        hidden_states, last_hidden_states = self._dummy_run(self.max_num_tokens, is_profile=True)
        output = self._dummy_sampler_run(last_hidden_states)
        del hidden_states, last_hidden_states, output
        gc.collect()

    def _init_minimal_kv_cache_for_profiling(self):
        min_blocks = min(self.max_num_reqs, max(self.compilation_config.cudagraph_capture_sizes)) or 1
        minimal_config = get_kv_cache_config(self.vllm_config, min_blocks)
        self.initialize_kv_cache(minimal_config, is_profiling=True)
        self.cache_config.num_gpu_blocks = minimal_config.num_blocks

    def _cleanup_profiling_kv_cache(self):
        for i in range(len(self.kv_caches)):
            self.kv_caches[i] = None
        self.kv_caches.clear()
        self.cache_config.num_gpu_blocks = None
        gc.collect()
        torch.accelerator.empty_cache()

    @torch.inference_mode()
    def profile_cudagraph_memory(self):
        # The minimal KV cache is KV cache even here: only the captures below are graph memory.
        with expect("kv_cache"):
            self._init_minimal_kv_cache_for_profiling()
        capture_descs = self.cudagraph_dispatcher.get_capture_descs()
        profiling_pool = current_platform.graph_pool_handle()
        original_pools = {}
        for instance in CUDAGraphWrapper._all_instances:
            original_pools[id(instance)] = instance.graph_pool
            instance.graph_pool = profiling_pool
        estimate = 0
        try:
            torch.accelerator.synchronize()
            torch.accelerator.empty_cache()
            for mode, descs in capture_descs:
                for desc in descs[:2]:
                    before = torch.cuda.memory_reserved()
                    self._warmup_and_capture(desc, cudagraph_runtime_mode=mode)
                    estimate = max(estimate, torch.cuda.memory_reserved() - before)
        finally:
            CUDAGraphWrapper.clear_all_graphs()
            for instance in CUDAGraphWrapper._all_instances:
                instance.graph_pool = original_pools.get(id(instance), instance.graph_pool)
            self._cleanup_profiling_kv_cache()
        logger.info("Estimated CUDA graph memory: %.2f GiB total", estimate / (1 << 30))
        return estimate

    @instrument(span_name="Capture model")
    def capture_model(self):
        if self.compilation_config.cudagraph_mode == CUDAGraphMode.NONE:
            return 0
        torch.accelerator.synchronize()
        torch.accelerator.empty_cache()
        start = torch.cuda.memory_reserved()
        for runtime_mode, batch_descs in self.cudagraph_dispatcher.get_capture_descs():
            self._capture_cudagraphs(batch_descriptors=batch_descs, cudagraph_runtime_mode=runtime_mode)
        end = torch.cuda.memory_reserved()
        torch.accelerator.synchronize()
        torch.accelerator.empty_cache()
        cuda_graph_size = end - start
        logger.info_once("Graph capturing finished in %.0f secs, took %.2f GiB", 0, cuda_graph_size / (1 << 30))
        return cuda_graph_size

    def _warmup_and_capture(self, desc, cudagraph_runtime_mode, num_warmups=1):
        for _ in range(num_warmups):
            self._dummy_run(desc.num_tokens, cudagraph_runtime_mode=CUDAGraphMode.NONE, uniform_decode=desc.uniform)
        self._dummy_run(desc.num_tokens, cudagraph_runtime_mode=cudagraph_runtime_mode, uniform_decode=desc.uniform, is_graph_capturing=True)

    def _capture_cudagraphs(self, batch_descriptors, cudagraph_runtime_mode):
        for batch_desc in batch_descriptors:
            self._warmup_and_capture(batch_desc, cudagraph_runtime_mode=cudagraph_runtime_mode)
            torch.accelerator.synchronize()

    # ---- KV cache -------------------------------------------------------------------------

    def may_reinitialize_input_batch(self, kv_cache_config):
        block_sizes = [KERNEL_BLOCK_SIZE]
        if block_sizes != self._init_block_sizes:
            self.input_batch = InputBatch(self.max_num_reqs, self.model_config.max_model_len, self.max_num_tokens, block_sizes)
            self._init_block_sizes = block_sizes

    def initialize_kv_cache_tensors(self, kv_cache_config, kernel_block_sizes):
        kv_caches = allocate_kv_cache(kv_cache_config, self.device, "NHD", kernel_block_sizes)
        bind_kv_cache(kv_caches, None, self.kv_caches)
        return kv_caches

    def initialize_kv_cache(self, kv_cache_config, is_profiling=False):
        self.kv_cache_config = kv_cache_config
        kernel_block_sizes = [KERNEL_BLOCK_SIZE]
        self.may_reinitialize_input_batch(kv_cache_config)
        self.initialize_kv_cache_tensors(kv_cache_config, kernel_block_sizes)

    # ---- serving ------------------------------------------------------------------------------

    def _model_forward(self, input_ids=None, positions=None):
        return self.model(input_ids=input_ids, positions=positions)

    @torch.inference_mode()
    def execute_model(self, scheduler_output, intermediate_tensors=None):
        num_tokens = scheduler_output.total_num_scheduled_tokens
        num_reqs = scheduler_output.num_reqs
        uniform_decode = num_tokens == num_reqs
        mode, batch_descriptor = self.cudagraph_dispatcher.dispatch(num_tokens, uniform_decode)
        num_input_tokens = batch_descriptor.num_tokens if batch_descriptor else num_tokens
        with set_forward_context(None, self.vllm_config, num_tokens=num_input_tokens, cudagraph_runtime_mode=mode, batch_descriptor=batch_descriptor):
            model_output = self._model_forward(input_ids=num_input_tokens, positions=None)
        logits = self.model.compute_logits(num_reqs)
        self.execute_model_state = ExecuteModelState(scheduler_output, model_output, logits)
        return None

    @torch.inference_mode
    def sample_tokens(self, grammar_output):
        state, self.execute_model_state = self.execute_model_state, None
        sampler_output = self._sample(state.logits, None)
        self._bookkeeping_sync(state.scheduler_output, sampler_output, state.hidden_states)
        return sampler_output

    def _sample(self, logits, spec_decode_metadata):
        return self.sampler(logits=logits, sampling_metadata=None)

    def _bookkeeping_sync(self, scheduler_output, sampler_output, hidden_states):
        if scheduler_output.num_prompt_logprob_tokens:
            self._get_prompt_logprobs_dict(hidden_states, scheduler_output)

    def _get_prompt_logprobs_dict(self, hidden_states, scheduler_output):
        # Logits over every prompt token of the requests that asked for prompt logprobs.
        logits = self.model.compute_logits(scheduler_output.num_prompt_logprob_tokens)
        logprobs = torch.empty(logits.nbytes)
        del logits, logprobs
        return {}
