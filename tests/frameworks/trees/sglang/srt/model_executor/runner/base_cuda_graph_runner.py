"""sglang/srt/model_executor/runner/base_cuda_graph_runner.py: the CUDA-graph runners' base."""

from sglang.srt.model_executor.runner.base_runner import BaseRunner


class BaseCudaGraphRunner(BaseRunner):
    def capture_prepare(self, size):
        raise NotImplementedError

    def capture(self):
        raise NotImplementedError

    def capture_one_shape(self, size):
        raise NotImplementedError
