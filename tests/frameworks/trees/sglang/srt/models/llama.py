"""sglang/srt/models/llama.py: a Llama-shaped model taking a ForwardBatch; the attention backend
writes K/V into the memory pool in place, so forward allocates only activations."""

import torch
from sglang.srt.layers.linear import MergedColumnParallelLinear, QKVParallelLinear, RowParallelLinear
from sglang.srt.layers.logits_processor import LogitsProcessor
from torch import nn


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config, layer_id):
        super().__init__()
        h, i, b = config.hidden_size, config.intermediate_size, config.dtype_bytes
        self.qkv_proj = QKVParallelLinear(h, 3 * h, b)
        self.o_proj = RowParallelLinear(h, h, b)
        self.gate_up_proj = MergedColumnParallelLinear(h, 2 * i, b)
        self.down_proj = RowParallelLinear(i, h, b)

    def forward(self, positions, hidden_states, forward_batch):
        n = forward_batch.num_tokens
        qkv = self.qkv_proj(n)
        attn = self.o_proj(n)
        del qkv
        gate_up = self.gate_up_proj(n)
        out = self.down_proj(n)
        del gate_up, attn, hidden_states
        return out


class LlamaModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed_tokens = RowParallelLinear(config.vocab_size, config.hidden_size, config.dtype_bytes)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config, i) for i in range(config.num_layers))

    def forward(self, input_ids, positions, forward_batch):
        hidden_states = torch.empty(forward_batch.num_tokens * self.config.hidden_size * self.config.dtype_bytes)
        for layer in self.layers:
            hidden_states = layer(positions, hidden_states, forward_batch)
        return hidden_states


class LlamaForCausalLM(nn.Module):
    def __init__(self, config, quant_config=None, prefix=""):
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = RowParallelLinear(config.hidden_size, config.vocab_size, config.dtype_bytes)
        self.logits_processor = LogitsProcessor(config.vocab_size)

    def forward(self, input_ids, positions, forward_batch):
        hidden_states = self.model(input_ids, positions, forward_batch)
        return self.logits_processor(hidden_states, self.lm_head, forward_batch)

    def load_weights(self, weights):
        for _name, _loaded_weight in weights:
            pass  # weight_loader copies into the existing parameter
