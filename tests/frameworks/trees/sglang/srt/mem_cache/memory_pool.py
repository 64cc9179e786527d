"""sglang/srt/mem_cache/memory_pool.py: the request-to-token table and the token-to-KV pools.
MHATokenToKVPool holds one K and one V buffer per layer."""

import torch
from sglang.srt.utils import get_logger

logger = get_logger(__name__)
GB = 1 << 30


class ReqToTokenPool:
    def __init__(self, size, max_context_len, device, enable_memory_saver=False):
        self.size = size
        self.max_context_len = max_context_len
        self.req_to_token = torch.zeros((size + 1) * max_context_len * 4)


class KVCache:
    def __init__(self, size, page_size, dtype_bytes, layer_num, device):
        self.size, self.page_size, self.dtype_bytes = size, page_size, dtype_bytes
        self.layer_num, self.device = layer_num, device


class MHATokenToKVPool(KVCache):
    def __init__(self, size, page_size, dtype_bytes, head_num, head_dim, layer_num, device):
        super().__init__(size, page_size, dtype_bytes, layer_num, device)
        self.head_num, self.head_dim = head_num, head_dim
        self._create_buffers()
        k_size, v_size = self.get_kv_size_bytes()
        logger.info(
            f"KV Cache is allocated. dtype: torch.bfloat16, #tokens: {size}, "
            f"K size: {k_size / GB:.2f} GB, V size: {v_size / GB:.2f} GB"
        )

    def _create_buffers(self):
        self._create_buffers_normal()

    def _create_buffers_normal(self):
        rows = self.size + self.page_size  # the padded slot 0 absorbs dummy writes

        def _zeros(shape_bytes):
            return torch.zeros(shape_bytes)

        row_bytes = self.head_num * self.head_dim * self.dtype_bytes
        self.k_buffer = [_zeros(rows * row_bytes) for _ in range(self.layer_num)]
        self.v_buffer = [_zeros(rows * row_bytes) for _ in range(self.layer_num)]

    def get_kv_size_bytes(self):
        return sum(b.nbytes for b in self.k_buffer), sum(b.nbytes for b in self.v_buffer)
