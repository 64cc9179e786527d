"""vllm/config: the few settings the allocation paths read."""

import enum
from dataclasses import dataclass, field


class CUDAGraphMode(enum.Enum):
    NONE = 0
    PIECEWISE = 1
    FULL = 2


@dataclass
class ModelConfig:
    model: str = "meta-llama/Llama-3.2-1B"
    num_layers: int = 4
    hidden_size: int = 1024
    intermediate_size: int = 4096
    vocab_size: int = 32000
    max_model_len: int = 4096
    dtype_bytes: int = 2


@dataclass
class CacheConfig:
    block_size: int = 16
    num_gpu_blocks: int | None = None


@dataclass
class SchedulerConfig:
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 256


@dataclass
class CompilationConfig:
    cudagraph_mode: CUDAGraphMode = CUDAGraphMode.FULL
    cudagraph_capture_sizes: list = field(default_factory=lambda: [256, 128, 64, 32, 16, 8, 4, 2, 1])
    compile_sizes: list = field(default_factory=lambda: [512])


@dataclass
class LoadConfig:
    load_format: str = "auto"


@dataclass
class VllmConfig:
    model_config: ModelConfig = field(default_factory=ModelConfig)
    cache_config: CacheConfig = field(default_factory=CacheConfig)
    scheduler_config: SchedulerConfig = field(default_factory=SchedulerConfig)
    compilation_config: CompilationConfig = field(default_factory=CompilationConfig)
    load_config: LoadConfig = field(default_factory=LoadConfig)
