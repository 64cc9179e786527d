"""Stand-in for the slice of PyTorch the framework-shaped programs use, with PyTorch's module
paths and names (torch/nn/modules/module.py: Module.to, Module._apply, ...). Tensor memory comes
from torchlike. Written from PyTorch's documented behaviour; no PyTorch code is copied."""

from torchlike import HostTensor, OutOfMemoryError, Tensor, empty, zeros

from . import accelerator, cuda, nn
from .autograd.grad_mode import inference_mode, no_grad


def empty_like(t, device=None):
    if device is not None and not str(device).startswith("cuda"):
        return HostTensor(t.nbytes)
    return empty(t.nbytes)


class device:
    """torch.device; as a context manager it sets the default device (nothing to do here)."""

    def __init__(self, type="cuda"):
        self.type = type

    def __str__(self):
        return self.type

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
