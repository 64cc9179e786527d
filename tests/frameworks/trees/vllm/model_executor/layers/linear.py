"""vllm/model_executor/layers/linear.py: linear layers create their weights through their quant
method (on the device, under the loader's target-device context)."""

import torch
from torch import nn


class UnquantizedLinearMethod:
    def create_weights(self, layer, input_size, output_size, dtype_bytes):
        weight = nn.Parameter(torch.empty(input_size * output_size * dtype_bytes), requires_grad=False)
        layer.weight = weight

    def process_weights_after_loading(self, layer):
        # Kernel-format repacking: a new weight replaces the loaded one.
        repacked = torch.empty(layer.weight.nbytes)
        layer.weight.free()
        layer.weight.data = repacked

    def apply(self, layer, x_tokens):
        return torch.empty(x_tokens * layer.output_size * layer.dtype_bytes)


class LinearBase(nn.Module):
    def __init__(self, input_size, output_size, dtype_bytes=2, repack=False):
        super().__init__()
        self.input_size, self.output_size, self.dtype_bytes = input_size, output_size, dtype_bytes
        self.repack = repack
        self.quant_method = UnquantizedLinearMethod()
        self.quant_method.create_weights(self, input_size, output_size, dtype_bytes)

    def forward(self, x_tokens):
        return self.quant_method.apply(self, x_tokens)


class ColumnParallelLinear(LinearBase):
    pass


class MergedColumnParallelLinear(ColumnParallelLinear):
    pass


class QKVParallelLinear(ColumnParallelLinear):
    pass


class RowParallelLinear(LinearBase):
    pass
