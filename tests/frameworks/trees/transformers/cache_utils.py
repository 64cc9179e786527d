"""transformers/cache_utils.py: the KV caches generate() keeps. A Cache holds one layer object per
decoder layer: DynamicLayer grows by concatenation on every update; StaticLayer allocates its
full length on first use and writes in place."""

import torch
from torchlike.testing import expect


class CacheLayerMixin:
    is_compileable = False

    def __init__(self):
        self.keys, self.values = None, None
        self.is_initialized = False

    def lazy_initialization(self, key_states, value_states):
        raise NotImplementedError

    def update(self, key_states, value_states, cache_kwargs=None):
        raise NotImplementedError


class DynamicLayer(CacheLayerMixin):
    def lazy_initialization(self, key_states, value_states):
        self.keys, self.values = None, None  # empty tensors: no device memory yet
        self.is_initialized = True

    def update(self, key_states, value_states, cache_kwargs=None):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        old_keys, old_values = self.keys, self.values
        with expect("kv_cache"):
            self.keys = torch.empty((old_keys.nbytes if old_keys else 0) + key_states.nbytes)  # torch.cat
            self.values = torch.empty((old_values.nbytes if old_values else 0) + value_states.nbytes)
        del old_keys, old_values
        return self.keys, self.values


class StaticLayer(CacheLayerMixin):
    is_compileable = True

    def __init__(self, max_cache_len):
        super().__init__()
        self.max_cache_len = max_cache_len

    def lazy_initialization(self, key_states, value_states):
        # (batch, heads, max_cache_len, head_dim): the states' bytes per position, times the length
        per_position = key_states.nbytes // self._new_positions
        with expect("kv_cache"):
            self.keys = torch.zeros(per_position * self.max_cache_len)
            self.values = torch.zeros(per_position * self.max_cache_len)
        self.is_initialized = True

    def update(self, key_states, value_states, cache_kwargs=None):
        self._new_positions = cache_kwargs["cache_position"]  # stands for len(cache_position)
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        return self.keys, self.values  # index_copy_ into the preallocated tensors


class Cache:
    def __init__(self, layers=None, layer_class_to_replicate=None):
        self.layers = layers if layers is not None else []
        self.layer_class_to_replicate = layer_class_to_replicate

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        if self.layer_class_to_replicate is not None:
            while len(self.layers) <= layer_idx:
                self.layers.append(self.layer_class_to_replicate())
        return self.layers[layer_idx].update(key_states, value_states, cache_kwargs)


class DynamicCache(Cache):
    def __init__(self, config=None):
        super().__init__(layer_class_to_replicate=DynamicLayer)


class StaticCache(Cache):
    def __init__(self, config, max_cache_len):
        super().__init__(layers=[StaticLayer(max_cache_len) for _ in range(config.num_hidden_layers)])
