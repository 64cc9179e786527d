"""torch/nn/parameter.py: Parameter, and the uninitialized kind lazy modules materialize."""

import torch


class Parameter:
    """A module's tensor: host or device data, moved by Module._apply."""

    def __init__(self, data=None, requires_grad=True):
        self.data = data
        self.requires_grad = requires_grad

    @property
    def nbytes(self):
        return self.data.nbytes

    def to(self, device=None, dtype=None):
        return self.data.to(device, dtype)

    def cuda(self, device=None):
        return self.data.cuda(device)

    def copy_(self, src):
        return self  # an in-place copy allocates nothing

    def free(self):
        if isinstance(self.data, torch.Tensor):
            self.data.free()


class UninitializedTensorMixin:
    cls_to_become = None

    def materialize(self, nbytes, device=None, dtype=None):
        self.data = torch.empty(nbytes)
        self.__class__ = self.cls_to_become


class UninitializedParameter(UninitializedTensorMixin, Parameter):
    cls_to_become = Parameter

    def __init__(self, requires_grad=True):
        super().__init__(None, requires_grad)


def is_lazy(param):
    return isinstance(param, UninitializedTensorMixin)
