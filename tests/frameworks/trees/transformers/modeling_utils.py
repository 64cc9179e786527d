"""transformers/modeling_utils.py: PreTrainedModel.from_pretrained builds the model on the meta
device, then _load_pretrained_model warms the caching allocator up with one allocation the size
of the model (when a device map puts it on an accelerator), loads the checkpoint tensors
(core_model_loading, on a thread pool) and materializes what the checkpoint lacks.
PreTrainedModel.to/cuda defer to torch's Module."""

import contextlib

import torch
from torch import nn
from transformers.core_model_loading import convert_and_load_state_dict_in_model


class LoadStateDictConfig:
    def __init__(self, device_map=None, hf_quantizer=None):
        self.device_map = device_map
        self.hf_quantizer = hf_quantizer


def get_total_byte_count(model, accelerator_device_map, hf_quantizer):
    total = {}
    for name, param in model.named_parameters():
        device = accelerator_device_map.get(name)
        if device is not None:
            total[device] = total.get(device, 0) + param.nbytes
    return total


def caching_allocator_warmup(model, expanded_device_map, hf_quantizer):
    """One allocation of everything the model will put on each accelerator, released at once, so
    that the caching allocator holds a segment the parameters are then carved from."""
    accelerator_device_map = {k: v for k, v in expanded_device_map.items() if str(v).startswith("cuda")}
    total_byte_count = get_total_byte_count(model, accelerator_device_map, hf_quantizer)
    for device, byte_count in total_byte_count.items():
        _ = torch.empty(byte_count)


def expand_device_map(device_map, param_names):
    return {name: device_map.get("", "cpu") for name in param_names}


class PreTrainedModel(nn.Module):
    config_class = None

    def __init__(self, config):
        super().__init__()
        self.config = config

    @classmethod
    def get_init_context(cls, dtype, is_quantized, _is_ds_init_called, allow_all_kernels):
        return [torch.device("meta")]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, state_dict=None, device_map=None, dtype=None, **kwargs):
        config = config or cls.config_class()
        with contextlib.ExitStack() as model_init_context:
            for ctx in cls.get_init_context(dtype, False, False, False):
                model_init_context.enter_context(ctx)
            model = cls(config, *model_args)
        load_config = LoadStateDictConfig(device_map={"": device_map} if isinstance(device_map, str) else device_map)
        cls._load_pretrained_model(model, state_dict, None, load_config)
        model.eval()
        return model

    @classmethod
    def _load_pretrained_model(cls, model, state_dict, checkpoint_files, load_config):
        expected_keys = [name for name, _ in model.named_parameters()] + [name for name, _ in model.named_buffers()]
        if load_config.device_map is not None:
            expanded_device_map = expand_device_map(load_config.device_map, expected_keys)
            caching_allocator_warmup(model, expanded_device_map, load_config.hf_quantizer)
        loading_info = convert_and_load_state_dict_in_model(model, state_dict, load_config)
        missing_keys = [k for k in expected_keys if k not in state_dict]
        model._move_missing_keys_from_meta_to_device(missing_keys, load_config.device_map, None, load_config.hf_quantizer)
        return loading_info, None

    def _move_missing_keys_from_meta_to_device(self, missing_keys, device_map, device_mesh, hf_quantizer):
        device = (device_map or {}).get("", "cpu")
        for key in missing_keys:
            module_name, _, name = key.rpartition(".")
            module = self.get_submodule(module_name)
            if name in module._buffers:
                module._buffers[name] = torch.empty_like(module._buffers[name], device=device)

    def cuda(self, *args, **kwargs):
        return super().cuda(*args, **kwargs)

    def to(self, *args, **kwargs):
        return super().to(*args, **kwargs)
