"""sglang/srt/model_executor/model_runner.py: ModelRunner, reduced to what allocates GPU memory
and how SGLang's methods call each other:

  __init__ -> initialize -> load_model -> load_model_with_memory_saver -> DefaultModelLoader
  alloc_memory_pool -> KVCacheConfigurator.configure -> ReqToTokenPool, MHATokenToKVPool, ...
  init_cuda_graphs -> capture_cuda_graphs -> EagerRunner, capture_decode_graph ->
      DecodeCudaGraphRunner (static buffers, capture per batch size)
  forward -> _forward_raw -> graph replay or the eager runner; sample -> Sampler
"""

from collections import namedtuple

from sglang.srt.layers.sampler import create_sampler
from sglang.srt.mem_cache.kv_cache_configurator import KVCacheConfigurator
from sglang.srt.model_executor.model_runner_components.cuda_graph_setup import capture_cuda_graphs
from sglang.srt.model_executor.model_runner_components.load_model_utils import load_model_with_memory_saver
from sglang.srt.utils import get_available_gpu_memory, get_logger

logger = get_logger(__name__)

ModelRunnerOutput = namedtuple("ModelRunnerOutput", ["logits_output", "can_run_graph"])


class ModelRunner:
    def __init__(self, model_config, mem_fraction_static, gpu_id, tp_rank, tp_size, server_args, is_draft_worker=False):
        self.model_config = model_config
        self.mem_fraction_static = mem_fraction_static
        self.device = "cuda"
        self.gpu_id = gpu_id
        self.server_args = server_args
        self.is_draft_worker = is_draft_worker
        self.load_config = None
        self.forward_pass_id = 0
        self.decode_cuda_graph_runner = None
        self.initialize()

    def initialize(self):
        self.sampler = create_sampler()
        self.load_model()

    def load_model(self):
        before_avail_memory = get_available_gpu_memory(self.device, self.gpu_id)
        logger.info(f"Load weight begin. avail mem={before_avail_memory:.2f} GB")
        loaded = load_model_with_memory_saver(
            model_config=self.model_config,
            load_config=self.load_config,
            device=self.device,
            gpu_id=self.gpu_id,
            memory_saver_adapter=None,
            is_draft_worker=self.is_draft_worker,
        )
        self.loader, self.model = loaded.loader, loaded.model
        after_avail_memory = get_available_gpu_memory(self.device, self.gpu_id)
        self.weight_load_mem_usage = before_avail_memory - after_avail_memory
        logger.info(
            f"Load weight end. elapsed={0:.2f} s, type={type(self.model).__name__}, "
            f"avail mem={after_avail_memory:.2f} GB, mem usage={self.weight_load_mem_usage:.2f} GB."
        )

    def init_kv_cache_configurator(self, draft_parallel_layout=None):
        self.kv_cache_configurator = KVCacheConfigurator(self)

    def alloc_memory_pool(self, memory_pool_config=None, *, draft_parallel_layout=None):
        self.init_kv_cache_configurator(draft_parallel_layout)
        result = self.kv_cache_configurator.configure(pre_model_load_memory=0)
        self.max_total_num_tokens = result.max_total_num_tokens
        self.req_to_token_pool = result.req_to_token_pool
        self.token_to_kv_pool = result.token_to_kv_pool
        self.token_to_kv_pool_allocator = result.token_to_kv_pool_allocator

    def init_attention_backends(self):
        pass

    def init_cuda_graphs(self, capture_decode_cuda_graph=True):
        capture = capture_cuda_graphs(model_runner=self, capture_decode_cuda_graph=capture_decode_cuda_graph)
        self.eager_runner = capture.eager_runner
        self.prefill_cuda_graph_runner = capture.prefill.runner
        self.decode_cuda_graph_runner = capture.decode.runner

    def forward(self, forward_batch, skip_attn_backend_init=None, pp_proxy_tensors=None, reinit_attn_backend=False, split_forward_count=1):
        self.forward_pass_id += 1
        return self._forward_raw(forward_batch, pp_proxy_tensors, reinit_attn_backend, split_forward_count)

    def _forward_raw(self, forward_batch, pp_proxy_tensors, reinit_attn_backend=False, split_forward_count=1):
        can_run_graph = bool(
            forward_batch.forward_mode.is_decode()
            and self.decode_cuda_graph_runner
            and self.decode_cuda_graph_runner.can_run_graph(forward_batch)
        )
        if can_run_graph:
            ret = self.decode_cuda_graph_runner.execute(forward_batch, pp_proxy_tensors=pp_proxy_tensors)
        else:
            ret = self.eager_runner.execute(forward_batch, pp_proxy_tensors=pp_proxy_tensors)
        return ModelRunnerOutput(ret, can_run_graph)

    def sample(self, logits_output, forward_batch):
        return self.sampler(logits_output, forward_batch.sampling_info)
