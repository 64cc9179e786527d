"""sglang/srt/layers/linear.py: linear layers create their weights through their quant method."""

import torch
from torch import nn


class UnquantizedLinearMethod:
    def create_weights(self, layer, input_size, output_size, dtype_bytes):
        layer.weight = nn.Parameter(torch.empty(input_size * output_size * dtype_bytes), requires_grad=False)

    def apply(self, layer, num_tokens):
        return torch.empty(num_tokens * layer.output_size * layer.dtype_bytes)


class LinearBase(nn.Module):
    def __init__(self, input_size, output_size, dtype_bytes=2):
        super().__init__()
        self.input_size, self.output_size, self.dtype_bytes = input_size, output_size, dtype_bytes
        self.quant_method = UnquantizedLinearMethod()
        self.quant_method.create_weights(self, input_size, output_size, dtype_bytes)

    def forward(self, num_tokens):
        return self.quant_method.apply(self, num_tokens)


class QKVParallelLinear(LinearBase):
    pass


class MergedColumnParallelLinear(LinearBase):
    pass


class RowParallelLinear(LinearBase):
    pass
