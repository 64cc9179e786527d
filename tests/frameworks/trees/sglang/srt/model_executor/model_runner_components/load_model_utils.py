"""sglang/srt/model_executor/model_runner_components/load_model_utils.py: loading the model
(under the memory saver's weights region when it is enabled)."""

from collections import namedtuple

from sglang.srt.model_loader import get_model_loader

DeviceConfig = namedtuple("DeviceConfig", ["device", "gpu_id"])
LoadedModel = namedtuple("LoadedModel", ["loader", "model"])


def load_model_with_memory_saver(*, model_config, load_config, device, gpu_id, memory_saver_adapter, is_draft_worker):
    loader = get_model_loader(load_config=load_config, model_config=model_config)
    model = loader.load_model(model_config=model_config, device_config=DeviceConfig(device, gpu_id))
    return LoadedModel(loader, model)
