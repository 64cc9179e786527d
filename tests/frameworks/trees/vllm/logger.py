"""vllm/logger.py: vLLM's log lines (level and file, no timestamps so runs compare equal)."""

import os
import sys


class _Logger:
    def __init__(self, name):
        self.file = os.path.basename(name.replace(".", "/")) + ".py"

    def info(self, msg, *args):
        print(f"INFO [{self.file}] {msg % args if args else msg}", file=sys.stderr)

    info_once = info
    debug = info


def init_logger(name):
    return _Logger(name)
