"""vllm/v1/worker/block_table.py: per-request block tables and slot mappings (int32/int64) on the
device, sized by the kernel block size."""

from vllm.v1.utils import CpuGpuBuffer


class BlockTable:
    def __init__(self, block_size, max_num_reqs, max_num_blocks_per_req, max_num_batched_tokens):
        self.block_size = block_size
        self.block_table = CpuGpuBuffer(max_num_reqs * max_num_blocks_per_req * 4)
        self.slot_mapping = CpuGpuBuffer(max_num_batched_tokens * 8)


class MultiGroupBlockTable:
    def __init__(self, max_num_reqs, max_model_len, max_num_batched_tokens, block_sizes):
        self.block_tables = [
            BlockTable(bs, max_num_reqs, -(-max_model_len // bs), max_num_batched_tokens) for bs in block_sizes
        ]
