"""Per-call cost of cuMemAlloc_v2 + cuMemFree_v2 through ctypes (GIL released), called with
exactly FRAMES Python frames on the stack: what bench-shim runs with and without Python capture.

usage: bench_alloc.py ITERATIONS FRAMES     prints `hooked_ns_per_call <ns>` (thread CPU time:
other processes on a busy machine do not count)"""
import ctypes
import sys
import time


def measure(lib, n):
    p = ctypes.c_uint64()
    alloc, free, ref, size = lib.cuMemAlloc_v2, lib.cuMemFree_v2, ctypes.byref(p), ctypes.c_size_t(4096)
    t0 = time.thread_time_ns()
    for _ in range(n):
        alloc(ref, size)
        free(p)
    return (time.thread_time_ns() - t0) / (2 * n)


def at_depth(frames, lib, n):
    depth = 0
    f = sys._getframe()
    while f is not None:
        depth += 1
        f = f.f_back
    # measure() adds one frame.
    if depth + 1 < frames:
        return at_depth(frames, lib, n)
    return measure(lib, n)


def main():
    n, frames = int(sys.argv[1]), int(sys.argv[2])
    lib = ctypes.CDLL("libcuda.so.1")
    ctx = ctypes.c_void_p()
    assert lib.cuInit(0) == 0 and lib.cuCtxCreate_v2(ctypes.byref(ctx), 0, 0) == 0
    at_depth(frames, lib, n // 10)  # warm up: code objects described, stacks deduplicated
    print(f"hooked_ns_per_call {at_depth(frames, lib, n):.1f}")


main()
