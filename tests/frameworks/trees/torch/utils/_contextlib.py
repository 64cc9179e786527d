"""torch/utils/_contextlib.py: context managers that also work as function decorators. The
wrapper (context_decorator.<locals>.decorate_context) is a real frame between a decorated
function and its caller, as in PyTorch."""

import functools


def context_decorator(ctx, func):
    @functools.wraps(func)
    def decorate_context(*args, **kwargs):
        with ctx():
            return func(*args, **kwargs)

    return decorate_context


class _DecoratorContextManager:
    def __call__(self, orig_func):
        return context_decorator(self.clone, orig_func)

    def clone(self):
        return self.__class__()
