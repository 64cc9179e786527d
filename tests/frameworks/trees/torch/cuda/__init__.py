"""torch.cuda: the caching allocator's controls and graph capture."""

import torchlike
from torchlike import OutOfMemoryError

from .graphs import CUDAGraph, graph, graph_pool_handle


def empty_cache():
    torchlike.empty_cache()


def synchronize():
    pass


def mem_get_info(device=None):
    return torchlike.mem_get_info()


def memory_reserved():
    return torchlike.memory_reserved()
