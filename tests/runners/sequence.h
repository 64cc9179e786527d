/* Shared by the runner programs: the `CALL` line every runner prints for each driver call, and
 * the one call sequence that linked.c, dlsym.c and cudart_replay.c run through a table of function
 * pointers (filled by linking, by dlsym, or by cuGetProcAddress respectively), so that the three
 * routes make the same calls and differ only in how they found the functions.
 *
 * Line format, one per driver call, on stdout, flushed per line:
 *   CALL <exact_driver_name> result=<int> size=<u64> ptr=0x<hex> handle=0x<hex>
 * Fields that do not apply are 0. See README.md for what each call puts in which field. */
#ifndef VRAMTRACE_RUNNER_SEQUENCE_H
#define VRAMTRACE_RUNNER_SEQUENCE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_min.h"

/* Not every runner uses every helper. */
#define RUNNER_HELPER static __attribute__((unused))

RUNNER_HELPER void call_line(const char *name, CUresult r, unsigned long long size,
                             unsigned long long ptr, unsigned long long handle) {
    printf("CALL %s result=%d size=%llu ptr=0x%llx handle=0x%llx\n", name, (int)r, size, ptr,
           handle);
}

/* Line-buffered stdout: every CALL line is out before the next driver call, even if the process
 * is then killed or aborts. */
RUNNER_HELPER void runner_stdout_setup(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

/* For programs linked with -lcuda: cuInit, then the primary context of device 0 made current.
 * Returns 0, or prints why not on stderr (prefixed with `who`) and returns 1. */
#define RUNNER_PRIMARY_CONTEXT(who)                                                                \
    runner_primary_context_(who, cuInit, cuDevicePrimaryCtxRetain, cuCtxSetCurrent)
RUNNER_HELPER int runner_primary_context_(const char *who, CUresult (*init)(unsigned int),
                                          CUresult (*retain)(CUcontext *, CUdevice),
                                          CUresult (*set_current)(CUcontext)) {
    CUcontext ctx = NULL;
    if (init(0) != CUDA_SUCCESS || retain(&ctx, 0) != CUDA_SUCCESS || set_current(ctx) != CUDA_SUCCESS) {
        fprintf(stderr, "%s: no context\n", who);
        return 1;
    }
    return 0;
}

/* Every entry point the sequence uses: table slot, and the prototype (exact symbol) that gives
 * the slot its type and, for linked/dlsym, its name. */
#define SEQ_SLOTS(X)                                                                               \
    X(Init, cuInit)                                                                                \
    X(DriverGetVersion, cuDriverGetVersion)                                                        \
    X(DeviceGetCount, cuDeviceGetCount)                                                            \
    X(DeviceGet, cuDeviceGet)                                                                      \
    X(DeviceGetName, cuDeviceGetName)                                                              \
    X(DeviceTotalMem, cuDeviceTotalMem_v2)                                                         \
    X(GetErrorString, cuGetErrorString)                                                            \
    X(DevicePrimaryCtxRetain, cuDevicePrimaryCtxRetain)                                            \
    X(DevicePrimaryCtxRelease, cuDevicePrimaryCtxRelease_v2)                                       \
    X(DevicePrimaryCtxReset, cuDevicePrimaryCtxReset_v2)                                           \
    X(DevicePrimaryCtxReleaseV1, cuDevicePrimaryCtxRelease)                                        \
    X(DevicePrimaryCtxResetV1, cuDevicePrimaryCtxReset)                                            \
    X(CtxSetCurrent, cuCtxSetCurrent)                                                              \
    X(CtxGetCurrent, cuCtxGetCurrent)                                                              \
    X(CtxPushCurrent, cuCtxPushCurrent_v2)                                                         \
    X(CtxPopCurrent, cuCtxPopCurrent_v2)                                                           \
    X(CtxGetDevice, cuCtxGetDevice)                                                                \
    X(CtxSynchronize, cuCtxSynchronize)                                                            \
    X(CtxCreate, cuCtxCreate_v2)                                                                   \
    X(CtxCreateV3, cuCtxCreate_v3)                                                                 \
    X(CtxCreateV4, cuCtxCreate_v4)                                                                 \
    X(CtxDestroy, cuCtxDestroy_v2)                                                                 \
    X(MemGetInfo, cuMemGetInfo_v2)                                                                 \
    X(MemAlloc, cuMemAlloc_v2)                                                                     \
    X(MemAllocPitch, cuMemAllocPitch_v2)                                                           \
    X(MemAllocManaged, cuMemAllocManaged)                                                          \
    X(MemFree, cuMemFree_v2)                                                                       \
    X(StreamCreate, cuStreamCreate)                                                                \
    X(StreamDestroy, cuStreamDestroy_v2)                                                           \
    X(StreamSynchronize, cuStreamSynchronize)                                                      \
    X(DeviceGetDefaultMemPool, cuDeviceGetDefaultMemPool)                                          \
    X(MemPoolCreate, cuMemPoolCreate)                                                              \
    X(MemPoolDestroy, cuMemPoolDestroy)                                                            \
    X(MemPoolTrimTo, cuMemPoolTrimTo)                                                              \
    X(MemAllocAsync, cuMemAllocAsync)                                                              \
    X(MemAllocAsyncPtsz, cuMemAllocAsync_ptsz)                                                     \
    X(MemAllocFromPoolAsync, cuMemAllocFromPoolAsync)                                              \
    X(MemAllocFromPoolAsyncPtsz, cuMemAllocFromPoolAsync_ptsz)                                     \
    X(MemFreeAsync, cuMemFreeAsync)                                                                \
    X(MemFreeAsyncPtsz, cuMemFreeAsync_ptsz)                                                       \
    X(MemGetAllocationGranularity, cuMemGetAllocationGranularity)                                  \
    X(MemAddressReserve, cuMemAddressReserve)                                                      \
    X(MemAddressFree, cuMemAddressFree)                                                            \
    X(MemCreate, cuMemCreate)                                                                      \
    X(MemRelease, cuMemRelease)                                                                    \
    X(MemMap, cuMemMap)                                                                            \
    X(MemUnmap, cuMemUnmap)                                                                        \
    X(MemSetAccess, cuMemSetAccess)                                                                \
    X(MemHostAlloc, cuMemHostAlloc)                                                                \
    X(MemAllocHost, cuMemAllocHost_v2)                                                             \
    X(MemFreeHost, cuMemFreeHost)                                                                  \
    X(MemHostRegister, cuMemHostRegister_v2)                                                       \
    X(MemHostUnregister, cuMemHostUnregister)

/* A slot's pointer (NULL: not available by this route, the sequence skips what needs it) and the
 * exact name of the function it points to. */
struct cu_api {
#define SEQ_FIELD(slot, sym)                                                                       \
    __typeof__(&sym) slot;                                                                         \
    const char *slot##_name;
    SEQ_SLOTS(SEQ_FIELD)
#undef SEQ_FIELD
};

static int seq_failures;
/* The result of the last SEQ_CALL. */
static CUresult seq_last;

/* Set once cuInit has answered CUDA_ERROR_NO_DEVICE, as NVIDIA's driver library does on a machine
 * without a GPU: from then on every call except the few that work before cuInit must answer
 * CUDA_ERROR_NOT_INITIALIZED, and the sequence checks that instead. */
static int seq_no_device;

/* The calls that work without cuInit (the rest answer CUDA_ERROR_NOT_INITIALIZED before it). */
RUNNER_HELPER int seq_works_before_init(const char *name) {
    return !strcmp(name, "cuDriverGetVersion") || !strcmp(name, "cuGetErrorString") ||
           !strcmp(name, "cuGetErrorName") || !strncmp(name, "cuGetProcAddress", 16);
}

/* Records a result that differs from what the driver must answer: `want`, or without a device
 * CUDA_ERROR_NOT_INITIALIZED. */
RUNNER_HELPER void seq_expect(const char *name, CUresult got, CUresult want) {
    if (seq_no_device && !seq_works_before_init(name)) want = CUDA_ERROR_NOT_INITIALIZED;
    if (got != want) {
        fprintf(stderr, "UNEXPECTED %s result=%d, expected %d\n", name, (int)got, (int)want);
        seq_failures++;
    }
}

#define U64(x) ((unsigned long long)(uintptr_t)(x))

/* Checks cuInit's answer: success, or no device (then see seq_no_device). */
RUNNER_HELPER void seq_init_result(const char *name, CUresult r) {
    if (r == CUDA_ERROR_NO_DEVICE) {
        seq_no_device = 1;
        fprintf(stderr, "NO_DEVICE %s answered %d: every call that needs it must answer %d\n", name,
                (int)r, (int)CUDA_ERROR_NOT_INITIALIZED);
        return;
    }
    seq_expect(name, r, CUDA_SUCCESS);
}

/* The entry points run_sequence calls unconditionally; a route that lacks one cannot run it. */
RUNNER_HELPER int seq_has_basics(const struct cu_api *a) {
    return a->Init && a->DeviceGet && a->DevicePrimaryCtxRetain && a->CtxSetCurrent &&
           a->MemGetInfo && a->MemAlloc && a->MemFree;
}

/* Calls slot `s` of api `a` with the given arguments, prints its line and checks the result.
 * `size`, `ptr` and `handle` are evaluated after the call, so they can name out-parameters. */
#define SEQ_CALL(s, want, size, ptr, handle, ...)                                                  \
    do {                                                                                           \
        CUresult r_ = seq_last = a->s(__VA_ARGS__);                                                \
        call_line(a->s##_name, r_, (unsigned long long)(size), U64(ptr), U64(handle));             \
        seq_expect(a->s##_name, r_, want);                                                         \
    } while (0)

#define MIB (1ull << 20)

/* The call sequence. Every slot that is NULL is skipped together with the calls that depend on
 * it; with all slots present it calls each of the 33 recorded functions successfully at least
 * once, plus one OOM, one cuMemGetInfo_v2 with NULL out-params and one cuMemMap with a bad
 * offset. Returns the number of results that differed from what the driver must answer. */
RUNNER_HELPER int run_sequence(const struct cu_api *a) {
    const CUresult OK = CUDA_SUCCESS;
    CUdevice dev = 0;
    int count = 0, version = 0, cur_dev = -1;
    char devname[64];
    size_t total_mem = 0, free_b = 0, total_b = 0;
    CUcontext pctx = NULL, cur = NULL;

    {
        CUresult r = a->Init(0);
        call_line(a->Init_name, r, 0, 0, 0);
        seq_init_result(a->Init_name, r);
    }
    if (a->DriverGetVersion) SEQ_CALL(DriverGetVersion, OK, version, 0, 0, &version);
    if (a->DeviceGetCount) SEQ_CALL(DeviceGetCount, OK, count, 0, 0, &count);
    SEQ_CALL(DeviceGet, OK, 0, 0, 0, &dev, 0);
    if (a->DeviceGetName) SEQ_CALL(DeviceGetName, OK, 0, 0, 0, devname, (int)sizeof devname, dev);
    if (a->DeviceTotalMem) SEQ_CALL(DeviceTotalMem, OK, total_mem, 0, 0, &total_mem, dev);

    /* The primary context, made current, as cudart does. */
    SEQ_CALL(DevicePrimaryCtxRetain, OK, 0, 0, pctx, &pctx, dev);
    SEQ_CALL(CtxSetCurrent, OK, 0, 0, pctx, pctx);
    if (a->CtxGetCurrent) SEQ_CALL(CtxGetCurrent, OK, 0, 0, cur, &cur);
    if (a->CtxGetDevice) SEQ_CALL(CtxGetDevice, OK, 0, 0, 0, &cur_dev);
    SEQ_CALL(MemGetInfo, OK, free_b, 0, 0, &free_b, &total_b);

    /* cuMemAlloc family; one allocation bigger than the device; cuMemGetInfo with NULLs. */
    CUdeviceptr p = 0, pp = 0, mp = 0, oom = 0;
    size_t pitch = 0;
    SEQ_CALL(MemAlloc, OK, 64 * MIB, p, 0, &p, 64 * MIB);
    if (a->MemAllocPitch)
        SEQ_CALL(MemAllocPitch, OK, pitch * 100, pp, 0, &pp, &pitch, 1000, 100, 4);
    if (a->MemAllocManaged)
        SEQ_CALL(MemAllocManaged, OK, 16 * MIB, mp, 0, &mp, 16 * MIB, CU_MEM_ATTACH_GLOBAL);
    SEQ_CALL(MemAlloc, CUDA_ERROR_OUT_OF_MEMORY, total_b + 1, oom, 0, &oom, total_b + 1);
    if (a->GetErrorString) {
        const char *msg = NULL;
        SEQ_CALL(GetErrorString, OK, 0, 0, 0, CUDA_ERROR_OUT_OF_MEMORY, &msg);
    }
    SEQ_CALL(MemGetInfo, CUDA_ERROR_INVALID_VALUE, 0, 0, 0, NULL, NULL);
    SEQ_CALL(MemFree, OK, 0, p, 0, p);
    if (pp) SEQ_CALL(MemFree, OK, 0, pp, 0, pp);
    if (mp) SEQ_CALL(MemFree, OK, 0, mp, 0, mp);
    SEQ_CALL(MemFree, CUDA_ERROR_INVALID_VALUE, 0, p, 0, p); /* double free */

    /* Stream-ordered allocation: the default pool retains what is freed until trimmed. */
    CUstream s = NULL;
    if (a->StreamCreate && a->StreamDestroy) {
        SEQ_CALL(StreamCreate, OK, 0, 0, s, &s, 0);
        /* A failed create may leave garbage there (NVIDIA's driver writes ~0): never use it. */
        if (seq_last != OK) s = NULL;
    }
    if (a->MemAllocAsync && a->MemFreeAsync) {
        CUdeviceptr x = 0;
        SEQ_CALL(MemAllocAsync, OK, 8 * MIB, x, 0, &x, 8 * MIB, s);
        SEQ_CALL(MemFreeAsync, OK, 0, x, 0, x, s);
    }
    if (a->MemAllocAsyncPtsz && a->MemFreeAsyncPtsz) {
        CUdeviceptr x = 0; /* stream 0 means the per-thread default stream here */
        SEQ_CALL(MemAllocAsyncPtsz, OK, 4 * MIB, x, 0, &x, 4 * MIB, NULL);
        SEQ_CALL(MemFreeAsyncPtsz, OK, 0, x, 0, x, NULL);
    }
    if (a->StreamSynchronize) SEQ_CALL(StreamSynchronize, OK, 0, 0, s, s);
    if (a->DeviceGetDefaultMemPool && a->MemPoolTrimTo) {
        CUmemoryPool dp = NULL;
        SEQ_CALL(DeviceGetDefaultMemPool, OK, 0, 0, dp, &dp, dev);
        SEQ_CALL(MemPoolTrimTo, OK, 0, 0, dp, dp, 0);
    }
    if (a->MemPoolCreate && a->MemPoolDestroy && a->MemAllocFromPoolAsync && a->MemFreeAsync) {
        CUmemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
        props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        props.location.id = dev;
        CUmemoryPool mine = NULL;
        CUdeviceptr x = 0, y = 0;
        SEQ_CALL(MemPoolCreate, OK, 0, 0, mine, &mine, &props);
        SEQ_CALL(MemAllocFromPoolAsync, OK, 2 * MIB, x, mine, &x, 2 * MIB, mine, s);
        if (a->MemAllocFromPoolAsyncPtsz && a->MemFreeAsyncPtsz) {
            SEQ_CALL(MemAllocFromPoolAsyncPtsz, OK, 2 * MIB, y, mine, &y, 2 * MIB, mine, NULL);
            SEQ_CALL(MemFreeAsyncPtsz, OK, 0, y, 0, y, NULL);
        }
        SEQ_CALL(MemFreeAsync, OK, 0, x, 0, x, s);
        if (a->MemPoolTrimTo) SEQ_CALL(MemPoolTrimTo, OK, 1 * MIB, 0, mine, mine, 1 * MIB);
        SEQ_CALL(MemPoolDestroy, OK, 0, 0, mine, mine);
    }
    if (s) SEQ_CALL(StreamDestroy, OK, 0, 0, s, s);

    /* VMM, the way ggml and PyTorch's expandable segments use it: one handle mapped twice, the
     * handle released while mapped, one unmap across several mappings, one bad map. */
    if (a->MemGetAllocationGranularity && a->MemAddressReserve && a->MemAddressFree &&
        a->MemCreate && a->MemRelease && a->MemMap && a->MemUnmap && a->MemSetAccess) {
        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = dev;
        CUmemAccessDesc acc;
        memset(&acc, 0, sizeof acc);
        acc.location = prop.location;
        acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
        size_t g = 0;
        CUdeviceptr va = 0;
        CUmemGenericAllocationHandle h = 0;
        SEQ_CALL(MemGetAllocationGranularity, OK, g, 0, 0, &g, &prop,
                 CU_MEM_ALLOC_GRANULARITY_RECOMMENDED);
        SEQ_CALL(MemAddressReserve, OK, 8 * g, va, 0, &va, 8 * g, 0, 0, 0);
        SEQ_CALL(MemCreate, OK, 4 * g, 0, h, &h, 4 * g, &prop, 0);
        SEQ_CALL(MemMap, OK, 4 * g, va, h, va, 4 * g, 0, h, 0);
        SEQ_CALL(MemMap, OK, 2 * g, va + 4 * g, h, va + 4 * g, 2 * g, 0, h, 0); /* alias */
        SEQ_CALL(MemMap, CUDA_ERROR_INVALID_VALUE, g, va + 6 * g, h, va + 6 * g, g, 4096, h, 0);
        SEQ_CALL(MemRelease, OK, 0, 0, h, h);
        SEQ_CALL(MemSetAccess, OK, 6 * g, va, 0, va, 6 * g, &acc, 1);
        SEQ_CALL(MemUnmap, OK, 6 * g, va, 0, va, 6 * g);
        SEQ_CALL(MemAddressFree, OK, 8 * g, va, 0, va, 8 * g);
    }

    /* Pinned host memory is real memory. */
    if (a->MemHostAlloc && a->MemFreeHost) {
        void *hp = NULL;
        SEQ_CALL(MemHostAlloc, OK, 1 * MIB, hp, 0, &hp, 1 * MIB, CU_MEMHOSTALLOC_PORTABLE);
        if (hp) memset(hp, 0x5a, 1 * MIB);
        SEQ_CALL(MemFreeHost, OK, 0, hp, 0, hp);
    }
    if (a->MemAllocHost && a->MemFreeHost) {
        void *hp = NULL;
        SEQ_CALL(MemAllocHost, OK, 64 << 10, hp, 0, &hp, 64 << 10);
        if (hp) memset(hp, 0x5a, 64 << 10);
        SEQ_CALL(MemFreeHost, OK, 0, hp, 0, hp);
    }
    if (a->MemHostRegister && a->MemHostUnregister) {
        void *buf = aligned_alloc(4096, 64 << 10);
        if (buf) {
            SEQ_CALL(MemHostRegister, OK, 64 << 10, buf, 0, buf, 64 << 10, 0);
            SEQ_CALL(MemHostUnregister, OK, 0, buf, 0, buf);
            free(buf);
        }
    }

    /* Created contexts become current; destroying one frees what was allocated in it (the
     * 1 MiB below is never freed explicitly, as happens at teardown in real programs). */
    if (a->CtxCreate && a->CtxDestroy) {
        CUcontext c = NULL;
        CUdeviceptr q = 0;
        SEQ_CALL(CtxCreate, OK, 0, 0, c, &c, 0, dev);
        SEQ_CALL(MemAlloc, OK, 1 * MIB, q, 0, &q, 1 * MIB);
        if (c) SEQ_CALL(CtxDestroy, OK, 0, 0, c, c);
    }
    if (a->CtxCreateV3 && a->CtxDestroy) {
        CUcontext c = NULL;
        SEQ_CALL(CtxCreateV3, OK, 0, 0, c, &c, NULL, 0, 0, dev);
        if (c) SEQ_CALL(CtxDestroy, OK, 0, 0, c, c);
    }
    if (a->CtxCreateV4 && a->CtxDestroy) {
        CUcontext c = NULL;
        SEQ_CALL(CtxCreateV4, OK, 0, 0, c, &c, NULL, 0, dev);
        if (c) SEQ_CALL(CtxDestroy, OK, 0, 0, c, c);
    }
    if (a->CtxPushCurrent && a->CtxPopCurrent) {
        SEQ_CALL(CtxPushCurrent, OK, 0, 0, pctx, pctx);
        SEQ_CALL(CtxPopCurrent, OK, 0, 0, cur, &cur);
    }
    if (a->CtxSynchronize) SEQ_CALL(CtxSynchronize, OK, 0, 0, 0);

    /* Teardown: drop the primary context, then reset the device. */
    if (a->DevicePrimaryCtxRelease) SEQ_CALL(DevicePrimaryCtxRelease, OK, 0, 0, 0, dev);
    if (a->DevicePrimaryCtxReset) {
        SEQ_CALL(DevicePrimaryCtxRetain, OK, 0, 0, pctx, &pctx, dev);
        SEQ_CALL(DevicePrimaryCtxReset, OK, 0, 0, 0, dev);
    }
    /* The pre-11.0 entry points, which cudart 12 still gets by asking at version 7000. */
    if (a->DevicePrimaryCtxReleaseV1 && a->DevicePrimaryCtxResetV1) {
        SEQ_CALL(DevicePrimaryCtxRetain, OK, 0, 0, pctx, &pctx, dev);
        SEQ_CALL(DevicePrimaryCtxReleaseV1, OK, 0, 0, 0, dev);
        SEQ_CALL(DevicePrimaryCtxRetain, OK, 0, 0, pctx, &pctx, dev);
        SEQ_CALL(DevicePrimaryCtxResetV1, OK, 0, 0, 0, dev);
    }
    return seq_failures;
}

#endif
