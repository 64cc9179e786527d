"""sglang/srt/model_executor/forward_batch_info.py: ForwardMode and ForwardBatch."""

import enum


class ForwardMode(enum.IntEnum):
    EXTEND = 1
    DECODE = 2
    IDLE = 3

    def is_decode(self):
        return self == ForwardMode.DECODE


class ForwardBatch:
    def __init__(self, forward_mode, batch_size, num_tokens):
        self.forward_mode = forward_mode
        self.batch_size = batch_size
        self.num_tokens = num_tokens
        self.sampling_info = None

    @classmethod
    def init_new(cls, batch, model_runner):
        return cls(batch.forward_mode, batch.batch_size, batch.num_tokens)
