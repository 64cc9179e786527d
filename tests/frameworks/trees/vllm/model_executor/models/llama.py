"""vllm/model_executor/models/llama.py: a Llama-shaped model. Its forward allocates the
activations of each layer and frees the intermediate ones, as eager PyTorch does."""

import torch
from torch import nn
from vllm.model_executor.layers.linear import (
    ColumnParallelLinear,
    MergedColumnParallelLinear,
    QKVParallelLinear,
    RowParallelLinear,
)


class RMSNorm(nn.Module):
    def __init__(self, hidden_size, dtype_bytes):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden_size * dtype_bytes))


class LlamaAttention(nn.Module):
    def __init__(self, config, prefix=""):
        super().__init__()
        h, b = config.hidden_size, config.dtype_bytes
        self.qkv_proj = QKVParallelLinear(h, 3 * h, b)
        self.o_proj = RowParallelLinear(h, h, b)

    def forward(self, positions, hidden_states_tokens):
        qkv = self.qkv_proj(hidden_states_tokens)
        attn_output = torch.empty(qkv.nbytes // 3)  # attention reads and writes the KV cache in place
        qkv.free()
        out = self.o_proj(hidden_states_tokens)
        attn_output.free()
        return out


class LlamaMLP(nn.Module):
    def __init__(self, config, prefix=""):
        super().__init__()
        h, i, b = config.hidden_size, config.intermediate_size, config.dtype_bytes
        self.gate_up_proj = MergedColumnParallelLinear(h, 2 * i, b, repack=True)
        self.down_proj = RowParallelLinear(i, h, b)

    def forward(self, x_tokens):
        gate_up = self.gate_up_proj(x_tokens)
        act = torch.empty(gate_up.nbytes // 2)
        gate_up.free()
        out = self.down_proj(x_tokens)
        act.free()
        return out


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config, prefix=""):
        super().__init__()
        self.self_attn = LlamaAttention(config, prefix=f"{prefix}.self_attn")
        self.mlp = LlamaMLP(config, prefix=f"{prefix}.mlp")
        self.input_layernorm = RMSNorm(config.hidden_size, config.dtype_bytes)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.dtype_bytes)

    def forward(self, positions, hidden_states, num_tokens):
        attn = self.self_attn(positions, num_tokens)
        hidden_states.free()
        out = self.mlp(num_tokens)
        attn.free()
        return out


class LlamaModel(nn.Module):
    def __init__(self, *, vllm_config, prefix=""):
        super().__init__()
        config = vllm_config.model_config
        self.config = config
        self.embed_tokens = ColumnParallelLinear(config.vocab_size, config.hidden_size, config.dtype_bytes)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config, prefix=f"{prefix}.layers.{i}") for i in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.dtype_bytes)

    def forward(self, input_ids, positions):
        num_tokens = input_ids
        hidden_states = torch.empty(num_tokens * self.config.hidden_size * self.config.dtype_bytes)
        for layer in self.layers:
            hidden_states = layer(positions, hidden_states, num_tokens)
        return hidden_states


class LlamaForCausalLM(nn.Module):
    def __init__(self, *, vllm_config, prefix=""):
        super().__init__()
        self.config = vllm_config.model_config
        self.model = LlamaModel(vllm_config=vllm_config, prefix="model")
        self.lm_head = ColumnParallelLinear(self.config.hidden_size, self.config.vocab_size, self.config.dtype_bytes)

    def forward(self, input_ids, positions):
        return self.model(input_ids, positions)

    def compute_logits(self, num_sampled_tokens):
        return torch.empty(num_sampled_tokens * self.config.vocab_size * 4)  # fp32 logits

    def load_weights(self, weights):
        loaded = set()
        for name, loaded_weight in weights:
            loaded.add(name)  # weight_loader copies into the existing parameter
        return loaded
