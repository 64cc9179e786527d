from sglang.srt.mem_cache.allocator.token import TokenToKVPoolAllocator
