"""vllm/v1/worker/utils.py: allocate_kv_cache backs every layer's KV cache with one int8 buffer
and views it per layer; bind_kv_cache hands the views to the attention layers."""

import torch


def allocate_kv_cache(kv_cache_config, device, layout, kernel_block_sizes=None):
    if not kv_cache_config.kv_cache_tensors:
        return {}
    buf = torch.zeros(kv_cache_config.tensor_size)
    return {layer: buf for layer in kv_cache_config.kv_cache_tensors}


def bind_kv_cache(kv_caches, forward_context, runner_kv_caches):
    runner_kv_caches.extend(kv_caches.values())
