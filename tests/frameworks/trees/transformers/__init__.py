"""Stand-in for Hugging Face transformers (v5) with its real module paths and function names,
reduced to the functions on the GPU-memory allocation paths and calling each other as
transformers does. Written from transformers' source structure; no transformers code is copied."""

from transformers.cache_utils import DynamicCache, StaticCache
from transformers.models.llama import LlamaConfig, LlamaForCausalLM
