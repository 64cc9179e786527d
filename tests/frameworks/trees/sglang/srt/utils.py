"""sglang/srt/utils.py: logging and the available-memory probe SGLang logs with."""

import os
import sys

import torch


class _Logger:
    def __init__(self, name):
        self.file = os.path.basename(name.replace(".", "/")) + ".py"

    def info(self, msg, *args):
        print(f"[{self.file}] {msg % args if args else msg}", file=sys.stderr)


def get_logger(name):
    return _Logger(name)


def get_available_gpu_memory(device="cuda", gpu_id=0, empty_cache=True):
    if empty_cache:
        torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(gpu_id)
    return free / (1 << 30)
