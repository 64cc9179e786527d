"""vllm/compilation/cuda_graph.py: CUDAGraphWrapper captures the wrapped model once per batch
descriptor into the platform's global graph pool and replays it afterwards. In any other
cudagraph mode (profile runs, warmups, eager batches) it just calls the model."""

import torch
from vllm.config import CUDAGraphMode
from vllm.forward_context import get_forward_context, is_forward_context_available
from vllm.platforms import current_platform


class CUDAGraphEntry:
    def __init__(self, batch_descriptor):
        self.batch_descriptor = batch_descriptor
        self.cudagraph = None
        self.output = None


class CUDAGraphWrapper:
    _all_instances = []

    @classmethod
    def clear_all_graphs(cls):
        for instance in cls._all_instances:
            instance.clear_graphs()

    def __init__(self, runnable, vllm_config, runtime_mode):
        self.runnable = runnable
        self.vllm_config = vllm_config
        self.runtime_mode = runtime_mode
        self.graph_pool = current_platform.get_global_graph_pool()
        self.concrete_cudagraph_entries = {}
        CUDAGraphWrapper._all_instances.append(self)

    def __getattr__(self, key):
        return getattr(self.runnable, key)

    def clear_graphs(self):
        for entry in self.concrete_cudagraph_entries.values():
            if entry.cudagraph is not None:
                entry.cudagraph.reset()
        self.concrete_cudagraph_entries.clear()

    def __call__(self, *args, **kwargs):
        if not is_forward_context_available():
            return self.runnable(*args, **kwargs)
        forward_context = get_forward_context()
        batch_descriptor = forward_context.batch_descriptor
        mode = forward_context.cudagraph_runtime_mode
        if mode == CUDAGraphMode.NONE or mode != self.runtime_mode:
            return self.runnable(*args, **kwargs)

        entry = self.concrete_cudagraph_entries.setdefault(batch_descriptor, CUDAGraphEntry(batch_descriptor))
        if entry.cudagraph is None:
            cudagraph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(cudagraph, pool=self.graph_pool):
                output = self.runnable(*args, **kwargs)
            # Only a weak reference is kept: the output's memory belongs to the graph's pool.
            output.free()
            entry.cudagraph = cudagraph
            return None
        entry.cudagraph.replay()
        return entry.output
