"""vllm/v1/cudagraph_dispatcher.py: which batches run as captured graphs."""

from vllm.config import CUDAGraphMode
from vllm.forward_context import BatchDescriptor


class CudagraphDispatcher:
    def __init__(self, vllm_config):
        cc = vllm_config.compilation_config
        self.mode = cc.cudagraph_mode
        self.capture_sizes = sorted(cc.cudagraph_capture_sizes, reverse=True)

    def get_capture_descs(self):
        if self.mode == CUDAGraphMode.NONE:
            return []
        return [(self.mode, [BatchDescriptor(n, True) for n in self.capture_sizes])]

    def dispatch(self, num_tokens, uniform_decode):
        fits = [n for n in self.capture_sizes if n >= num_tokens]
        if self.mode == CUDAGraphMode.NONE or not uniform_decode or not fits:
            return CUDAGraphMode.NONE, None
        return self.mode, BatchDescriptor(min(fits), True)
