"""vllm/v1/utils.py: CpuGpuBuffer, a pinned host buffer with its device twin."""

import torch


class CpuGpuBuffer:
    def __init__(self, nbytes, device="cuda"):
        self.cpu = torch.HostTensor(nbytes)
        self.gpu = torch.zeros(nbytes)
