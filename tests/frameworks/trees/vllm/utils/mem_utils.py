"""vllm/utils/mem_utils.py: DeviceMemoryProfiler and format_gib."""

import torch

GiB_bytes = 1 << 30


def format_gib(b):
    return f"{round(b / GiB_bytes, 2)}"


class DeviceMemoryProfiler:
    def __enter__(self):
        self.initial_memory = torch.cuda.memory_reserved()
        return self

    def __exit__(self, *exc):
        self.consumed_memory = torch.cuda.memory_reserved() - self.initial_memory
        return False
