"""transformers/models/llama/configuration_llama.py."""

from dataclasses import dataclass


@dataclass
class LlamaConfig:
    num_hidden_layers: int = 4
    hidden_size: int = 1024
    intermediate_size: int = 4096
    vocab_size: int = 32000
    num_attention_heads: int = 8
    num_key_value_heads: int = 8
    head_dim: int = 128
    dtype_bytes: int = 2
