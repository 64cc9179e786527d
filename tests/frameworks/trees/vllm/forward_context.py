"""vllm/forward_context.py: the per-forward context (batch descriptor, cudagraph mode)."""

import contextlib
from collections import namedtuple

BatchDescriptor = namedtuple("BatchDescriptor", ["num_tokens", "uniform"])


class ForwardContext:
    def __init__(self, batch_descriptor, cudagraph_runtime_mode):
        self.batch_descriptor = batch_descriptor
        self.cudagraph_runtime_mode = cudagraph_runtime_mode


_forward_context = None


def is_forward_context_available():
    return _forward_context is not None


def get_forward_context():
    return _forward_context


@contextlib.contextmanager
def set_forward_context(attn_metadata, vllm_config, num_tokens=0, cudagraph_runtime_mode=None, batch_descriptor=None):
    global _forward_context
    prev = _forward_context
    _forward_context = ForwardContext(batch_descriptor, cudagraph_runtime_mode)
    try:
        yield
    finally:
        _forward_context = prev
