"""sglang/srt/model_loader/loader.py: DefaultModelLoader builds the model on the target device
(its layers create their weights there), then loads the checkpoint into it."""

import torch
from sglang.srt.models.llama import LlamaForCausalLM


def _initialize_model(model_config, load_config, quant_config=None):
    return LlamaForCausalLM(config=model_config, quant_config=quant_config)


class DefaultModelLoader:
    def __init__(self, load_config):
        self.load_config = load_config

    def _get_all_weights(self, model_config, model):
        for name, param in model.named_parameters():
            yield name, torch.HostTensor(param.nbytes)

    def load_model(self, *, model_config, device_config):
        target_device = torch.device(device_config.device)
        with target_device:
            model = _initialize_model(model_config, self.load_config)
        self.load_weights_and_postprocess(model, self._get_all_weights(model_config, model), target_device)
        return model.eval()

    @staticmethod
    def load_weights_and_postprocess(model, weights, target_device):
        DefaultModelLoader.load_weights_only(model, weights, target_device)

    @staticmethod
    def load_weights_only(model, weights, target_device):
        model.load_weights(weights)
