"""torch/nn/modules/module.py: Module, whose to/cuda/to_empty move every parameter and buffer
through _apply, and whose load_state_dict walks the tree through a nested load()."""

import torch

from ..parameter import Parameter


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_load_state_dict_pre_hooks", [])
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(table)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def register_buffer(self, name, tensor, persistent=True):
        self._buffers[name] = tensor

    def get_submodule(self, target):
        module = self
        for item in target.split(".") if target else []:
            module = module._modules[item]
        return module


    def children(self):
        return iter(self._modules.values())

    def _named_members(self, table, prefix=""):
        for name, member in getattr(self, table).items():
            yield prefix + name, member
        for name, m in self._modules.items():
            yield from m._named_members(table, prefix + name + ".")

    def named_parameters(self, prefix=""):
        return self._named_members("_parameters", prefix)

    def named_buffers(self, prefix=""):
        return self._named_members("_buffers", prefix)

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def _apply(self, fn, recurse=True):
        if recurse:
            for module in self.children():
                module._apply(fn)
        for key, param in self._parameters.items():
            if param is None or param.data is None:
                continue
            old = param.data
            param.data = fn(param)
            if old is not param.data and isinstance(old, torch.Tensor):
                old.free()  # the last reference to the old storage goes
        for key, buf in self._buffers.items():
            if buf is not None:
                new = fn(buf)
                if new is not buf and isinstance(buf, torch.Tensor):
                    buf.free()
                self._buffers[key] = new
        return self

    def to(self, *args, **kwargs):
        device = kwargs.get("device", args[0] if args else None)

        def convert(t):
            return t.to(device)

        return self._apply(convert)

    def cuda(self, device=None):
        return self._apply(lambda t: t.cuda(device))

    def to_empty(self, *, device, recurse=True):
        return self._apply(lambda t: torch.empty_like(t, device=device), recurse=recurse)

    def eval(self):
        object.__setattr__(self, "training", False)
        return self

    def _register_load_state_dict_pre_hook(self, hook):
        self._load_state_dict_pre_hooks.append(hook)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for hook in self._load_state_dict_pre_hooks:
            hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        for name, param in self._parameters.items():
            key = prefix + name
            if key in state_dict:
                param.copy_(state_dict[key])
            elif strict:
                missing_keys.append(key)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        missing_keys, unexpected_keys, error_msgs = [], [], []

        def load(module, local_state_dict, prefix=""):
            module._load_from_state_dict(local_state_dict, prefix, {}, True, missing_keys, unexpected_keys, error_msgs)
            for name, child in module._modules.items():
                load(child, local_state_dict, prefix + name + ".")

        load(self, state_dict)
        return missing_keys, unexpected_keys

    def _call_impl(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _wrapped_call_impl(self, *args, **kwargs):
        return self._call_impl(*args, **kwargs)

    __call__ = _wrapped_call_impl
