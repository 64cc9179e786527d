"""sglang/srt/model_executor/runner/decode_cuda_graph_runner.py: DecodeCudaGraphRunner allocates
the static buffers its graphs read and write, then captures one graph per batch size (largest
first) through its backend; execute() replays the graph for a batch."""

import torch
from sglang.srt.model_executor.forward_batch_info import ForwardBatch, ForwardMode
from sglang.srt.model_executor.runner.base_cuda_graph_runner import BaseCudaGraphRunner
from sglang.srt.model_executor.runner_backend.full_cuda_graph_backend import FullCudaGraphBackend


class DecodeCudaGraphRunner(BaseCudaGraphRunner):
    def __init__(self, model_runner):
        super().__init__(model_runner)
        self.capture_bs = sorted(model_runner.server_args.cuda_graph_bs)
        self.max_bs = max(self.capture_bs)
        self.backend = FullCudaGraphBackend(self)
        self.input_ids = torch.zeros(self.max_bs * 8)
        self.positions = torch.zeros(self.max_bs * 8)
        self.seq_lens = torch.zeros(self.max_bs * 4)
        self.out_cache_loc = torch.zeros(self.max_bs * 8)
        self.next_token_logits_buffer = torch.zeros(self.max_bs * model_runner.model_config.vocab_size * 4)
        self.capture()

    def capture(self):
        self._capture()

    def _capture(self):
        self.warmup()
        with self.backend.capture_session(None):
            self._capture_one_stream()

    def _capture_one_stream(self, stream_idx=None):
        for bs in reversed(self.capture_bs):
            self.capture_one_shape(bs)

    def _make_graph_key(self, bs):
        return bs

    def capture_one_shape(self, bs, num_tokens=None, stream_idx=0):
        forward_batch = ForwardBatch(ForwardMode.DECODE, bs, bs)

        def run_once():
            return self.model_runner.model.forward(self.input_ids, self.positions, forward_batch)

        self.backend.capture_one(self._make_graph_key(bs), run_once)

    def can_run_graph(self, forward_batch):
        return forward_batch.batch_size <= self.max_bs

    def load_batch(self, forward_batch, pp_proxy_tensors=None):
        self._replay_graph_key = min(bs for bs in self.capture_bs if bs >= forward_batch.batch_size)

    def execute(self, forward_batch, pp_proxy_tensors=None):
        self.load_batch(forward_batch, pp_proxy_tensors)
        return self.backend.replay(self._replay_graph_key, forward_batch)
