"""Allocates device memory through ctypes from many kinds of Python frames and prints, right
before each call, the Python stack as `traceback.extract_stack()` sees it at that call.

usage: alloc_stacks.py SCENARIO DLL
  SCENARIO  main | thread | asyncio | asyncio_thread | generator | recursion | all (those six),
            or several joined by commas
            | reuse (code objects freed and compiled again, likely at the same addresses)
            | subinterpreters (a second interpreter appears after the first allocation)
            | native_thread (through libpy_worker.so, path in $VT_WORKER_LIB: a thread without
              Python state allocates; printed as `NATIVE_ALLOC <size> <CUresult>`)
            | fork (allocations in a forked child, then in the parent)
  DLL       cdll (ctypes.CDLL: the GIL is released around each call)
            pydll (ctypes.PyDLL: the GIL is held)
            builtin (vt_alloc, a builtin the embedder `py_embed` adds, where ctypes cannot load;
            scenarios main, thread, generator and recursion)

For each call, outermost frame first:
  FRAME <file> TAB <line> TAB <name> TAB <qualname>     (qualname empty before 3.11)
then `ALLOC <size> <CUresult>` or `MARK <label>`. The stack is printed and the call made on the
same source line, so the innermost frame's line is the call's. The driver is libcuda.so.1 from
the library path (the fake one in the tests). The output is the same with and without vramtrace.
"""
import builtins
import os
import sys
import threading
import traceback

try:
    import asyncio
    import ctypes
except ImportError:  # libpython loaded RTLD_LOCAL: extension modules cannot load
    asyncio = ctypes = None

LIB = None
CTX = ctypes and ctypes.c_void_p()
SIZES = iter(range(1 << 20, 1 << 40, 1 << 20))
# vramtrace_mark when running under vramtrace; markers are printed either way.
MARK = ctypes and getattr(ctypes.CDLL(None), "vramtrace_mark", None)


def show():
    """Prints the caller's stack (the caller's frame and outward)."""
    caller = sys._getframe(1)
    frames = traceback.extract_stack(caller)
    qualnames = []
    f = caller
    while f is not None:
        qualnames.append(getattr(f.f_code, "co_qualname", ""))
        f = f.f_back
    for fs, q in zip(frames, reversed(qualnames)):
        print(f"FRAME {fs.filename}\t{fs.lineno}\t{fs.name}\t{q}")


def alloc():
    size = next(SIZES)
    if LIB is None:
        show(); r = builtins.vt_alloc(size)  # noqa: E702
    else:
        p = ctypes.c_uint64()
        show(); r = LIB.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(size))  # noqa: E702
    print(f"ALLOC {size} {r}", flush=True)
    return r


def mark(label):
    show(); MARK and MARK(label.encode(), ctypes.c_int64(1))  # noqa: E702
    print(f"MARK {label}", flush=True)


def use_context():
    """Driver contexts are current per thread (vt_alloc sees to it itself)."""
    if LIB is not None:
        assert LIB.cuCtxSetCurrent(CTX) == 0


class Model:
    def load_weights(self):
        def shard():
            return alloc()

        return [shard() for _ in range(2)]


def main_thread():
    Model().load_weights()
    mark("phase")


def in_thread():
    def work():
        use_context()
        Model().load_weights()

    t = threading.Thread(target=work, name="loader")
    t.start()
    t.join()


async def step(n):
    await asyncio.sleep(0)
    return alloc() if n == 0 else await step(n - 1)


async def serve():
    await asyncio.gather(step(0), step(2))
    mark("served")


def with_asyncio():
    asyncio.run(serve())


def asyncio_in_thread():
    def loop():
        use_context()
        asyncio.run(serve())

    t = threading.Thread(target=loop)
    t.start()
    t.join()


def blocks(n):
    for _ in range(n):
        yield alloc()


def delegate(n):
    yield from blocks(n)


def from_generator():
    for _ in delegate(2):
        pass
    list(alloc() for _ in range(1))


def recurse(n):
    return alloc() if n == 0 else recurse(n - 1)


def deep_recursion():
    recurse(500)


def reuse():
    for k in range(24):
        src = "\n" * (k % 3) + "def f():\n" + "    y = 1\n" * (k % 5) + "    return alloc()\n"
        ns = {"alloc": alloc}
        exec(compile(src, "<generated>", "exec"), ns)
        ns["f"]()
        ns.clear()


def subinterpreters():
    alloc()
    try:
        import _interpreters as interpreters
    except ImportError:
        import _xxsubinterpreters as interpreters
    second = interpreters.create()
    alloc()
    alloc()
    interpreters.destroy(second)


def native_thread():
    worker = ctypes.CDLL(os.environ["VT_WORKER_LIB"])
    worker.worker_alloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = next(SIZES)
    print(f"NATIVE_ALLOC {size} {worker.worker_alloc(CTX, size)}", flush=True)
    alloc()


def fork():
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        next(SIZES)  # the child's sizes differ from the parent's
        Model().load_weights()
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    for _ in range(3):
        next(SIZES)  # what the child used
    alloc()


SCENARIOS = {
    "main": main_thread,
    "thread": in_thread,
    "asyncio": with_asyncio,
    "asyncio_thread": asyncio_in_thread,
    "generator": from_generator,
    "recursion": deep_recursion,
}


def main():
    global LIB
    scenario, dll = sys.argv[1], sys.argv[2]
    if dll != "builtin":
        LIB = (ctypes.CDLL if dll == "cdll" else ctypes.PyDLL)("libcuda.so.1")
        LIB.cuCtxSetCurrent.argtypes = [ctypes.c_void_p]
        assert LIB.cuInit(0) == 0
        assert LIB.cuCtxCreate_v2(ctypes.byref(CTX), 0, 0) == 0
    extra = {"reuse": reuse, "subinterpreters": subinterpreters, "native_thread": native_thread, "fork": fork}
    wanted = scenario.split(",")
    for name, run in list(SCENARIOS.items()) + list(extra.items()):
        if name in wanted or ("all" in wanted and name in SCENARIOS):
            print(f"SCENARIO {name}", flush=True)
            run()


if __name__ == "__main__":
    main()
