"""sglang/srt/layers/logits_processor.py: the LM head applied to the tokens that sample."""

import torch
from torch import nn


class LogitsProcessorOutput:
    def __init__(self, next_token_logits):
        self.next_token_logits = next_token_logits


class LogitsProcessor(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, hidden_states, lm_head, forward_batch):
        return LogitsProcessorOutput(torch.empty(forward_batch.batch_size * self.vocab_size * 4))
