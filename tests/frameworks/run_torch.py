"""A plain-PyTorch-shaped program on the stand-in torch tree (trees/torch) over torchlike: a model
built on the host and moved with .to("cuda"), a head moved with .cuda(), a model built on the
meta device and materialized with .to_empty(), a lazy layer materialized by load_state_dict, then
forward passes in the user's own code, which no framework rule covers (their memory stays the
caching allocator's: framework_cache). Prints the EXPECT lines (see README.md) and exits 0."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "trees"))

import torch  # noqa: E402  (the stand-in, from trees/)
from torch import nn  # noqa: E402
from torchlike.testing import expect, report  # noqa: E402

TOKENS = 4096


class MLP(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, tokens):
        x = None
        for layer in self.layers:
            y = layer(tokens)
            del x
            x = y
        return x


def main():
    with expect("weights"):
        model = MLP([1024, 4096, 4096, 1024]).to("cuda")
        head = nn.Linear(1024, 32000).cuda()
        with torch.device("meta"):
            adapter = MLP([1024, 2048, 1024])
        adapter.to_empty(device="cuda")
        lazy = nn.LazyLinear(16384)
        lazy.load_state_dict({"weight": torch.HostTensor(1024 * 16384 * 2), "bias": torch.HostTensor(16384 * 2)})
    with expect("framework_cache"):
        for _ in range(3):
            hidden = model(TOKENS)
            logits = head(TOKENS)
            del hidden, logits
    del adapter
    return 0 if report() else 1


if __name__ == "__main__":
    sys.exit(main())
