"""An SGLang-shaped program: one TP worker's GPU lifecycle, in SGLang's order, on the stand-in
SGLang tree (trees/sglang) over torchlike: the model runner and its weights, the KV memory pools,
the eager runner and decode CUDA-graph capture, then serving (a prefill, decode steps replayed
from graphs, a decode batch too large for any graph, another prefill). Prints the EXPECT lines
(see README.md) and exits 0."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "trees"))

from sglang.srt.configs.model_config import ModelConfig  # noqa: E402
from sglang.srt.managers.tp_worker import TpModelWorker  # noqa: E402
from sglang.srt.model_executor.forward_batch_info import ForwardMode  # noqa: E402
from sglang.srt.server_args import ServerArgs  # noqa: E402
from torchlike.testing import expect, report  # noqa: E402


class ModelWorkerBatch:
    def __init__(self, forward_mode, batch_size, num_tokens):
        self.forward_mode, self.batch_size, self.num_tokens = forward_mode, batch_size, num_tokens


# (mode, requests, tokens): a prefill, decodes replayed from graphs, a decode batch larger than
# the largest graph (eager), a chunked prefill, decodes.
STEPS = [
    (ForwardMode.EXTEND, 3, 1500),
    (ForwardMode.DECODE, 3, 3),
    (ForwardMode.DECODE, 3, 3),
    (ForwardMode.DECODE, 200, 200),
    (ForwardMode.EXTEND, 8, 2048),
    (ForwardMode.DECODE, 8, 8),
]


def main():
    server_args = ServerArgs()
    with expect("weights"):
        worker = TpModelWorker(server_args, ModelConfig())
    with expect("kv_cache"):
        worker.alloc_memory_pool()
    worker.init_attention_backends()
    with expect("cuda_graphs"):
        worker.init_cuda_graphs()
    with expect("compute"):
        for mode, reqs, tokens in STEPS:
            worker.forward_batch_generation(ModelWorkerBatch(mode, reqs, tokens))
    return 0 if report() else 1


if __name__ == "__main__":
    sys.exit(main())
