"""vllm/model_executor/model_loader/utils.py: model construction and post-load processing."""

from vllm.model_executor.layers.linear import LinearBase
from vllm.model_executor.models import get_model_cls


def initialize_model(vllm_config, *, prefix="", model_class=None, model_config=None):
    model_class = model_class or get_model_cls(model_config)
    return model_class(vllm_config=vllm_config, prefix=prefix)


def _modules(module):
    yield module
    for child in module.children():
        yield from _modules(child)


def process_weights_after_loading(model, model_config, target_device):
    for module in _modules(model):
        if isinstance(module, LinearBase) and module.repack:
            module.quant_method.process_weights_after_loading(module)
