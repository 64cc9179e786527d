"""transformers/generation/utils.py: GenerationMixin.generate prepares the KV cache, then _sample
runs the decoding loop (forward, last-token logits in fp32, next tokens appended)."""

import torch
from transformers.cache_utils import DynamicCache, StaticCache


class GenerationMixin:
    def _prepare_static_cache(self, cache_implementation, batch_size, max_cache_len, model_kwargs):
        return StaticCache(config=self.config, max_cache_len=max_cache_len)

    def _prepare_cache_for_generation(self, generation_config, model_kwargs, batch_size, max_cache_length):
        if generation_config.get("cache_implementation") == "static":
            model_kwargs["past_key_values"] = self._prepare_static_cache("static", batch_size, max_cache_length, model_kwargs)
        else:
            model_kwargs["past_key_values"] = DynamicCache(config=self.config)

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, num_new_tokens=0, **kwargs):
        return {"input_ids": input_ids, "past_key_values": past_key_values, "num_new_tokens": num_new_tokens, "logits_to_keep": 1, **kwargs}

    def generate(self, inputs=None, generation_config=None, max_new_tokens=8, cache_implementation=None, **kwargs):
        input_ids, batch_size, prompt_len = inputs
        generation_config = {"cache_implementation": cache_implementation, "max_new_tokens": max_new_tokens}
        model_kwargs = {}
        self._prepare_cache_for_generation(generation_config, model_kwargs, batch_size, prompt_len + max_new_tokens)
        return self._sample((input_ids, batch_size, prompt_len), None, None, generation_config, **model_kwargs)

    def _sample(self, input_ids, logits_processor, stopping_criteria, generation_config, **model_kwargs):
        ids, batch_size, length = input_ids
        new_tokens = length
        for _ in range(generation_config["max_new_tokens"]):
            model_inputs = self.prepare_inputs_for_generation(ids, num_new_tokens=batch_size * new_tokens, batch_size=batch_size, **model_kwargs)
            outputs = self(**model_inputs)
            next_token_logits = torch.empty(batch_size * self.config.vocab_size * 4)  # .to(copy=True, dtype=float32)
            next_tokens = torch.empty(batch_size * 8)  # argmax
            del outputs, next_token_logits
            length += 1
            ids = torch.empty(batch_size * length * 8)  # torch.cat([input_ids, next_tokens[:, None]])
            del next_tokens
            new_tokens = 1
        return ids
