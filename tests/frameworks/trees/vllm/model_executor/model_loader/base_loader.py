"""vllm/model_executor/model_loader/base_loader.py: BaseModelLoader.load_model builds the model on
the target device (its layers create their weights there), loads the checkpoint into it, then
converts weights to kernel format and empties the allocator's cache."""

import gc

import torch
from vllm.model_executor.model_loader.utils import initialize_model, process_weights_after_loading
from vllm.tracing import instrument


class BaseModelLoader:
    def __init__(self, load_config):
        self.load_config = load_config

    def load_weights(self, model, model_config):
        raise NotImplementedError

    def create_model(self, vllm_config, model_config, prefix=""):
        return initialize_model(vllm_config=vllm_config, model_config=model_config, prefix=prefix)

    @instrument(span_name="Load model")
    def load_model(self, vllm_config, model_config, prefix=""):
        target_device = torch.device("cuda")
        with target_device:
            model = self.create_model(vllm_config=vllm_config, model_config=model_config, prefix=prefix)
        self.load_weights(model, model_config)
        gc.collect()
        torch.accelerator.empty_cache()
        process_weights_after_loading(model, model_config, target_device)
        gc.collect()
        torch.accelerator.empty_cache()
        return model.eval()
