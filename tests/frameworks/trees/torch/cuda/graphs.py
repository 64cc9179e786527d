"""torch/cuda/graphs.py: CUDAGraph, the torch.cuda.graph context manager, graph_pool_handle."""

import gc

import torchlike


def graph_pool_handle():
    return torchlike.graph_pool_handle()


class CUDAGraph(torchlike.CUDAGraph):
    def capture_begin(self, pool=None):
        super().capture_begin(pool=pool)

    def capture_end(self):
        super().capture_end()


class graph:
    """Captures the block into `cuda_graph`; its allocations come from the graph's private pool
    (`pool`, shared between graphs, or a new one)."""

    def __init__(self, cuda_graph, pool=None, stream=None, capture_error_mode="global"):
        self.cuda_graph = cuda_graph
        self.pool = () if pool is None else (pool,)
        self.stream = stream

    def __enter__(self):
        # As PyTorch does before a capture: free what can be freed so the graph's pool is small.
        torchlike.empty_cache()
        gc.collect()
        self.cuda_graph.capture_begin(*self.pool)

    def __exit__(self, *exc):
        self.cuda_graph.capture_end()
        return False
