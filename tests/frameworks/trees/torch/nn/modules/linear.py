"""torch/nn/modules/linear.py: Linear (bf16 here) and LazyLinear."""

import torch

from ..parameter import Parameter, UninitializedParameter
from .lazy import LazyModuleMixin
from .module import Module

BYTES = 2  # bf16


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, device=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        make = torch.empty if str(device).startswith("cuda") else torch.HostTensor
        self.weight = Parameter(make(in_features * out_features * BYTES))
        if bias:
            self.bias = Parameter(make(out_features * BYTES))

    def forward(self, x_tokens):
        return torch.empty(x_tokens * self.out_features * BYTES)


class LazyLinear(LazyModuleMixin, Linear):
    def __init__(self, out_features, bias=True):
        super().__init__(0, out_features, bias=bias)
        self.weight = UninitializedParameter()
        if bias:
            self.bias = UninitializedParameter()
