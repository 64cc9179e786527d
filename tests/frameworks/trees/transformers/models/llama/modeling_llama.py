"""transformers/models/llama/modeling_llama.py: LlamaForCausalLM. Its layers are torch.nn
modules; attention hands the new keys and values to the cache (past_key_values.update)."""

import torch
from torch import nn
from transformers.generation import GenerationMixin
from transformers.modeling_utils import PreTrainedModel
from transformers.models.llama.configuration_llama import LlamaConfig


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, config, device=None):
        super().__init__()
        self.register_buffer("inv_freq", torch.HostTensor(config.head_dim // 2 * 4), persistent=False)

    def forward(self, x, position_ids_tokens):
        return torch.empty(position_ids_tokens * 128 * 2), torch.empty(position_ids_tokens * 128 * 2)  # cos, sin


class LlamaAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        h, kv = config.hidden_size, config.num_key_value_heads * config.head_dim
        self.q_proj = nn.Linear(h, h, bias=False)
        self.k_proj = nn.Linear(h, kv, bias=False)
        self.v_proj = nn.Linear(h, kv, bias=False)
        self.o_proj = nn.Linear(h, h, bias=False)

    def forward(self, hidden_states, position_embeddings, num_tokens, past_key_values=None, cache_position=None):
        query_states = self.q_proj(num_tokens)
        key_states = self.k_proj(num_tokens)
        value_states = self.v_proj(num_tokens)
        if past_key_values is not None:
            cache_kwargs = {"cache_position": cache_position}
            key_states, value_states = past_key_values.update(key_states, value_states, self.layer_idx, cache_kwargs)
        attn_output = torch.empty(query_states.nbytes)
        del query_states, key_states, value_states
        return self.o_proj(num_tokens)


class LlamaMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, num_tokens):
        gate, up = self.gate_proj(num_tokens), self.up_proj(num_tokens)
        del gate
        return self.down_proj(num_tokens)


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.weight = nn.Parameter(torch.HostTensor(hidden_size * 2))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = LlamaAttention(config, layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size)

    def forward(self, hidden_states, position_embeddings, num_tokens, past_key_values=None, cache_position=None):
        attn = self.self_attn(hidden_states, position_embeddings, num_tokens, past_key_values, cache_position)
        del hidden_states
        out = self.mlp(num_tokens)
        del attn
        return out


class LlamaPreTrainedModel(PreTrainedModel):
    config_class = LlamaConfig


class LlamaModel(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Linear(config.vocab_size, config.hidden_size, bias=False)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LlamaRMSNorm(config.hidden_size)
        self.rotary_emb = LlamaRotaryEmbedding(config)

    def forward(self, input_ids, num_tokens, past_key_values=None, cache_position=None):
        hidden_states = torch.empty(num_tokens * self.config.hidden_size * 2)  # embed_tokens(input_ids)
        position_embeddings = self.rotary_emb(hidden_states, num_tokens)
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(hidden_states, position_embeddings, num_tokens, past_key_values, cache_position)
        return hidden_states


class LlamaForCausalLM(LlamaPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, input_ids=None, past_key_values=None, num_new_tokens=0, logits_to_keep=0, **kwargs):
        batch_size = kwargs.get("batch_size", 1)
        # cache_position: the new tokens' positions in each sequence (here: how many there are)
        hidden_states = self.model(input_ids, num_new_tokens, past_key_values, num_new_tokens // batch_size)
        logits = self.lm_head(logits_to_keep * batch_size if logits_to_keep else num_new_tokens)
        del hidden_states
        return logits
