"""torch/autograd/grad_mode.py: no_grad and inference_mode, usable as decorators."""

from ..utils._contextlib import _DecoratorContextManager


class no_grad(_DecoratorContextManager):
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class inference_mode(_DecoratorContextManager):
    def __new__(cls, mode_or_orig_func=True):
        # Bare @torch.inference_mode (no parentheses) decorates the function directly.
        if mode_or_orig_func is None or isinstance(mode_or_orig_func, bool):
            return super().__new__(cls)
        return cls()(mode_or_orig_func)

    def __init__(self, mode=True):
        self.mode = mode

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False

    def clone(self):
        return self.__class__(self.mode)
