"""sglang/srt/model_executor/model_runner_components/cuda_graph_setup.py: builds the eager runner,
then captures the prefill and decode graphs, logging the graph memory of each."""

import time
from collections import namedtuple

from sglang.srt.model_executor.runner.decode_cuda_graph_runner import DecodeCudaGraphRunner
from sglang.srt.model_executor.runner.eager_runner import EagerRunner
from sglang.srt.utils import get_available_gpu_memory, get_logger
from torchlike.testing import expect

logger = get_logger(__name__)

GraphCapture = namedtuple("GraphCapture", ["runner", "memory_phase", "memory_usage_gb", "capture_time"])
CudaGraphsCapture = namedtuple("CudaGraphsCapture", ["eager_runner", "prefill", "decode"])


def capture_prefill_graph(*, model_runner, eager_runner, force_for_draft_worker=False):
    # The prefill graph is disabled by default: prefill batches run on the eager runner.
    return GraphCapture(eager_runner, "prefill", 0, 0)


def capture_decode_graph(*, model_runner):
    tic = time.perf_counter()
    before_mem = get_available_gpu_memory(model_runner.device, model_runner.gpu_id)
    logger.info(f"Capture target decode CUDA graph begin. backend=full, num_tokens_per_req=1, avail mem={before_mem:.2f} GB")
    runner = DecodeCudaGraphRunner(model_runner)
    after_mem = get_available_gpu_memory(model_runner.device, model_runner.gpu_id)
    mem_usage = before_mem - after_mem
    logger.info(
        f"Capture target decode CUDA graph end. bs={runner.capture_bs}, elapsed={0:.2f} s, "
        f"mem usage={mem_usage:.2f} GB, avail mem={after_mem:.2f} GB."
    )
    return GraphCapture(runner, "decode", mem_usage, time.perf_counter() - tic)


def capture_cuda_graphs(*, model_runner, capture_decode_cuda_graph=True, finalize=True, defer_distributed_setup=False):
    # The eager runner's static buffers and warmup are not graph memory: SGLang measures graph
    # memory around each capture below, not around this.
    with expect("compute"):
        eager_runner = EagerRunner(model_runner, run_warmup=not defer_distributed_setup)
    prefill = capture_prefill_graph(model_runner=model_runner, eager_runner=eager_runner)
    decode = GraphCapture(None, "decode", 0, 0)
    if capture_decode_cuda_graph:
        decode = capture_decode_graph(model_runner=model_runner)
    return CudaGraphsCapture(eager_runner, prefill, decode)
