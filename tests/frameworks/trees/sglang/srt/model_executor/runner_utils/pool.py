"""sglang/srt/model_executor/runner_utils/pool.py: one graph memory pool for every runner."""

_global_graph_memory_pool = None


def get_or_create_global_graph_memory_pool(device_module):
    global _global_graph_memory_pool
    if _global_graph_memory_pool is None:
        _global_graph_memory_pool = device_module.graph_pool_handle()
    return _global_graph_memory_pool
