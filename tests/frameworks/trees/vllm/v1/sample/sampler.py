"""vllm/v1/sample/sampler.py: the sampler (softmax, top-k/top-p, sampling) on fp32 logits."""

import torch
from torch import nn


class Sampler(nn.Module):
    def forward(self, logits, sampling_metadata=None):
        probs = torch.empty(logits.nbytes)
        sampled = self.sample(probs, sampling_metadata)
        probs.free()
        return sampled

    def sample(self, probs, sampling_metadata):
        return torch.empty(max(probs.nbytes // 32000, 512))
