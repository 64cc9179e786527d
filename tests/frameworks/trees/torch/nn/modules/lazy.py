"""torch/nn/modules/lazy.py: modules whose parameters take their size from the first input or
from a loaded state dict (materialized by a load_state_dict pre-hook)."""

from ..parameter import is_lazy


class LazyModuleMixin:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._register_load_state_dict_pre_hook(self._lazy_load_hook)

    def _lazy_load_hook(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for name, param in self._parameters.items():
            key = prefix + name
            if key in state_dict and is_lazy(param) and not is_lazy(state_dict[key]):
                param.materialize(state_dict[key].nbytes)
