"""torchlike: a tiny torch-like layer over a native caching allocator (libc10_cuda.so, ../native).

Device memory is allocated the way PyTorch allocates it: a Python call (`empty`, `zeros`,
`HostTensor.to("cuda")`) goes through ctypes into the native library, whose caching allocator
reuses freed blocks and reaches the CUDA driver only for new segments (cuMemAlloc_v2, or
cuMemCreate + cuMemMap with expandable segments). The driver is whatever libcuda.so.1 the dynamic
loader finds (the fake one in tests).

TORCHLIKE_EXPANDABLE_SEGMENTS=1 (or PYTORCH_CUDA_ALLOC_CONF containing expandable_segments:True)
selects expandable segments. Shapes and dtypes are the callers' business: a Tensor is a size in
bytes and a device address.
"""

import ctypes
import itertools
import os
import sys

from . import _native, testing

CUDA_ERROR_OUT_OF_MEMORY = 2


def _expandable_segments():
    if os.environ.get("TORCHLIKE_EXPANDABLE_SEGMENTS") == "1":
        return True
    return "expandable_segments:True" in os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")


_lib = _native.load()
_rc = _lib.torchlike_init(1 if _expandable_segments() else 0)
if _rc != 0:
    sys.exit(f"torchlike: the CUDA driver (libcuda.so.1 on the loader's path) did not initialise: CUresult {_rc}")


class OutOfMemoryError(RuntimeError):
    pass


class Tensor:
    """nbytes of device memory from the caching allocator; freed by free() or when dropped."""

    __slots__ = ("nbytes", "_ptr")
    is_cuda = True

    def __init__(self, nbytes, ptr):
        self.nbytes = nbytes
        self._ptr = ptr

    def data_ptr(self):
        return self._ptr

    def to(self, device=None, dtype=None):
        return self

    def cuda(self, device=None):
        return self

    def free(self):
        ptr, self._ptr = self._ptr, 0
        if ptr and _lib is not None:
            _lib.torchlike_free(ptr)

    def __del__(self):
        self.free()


class HostTensor:
    """nbytes in host memory (free here); .to("cuda") / .cuda() make a device copy."""

    __slots__ = ("nbytes",)
    is_cuda = False

    def __init__(self, nbytes):
        self.nbytes = nbytes

    def to(self, device=None, dtype=None):
        if device is not None and str(device).startswith("cuda"):
            return empty(self.nbytes)
        return self

    def cuda(self, device=None):
        return empty(self.nbytes)


_TRACE = os.environ.get("TORCHLIKE_TRACE", "")


def _qualname(code):
    return getattr(code, "co_qualname", code.co_name)


def _trace_driver_call(before, nbytes):
    """TORCHLIKE_TRACE=1: one stderr line per allocation that reached the driver, naming the
    category expected and the Python function that asked; TORCHLIKE_TRACE=stack: with the whole
    Python stack, innermost first (for tuning and debugging the tests)."""
    total = sum(_lib.torchlike_stat(0, t) for t in range(len(testing.CATEGORIES) + 1))
    if total == before:
        return
    f = sys._getframe(2)
    while f and f.f_globals.get("__name__", "").split(".")[0] == "torchlike":
        f = f.f_back
    frames = []
    while f:
        frames.append(f"{_qualname(f.f_code)} ({os.path.basename(f.f_code.co_filename)})")
        f = f.f_back if _TRACE == "stack" else None
    tag = testing.current_tag()
    category = testing.CATEGORIES[tag - 1] if tag else "UNEXPECTED"
    where = " < ".join(frames) or "?"
    pool = " into a graph's private pool" if CUDAGraph._capturing else ""
    print(f"torchlike: driver +{total - before} bytes{pool} for {category}: {nbytes} bytes asked by {where}", file=sys.stderr)


def _allocate(nbytes):
    out = ctypes.c_ulonglong()
    before = sum(_lib.torchlike_stat(0, t) for t in range(len(testing.CATEGORIES) + 1)) if _TRACE else 0
    rc = _lib.torchlike_empty(nbytes, testing.current_tag(), ctypes.byref(out))
    if _TRACE:
        _trace_driver_call(before, nbytes)
    if rc == CUDA_ERROR_OUT_OF_MEMORY:
        raise OutOfMemoryError(f"CUDA out of memory. Tried to allocate {nbytes} bytes")
    if rc != 0:
        raise RuntimeError(f"torchlike: allocation of {nbytes} bytes failed (CUresult {rc})")
    return Tensor(nbytes, out.value)


def empty(nbytes):
    return _allocate(nbytes)


def zeros(nbytes):
    # The memset is not modelled: only the allocation matters here.
    return _allocate(nbytes)


def empty_cache():
    """Returns every wholly free cached segment to the driver."""
    _lib.torchlike_empty_cache()


def memory_reserved():
    """Bytes the allocator holds from the driver (all tags)."""
    return sum(_lib.torchlike_stat(1, tag) for tag in range(len(testing.CATEGORIES) + 1))


def mem_get_info():
    """(free, total) device memory, as the driver reports it."""
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    rc = _lib.torchlike_mem_get_info(ctypes.byref(free), ctypes.byref(total))
    if rc != 0:
        raise RuntimeError(f"torchlike: cuMemGetInfo failed (CUresult {rc})")
    return free.value, total.value


_pool_ids = itertools.count(1)


def graph_pool_handle():
    """A new private memory pool id for graph capture."""
    return next(_pool_ids)


class CUDAGraph:
    """Graph capture as the allocator sees it: between capture_begin and capture_end every
    allocation comes from the graph's private pool, which outlives the capture until reset()."""

    _capturing = 0

    def __init__(self):
        self._pool = None

    def capture_begin(self, pool=None):
        self._pool = pool if pool is not None else graph_pool_handle()
        _lib.torchlike_begin_allocate_to_pool(self._pool)
        CUDAGraph._capturing += 1

    def capture_end(self):
        CUDAGraph._capturing -= 1
        _lib.torchlike_end_allocate_to_pool(self._pool)

    def replay(self):
        pass

    def pool(self):
        return self._pool

    def reset(self):
        if self._pool is not None:
            _lib.torchlike_release_pool(self._pool)
            self._pool = None


def driver_stat(what, category):
    """what: "allocated" bytes, "live" bytes or driver "calls" for a testing category."""
    index = {"allocated": 0, "live": 1, "calls": 2}[what]
    return _lib.torchlike_stat(index, testing.tag_of(category))
