"""sglang/srt/model_executor/runner_backend/full_cuda_graph_backend.py: one CUDA graph per shape,
captured after two warmup runs, into the global graph pool."""

import contextlib

import torch
from sglang.srt.model_executor.runner_utils.pool import get_or_create_global_graph_memory_pool


class FullCudaGraphBackend:
    def __init__(self, cuda_graph_runner):
        self._graphs = {}
        self._outputs = {}
        self._pool = None
        self._cuda_graph_runner = cuda_graph_runner
        self._device_module = torch.cuda

    @contextlib.contextmanager
    def capture_session(self, stream):
        if self._pool is None:
            self._pool = get_or_create_global_graph_memory_pool(self._device_module)
        yield

    def capture_one(self, shape_key, forward_fn, capture_inputs=None, post_warmup_hook=None):
        for _ in range(2):
            output = forward_fn()
            del output
        graph = torch.cuda.CUDAGraph()
        with self._device_module.graph(cuda_graph=graph, pool=self._pool, stream=None):
            out = forward_fn()
        self._graphs[shape_key] = graph
        self._outputs[shape_key] = out

    def can_run(self, forward_batch, shape_key):
        return shape_key in self._graphs

    def replay(self, shape_key, static_forward_batch, **kwargs):
        self._graphs[shape_key].replay()
        return self._outputs[shape_key]
