"""sglang/srt/server_args.py: the settings the allocation paths read."""

from dataclasses import dataclass, field


@dataclass
class ServerArgs:
    model_path: str = "meta-llama/Llama-3.2-1B"
    max_total_tokens: int = 16384
    max_running_requests: int = 256
    chunked_prefill_size: int = 2048
    cuda_graph_bs: list = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128, 160])
