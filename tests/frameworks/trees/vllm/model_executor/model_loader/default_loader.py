"""vllm/model_executor/model_loader/default_loader.py: loads safetensors shards (host tensors
here) into the model's existing parameters."""

import torch
from vllm.model_executor.model_loader.base_loader import BaseModelLoader


class DefaultModelLoader(BaseModelLoader):
    def get_all_weights(self, model_config, model):
        for name, param in model.named_parameters():
            yield name, torch.HostTensor(param.nbytes)

    def load_weights(self, model, model_config):
        weights_to_load = {name for name, _ in model.named_parameters()}
        loaded = model.load_weights(self.get_all_weights(model_config, model))
        missing = weights_to_load - loaded
        if missing:
            raise ValueError(f"Following weights were not initialized from checkpoint: {missing}")
