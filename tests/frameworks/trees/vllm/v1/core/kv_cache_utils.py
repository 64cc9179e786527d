"""vllm/v1/core/kv_cache_utils.py: the KV cache's size, decided by the engine core before the
workers allocate it (get_kv_cache_config), and the capacity line it logs
(update_kv_cache_capacity)."""

from dataclasses import dataclass, field

from vllm.logger import init_logger

logger = init_logger("vllm.v1.core.kv_cache_utils")


@dataclass
class KVCacheConfig:
    num_blocks: int
    # Bytes of the one buffer that backs every layer's K and V (allocate_kv_cache).
    tensor_size: int
    # The layers the buffer serves.
    kv_cache_tensors: list = field(default_factory=list)


def get_kv_cache_config(vllm_config, num_blocks):
    m = vllm_config.model_config
    block_size = vllm_config.cache_config.block_size
    per_block = 2 * block_size * m.hidden_size * m.dtype_bytes * m.num_layers
    layers = [f"model.layers.{i}.self_attn.attn" for i in range(m.num_layers)]
    return KVCacheConfig(num_blocks=num_blocks, tensor_size=num_blocks * per_block, kv_cache_tensors=layers)


def update_kv_cache_capacity(vllm_config, kv_cache_config):
    tokens = kv_cache_config.num_blocks * vllm_config.cache_config.block_size
    max_len = vllm_config.model_config.max_model_len
    logger.info(
        "%s KV cache size: %s tokens, Maximum concurrency for %s tokens per request: %.2fx",
        "GPU",
        f"{tokens:,}",
        f"{max_len:,}",
        tokens / max_len,
    )
