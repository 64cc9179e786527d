"""vllm/platforms: current_platform's graph pool (one global pool shared by every captured graph)."""

import torch


class CudaPlatform:
    _global_graph_pool = None

    def graph_pool_handle(self):
        return torch.cuda.graph_pool_handle()

    def get_global_graph_pool(self):
        cls = self.__class__
        if cls._global_graph_pool is None:
            cls._global_graph_pool = self.graph_pool_handle()
        return cls._global_graph_pool


current_platform = CudaPlatform()
