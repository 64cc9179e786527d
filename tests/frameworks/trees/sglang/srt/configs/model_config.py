"""sglang/srt/configs/model_config.py: the model's shape."""

from dataclasses import dataclass


@dataclass
class ModelConfig:
    model_path: str = "meta-llama/Llama-3.2-1B"
    num_layers: int = 4
    hidden_size: int = 1024
    intermediate_size: int = 4096
    vocab_size: int = 32000
    num_key_value_heads: int = 8
    head_dim: int = 128
    context_len: int = 4096
    dtype_bytes: int = 2
