"""sglang/srt/mem_cache/kv_cache_configurator.py: sizes the pools from the memory left after the
weights, then creates them."""

from collections import namedtuple

from sglang.srt.mem_cache.allocator import TokenToKVPoolAllocator
from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, ReqToTokenPool

KVCacheConfigResult = namedtuple(
    "KVCacheConfigResult", ["max_total_num_tokens", "max_running_requests", "req_to_token_pool", "token_to_kv_pool", "token_to_kv_pool_allocator"]
)


class KVCacheConfigurator:
    def __init__(self, model_runner):
        self.model_runner = model_runner

    def configure(self, *, pre_model_load_memory):
        server_args = self.model_runner.server_args
        req_to_token_pool, token_to_kv_pool, allocator = self._init_pools(
            max_total_num_tokens=server_args.max_total_tokens, max_running_requests=server_args.max_running_requests
        )
        return KVCacheConfigResult(server_args.max_total_tokens, server_args.max_running_requests, req_to_token_pool, token_to_kv_pool, allocator)

    def _init_pools(self, *, max_total_num_tokens, max_running_requests, req_to_token_pool=None, token_to_kv_pool_allocator=None):
        mc = self.model_runner.model_config
        device = self.model_runner.device
        req_to_token_pool = req_to_token_pool or ReqToTokenPool(max_running_requests, mc.context_len, device)
        token_to_kv_pool = MHATokenToKVPool(
            max_total_num_tokens, 1, mc.dtype_bytes, mc.num_key_value_heads, mc.head_dim, mc.num_layers, device
        )
        allocator = token_to_kv_pool_allocator or TokenToKVPoolAllocator(max_total_num_tokens, mc.dtype_bytes, device, token_to_kv_pool)
        return req_to_token_pool, token_to_kv_pool, allocator
