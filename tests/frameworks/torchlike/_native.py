"""Finds (building it when needed) and loads the native allocator library, libc10_cuda.so.

TORCHLIKE_LIB_DIR names a directory holding a libc10_cuda.so built by ../build.sh; without it the
library is built once per source version into a cache directory. TORCHLIKE_PYDLL=1 loads it with
ctypes.PyDLL (the GIL stays held during calls) instead of ctypes.CDLL (the GIL is released, as
PyTorch's bindings do around each op).
"""

import ctypes
import hashlib
import os
import subprocess
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
_SOURCES = (
    os.path.join(_ROOT, "build.sh"),
    os.path.join(_ROOT, "native", "CUDACachingAllocator.cpp"),
    os.path.join(_ROOT, "..", "runners", "cuda_min.h"),
    os.path.join(_ROOT, "..", "runners", "frames.h"),
)
LIB_NAME = "libc10_cuda.so"


def _cached_build():
    digest = hashlib.sha256()
    for path in _SOURCES:
        with open(path, "rb") as f:
            digest.update(f.read())
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out = os.path.join(cache, "vramtrace-torchlike", digest.hexdigest()[:16])
    lib = os.path.join(out, LIB_NAME)
    if not os.path.exists(lib):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        # Build in a private directory, then rename it into place: concurrent first runs race
        # harmlessly and nobody ever loads a half-written library.
        tmp = tempfile.mkdtemp(dir=os.path.dirname(out))
        subprocess.run(["bash", _SOURCES[0], tmp], check=True)
        try:
            os.rename(tmp, out)
        except OSError:
            if not os.path.exists(lib):
                raise
    return lib


def library_path():
    lib_dir = os.environ.get("TORCHLIKE_LIB_DIR")
    if lib_dir:
        lib = os.path.join(lib_dir, LIB_NAME)
        if not os.path.exists(lib):
            raise FileNotFoundError(f"TORCHLIKE_LIB_DIR={lib_dir} has no {LIB_NAME} (run tests/frameworks/build.sh)")
        return lib
    return _cached_build()


def load():
    loader = ctypes.PyDLL if os.environ.get("TORCHLIKE_PYDLL") == "1" else ctypes.CDLL
    lib = loader(library_path())
    u64, c_int, c_size = ctypes.c_ulonglong, ctypes.c_int, ctypes.c_size_t
    lib.torchlike_init.argtypes = [c_int]
    lib.torchlike_empty.argtypes = [c_size, c_int, ctypes.POINTER(u64)]
    lib.torchlike_free.argtypes = [u64]
    lib.torchlike_empty_cache.argtypes = []
    for name in ("torchlike_begin_allocate_to_pool", "torchlike_end_allocate_to_pool", "torchlike_release_pool"):
        getattr(lib, name).argtypes = [u64]
    lib.torchlike_mem_get_info.argtypes = [ctypes.POINTER(c_size), ctypes.POINTER(c_size)]
    lib.torchlike_stat.argtypes = [c_int, c_int]
    lib.torchlike_stat.restype = u64
    return lib
