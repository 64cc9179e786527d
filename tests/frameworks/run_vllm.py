"""A vLLM-shaped program: one V1 worker's GPU lifecycle, in vLLM's order, on the stand-in vLLM tree
(trees/vllm) over torchlike: runner set-up, weights, the profile run, CUDA-graph memory profiling,
the KV cache, warmup, graph capture, the sampler warmup, then serving (a prefill, decode steps
replayed from graphs, another prefill). Prints the EXPECT lines (see README.md) and exits 0."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "trees"))

import torch  # noqa: E402  (the stand-in, from trees/)
from torchlike.testing import expect, report  # noqa: E402
from vllm.config import CUDAGraphMode, VllmConfig  # noqa: E402
from vllm.logger import init_logger  # noqa: E402
from vllm.utils.mem_utils import format_gib  # noqa: E402
from vllm.v1.core.kv_cache_utils import get_kv_cache_config, update_kv_cache_capacity  # noqa: E402
from vllm.v1.worker.gpu_model_runner import GPUModelRunner  # noqa: E402

logger = init_logger("vllm.v1.worker.gpu_worker")

NUM_GPU_BLOCKS = 512
# (scheduled tokens, requests, prompt tokens wanting logprobs): a prefill, decode steps replayed
# from graphs, a prefill asking for prompt logprobs (logits over its whole prompt), decodes.
STEPS = [(1500, 3, 0), (3, 3, 0), (3, 3, 0), (1200, 4, 1200), (4, 4, 0), (4, 4, 0)]


class SchedulerOutput:
    def __init__(self, total_num_scheduled_tokens, num_reqs, num_prompt_logprob_tokens):
        self.total_num_scheduled_tokens = total_num_scheduled_tokens
        self.num_reqs = num_reqs
        self.num_prompt_logprob_tokens = num_prompt_logprob_tokens


def main():
    config = VllmConfig()
    with expect("kv_cache"):  # the persistent batch's block tables
        runner = GPUModelRunner(config, torch.device("cuda"))
    with expect("weights"):
        runner.load_model()

    # Worker.determine_available_memory
    with expect("compute"):
        runner.profile_run()
    torch.accelerator.empty_cache()
    with expect("cuda_graphs"):
        runner.profile_cudagraph_memory()
    kv_cache_config = get_kv_cache_config(config, NUM_GPU_BLOCKS)
    logger.info_once("Available KV cache memory: %s GiB", format_gib(kv_cache_config.tensor_size))

    # EngineCore._initialize_kv_caches logs the capacity, then the workers allocate.
    update_kv_cache_capacity(config, kv_cache_config)
    with expect("kv_cache"):
        runner.initialize_kv_cache(kv_cache_config)

    # Worker.compile_or_warm_up_model
    with expect("compute"):
        for size in sorted(config.compilation_config.compile_sizes, reverse=True):
            runner._dummy_run(size)
    with expect("cuda_graphs"):
        runner.capture_model()
    with expect("compute"):
        hidden_states, last_hidden_states = runner._dummy_run(
            num_tokens=config.scheduler_config.max_num_seqs, cudagraph_runtime_mode=CUDAGraphMode.NONE
        )
        runner._dummy_sampler_run(hidden_states=last_hidden_states)
        del hidden_states, last_hidden_states

    # Serving.
    with expect("compute"):
        for step in STEPS:
            runner.execute_model(SchedulerOutput(*step))
            runner.sample_tokens(None)
    return 0 if report() else 1


if __name__ == "__main__":
    sys.exit(main())
