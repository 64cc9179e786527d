"""sglang/srt/model_loader: picks the loader for the load format."""

from sglang.srt.model_loader.loader import DefaultModelLoader


def get_model_loader(load_config, model_config=None):
    return DefaultModelLoader(load_config)
