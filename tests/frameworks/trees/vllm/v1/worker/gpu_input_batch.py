"""vllm/v1/worker/gpu_input_batch.py: the persistent batch, which owns the block tables."""

from vllm.v1.worker.block_table import MultiGroupBlockTable


class InputBatch:
    def __init__(self, max_num_reqs, max_model_len, max_num_batched_tokens, block_sizes):
        self.block_table = MultiGroupBlockTable(max_num_reqs, max_model_len, max_num_batched_tokens, block_sizes)
