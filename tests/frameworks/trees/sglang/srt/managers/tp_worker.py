"""sglang/srt/managers/tp_worker.py: TpModelWorker owns the ModelRunner and runs its batches."""

from sglang.srt.model_executor.forward_batch_info import ForwardBatch
from sglang.srt.model_executor.model_runner import ModelRunner


class TpModelWorker:
    def __init__(self, server_args, model_config, gpu_id=0, tp_rank=0):
        self.server_args = server_args
        self._model_runner = ModelRunner(
            model_config=model_config,
            mem_fraction_static=0.88,
            gpu_id=gpu_id,
            tp_rank=tp_rank,
            tp_size=1,
            server_args=server_args,
        )
        self.model_runner_list = [self._model_runner]

    @property
    def model_runner(self):
        return self._model_runner

    def alloc_memory_pool(self):
        self.model_runner.alloc_memory_pool()

    def init_attention_backends(self):
        self.model_runner.init_attention_backends()

    def init_cuda_graphs(self, capture_decode_cuda_graph=True):
        self.model_runner.init_cuda_graphs(capture_decode_cuda_graph=capture_decode_cuda_graph)

    def forward_batch_generation(self, model_worker_batch):
        forward_batch = ForwardBatch.init_new(model_worker_batch, self.model_runner)
        out = self.model_runner.forward(forward_batch)
        logits_output = out.logits_output
        next_token_ids = self.model_runner.sample(logits_output, forward_batch)
        if not out.can_run_graph:
            del logits_output  # eager logits die here; a graph's output buffer stays in its pool
        return next_token_ids
