"""sglang/srt/model_executor/runner/base_runner.py: what eager and graph runners share."""

from sglang.srt.model_executor.forward_batch_info import ForwardBatch, ForwardMode


class BaseRunner:
    def __init__(self, model_runner):
        self.model_runner = model_runner

    def warmup(self):
        # A decode forward at the largest batch loads kernels before any capture or serving.
        bs = self.max_bs
        self.model_runner.model.forward(None, None, ForwardBatch(ForwardMode.DECODE, bs, bs))
