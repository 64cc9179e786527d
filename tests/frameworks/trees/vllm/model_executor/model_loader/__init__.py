"""vllm/model_executor/model_loader: picks the loader for the load format."""

from vllm.model_executor.model_loader.default_loader import DefaultModelLoader


def get_model_loader(load_config):
    return DefaultModelLoader(load_config)
