"""sglang/srt/model_executor/runner/eager_runner.py: runs batches without graphs. Built before the
graph runners: its __init__ allocates the fixed-max static input buffers and warms up."""

import torch
from sglang.srt.model_executor.runner.base_runner import BaseRunner


class EagerRunner(BaseRunner):
    def __init__(self, model_runner, *, run_warmup=True):
        super().__init__(model_runner)
        self.max_bs = model_runner.server_args.max_running_requests
        max_num_tokens = model_runner.server_args.chunked_prefill_size
        self.input_ids = torch.zeros(max_num_tokens * 8)
        self.positions = torch.zeros(max_num_tokens * 8)
        self.out_cache_loc = torch.zeros(max_num_tokens * 8)
        if run_warmup:
            self.warmup()

    def can_run_graph(self, forward_batch):
        return True

    def execute(self, forward_batch, pp_proxy_tensors=None):
        if forward_batch.forward_mode.is_decode():
            return self._execute_decode(forward_batch)
        return self._execute_extend(forward_batch)

    def _execute_decode(self, forward_batch):
        return self.model_runner.model.forward(None, None, forward_batch)

    def _execute_extend(self, forward_batch):
        return self.model_runner.model.forward(None, None, forward_batch)
