"""sglang/srt/mem_cache/allocator/token.py: the free list of KV slots, on the device."""

import torch


class TokenToKVPoolAllocator:
    def __init__(self, size, dtype_bytes, device, kvcache, need_sort=False):
        self.size = size
        self._kvcache = kvcache
        self.clear()

    def clear(self):
        self.free_pages = torch.empty(self.size * 8)  # int64 slot ids 1..size
