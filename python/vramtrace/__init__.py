"""Markers from Python for vramtrace, the CUDA memory profiler.

Tag phases and token counts in the trace of this process, so its report can say which memory a
phase allocated and how memory grows per token::

    import vramtrace

    with vramtrace.phase("kv_cache"):      # allocations inside count as KV cache
        cache = allocate_cache()
    vramtrace.mark("tokens", 4096)         # a token count for the growth-per-token fit

They take effect when the process runs under the vramtrace shim (``vramtrace run -- python
script.py``, or ``LD_PRELOAD=$(vramtrace shim) python script.py``); without it they do nothing
and warn once. Categories and marker labels are described in the vramtrace README.
"""

import contextlib
import ctypes
import warnings

__all__ = ["enabled", "mark", "phase"]


def _find_mark():
    # The shim exports vramtrace_mark into the global scope when it is preloaded; it is loaded
    # before the interpreter starts or not at all, so looking once, at import, is enough.
    try:
        f = ctypes.CDLL(None).vramtrace_mark
    except (AttributeError, OSError):
        return None
    f.argtypes = (ctypes.c_char_p, ctypes.c_int64)
    f.restype = None
    return f


_mark = _find_mark()
_warned = False


def enabled():
    """True when this process runs under the vramtrace shim (markers are recorded)."""
    return _mark is not None


def mark(label, value=0):
    """Records a marker ``label`` = ``value`` (an integer) in this process's trace."""
    global _warned
    if _mark is None:
        if not _warned:
            _warned = True
            warnings.warn(
                "vramtrace: the shim is not loaded in this process, markers are not recorded "
                "(run it with `vramtrace run -- python ...`)",
                RuntimeWarning,
                stacklevel=2,
            )
        return
    if not isinstance(label, str) or "\0" in label:
        raise ValueError("vramtrace.mark: label must be a str without NUL characters")
    _mark(label.encode("utf-8"), int(value))


@contextlib.contextmanager
def phase(category):
    """Allocations made inside the ``with`` block whose call stack does not decide their
    category are counted as ``category`` (weights, kv_cache, compute, scratch_pool, workspace,
    framework_cache, ...)."""
    mark("phase:" + category, 1)
    try:
        yield
    finally:
        mark("phase:" + category, 0)
