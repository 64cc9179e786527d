/* A minimal driver for the hostile-environment tests: `libcuda.so.1` with the handful of entry
 * points those runners use, every one lock-free, async-signal-safe and fork-safe (atomics only,
 * no allocation). The fake driver (tests/fake-cuda) keeps real bookkeeping under a mutex with no
 * fork handling, so a child forked while another thread is inside it, or a signal handler that
 * calls it while the interrupted code is inside it, would deadlock in the fake; with this one
 * any such hang is the shim's.
 *   gcc -std=gnu11 -Wall -shared -fPIC -Wl,-soname,libcuda.so.1 -o libcuda.so.1 stub_cuda.c
 * Behaviour: every call succeeds once cuInit was called (CUDA_ERROR_NOT_INITIALIZED before);
 * cuMemAlloc_v2 hands out distinct, never-reused 512-aligned addresses and fails with
 * CUDA_ERROR_INVALID_VALUE for size 0; cuMemFree_v2 fails for 0; cuMemGetInfo_v2 reports
 * 20 GiB free of 24 GiB; one device, "vramtrace stub", driver version 12090; cuGetProcAddress_v2
 * knows cuInit, cuMemAlloc, cuMemFree, cuMemGetInfo and cuCtxGetDevice by base name. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cuda_min.h"

#define STUB_TOTAL (24ull << 30)

static int initialized;
static unsigned long long next_ptr = 0x7f0000000000ull;

#define NEED_INIT                                                                                  \
    do {                                                                                           \
        if (!__atomic_load_n(&initialized, __ATOMIC_ACQUIRE)) return CUDA_ERROR_NOT_INITIALIZED;   \
    } while (0)

CUresult cuInit(unsigned int flags) {
    (void)flags;
    __atomic_store_n(&initialized, 1, __ATOMIC_RELEASE);
    return CUDA_SUCCESS;
}
CUresult cuDriverGetVersion(int *v) {
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    *v = CUDA_VERSION;
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetCount(int *n) {
    NEED_INIT;
    if (!n) return CUDA_ERROR_INVALID_VALUE;
    *n = 1;
    return CUDA_SUCCESS;
}
CUresult cuDeviceGet(CUdevice *d, int ordinal) {
    NEED_INIT;
    if (!d || ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *d = 0;
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    NEED_INIT;
    static const char n[] = "vramtrace stub";
    if (!name || len <= 0 || d != 0) return CUDA_ERROR_INVALID_VALUE;
    size_t k = (size_t)len - 1 < sizeof n - 1 ? (size_t)len - 1 : sizeof n - 1;
    memcpy(name, n, k);
    name[k] = 0;
    return CUDA_SUCCESS;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) {
    NEED_INIT;
    if (!bytes || d != 0) return CUDA_ERROR_INVALID_VALUE;
    *bytes = STUB_TOTAL;
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetUuid(unsigned char *uuid, CUdevice d) {
    NEED_INIT;
    if (!uuid || d != 0) return CUDA_ERROR_INVALID_VALUE;
    memset(uuid, 0x5a, 16);
    return CUDA_SUCCESS;
}
static struct CUctx_st { int dummy; } the_ctx;
CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice d) {
    NEED_INIT;
    if (!ctx || d != 0) return CUDA_ERROR_INVALID_VALUE;
    *ctx = &the_ctx;
    return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    NEED_INIT;
    return d == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}
CUresult cuCtxSetCurrent(CUcontext ctx) {
    NEED_INIT;
    (void)ctx;
    return CUDA_SUCCESS;
}
CUresult cuCtxGetDevice(CUdevice *d) {
    NEED_INIT;
    if (!d) return CUDA_ERROR_INVALID_VALUE;
    *d = 0;
    return CUDA_SUCCESS;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t size) {
    NEED_INIT;
    if (!p || size == 0) return CUDA_ERROR_INVALID_VALUE;
    unsigned long long step = (size + 511) & ~511ull;
    *p = __atomic_fetch_add(&next_ptr, step, __ATOMIC_RELAXED);
    return CUDA_SUCCESS;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
    NEED_INIT;
    return p ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total_b) {
    NEED_INIT;
    if (!free_b || !total_b) return CUDA_ERROR_INVALID_VALUE;
    *total_b = STUB_TOTAL;
    *free_b = STUB_TOTAL - (4ull << 30);
    return CUDA_SUCCESS;
}

/* Lookups by exact name only (no versioned resolution): enough for the tests that look functions
 * up from a signal handler. */
CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *status) {
    (void)version;
    (void)flags;
    static const struct {
        const char *name;
        void *fn;
    } table[] = {
        {"cuInit", (void *)cuInit},
        {"cuMemAlloc", (void *)cuMemAlloc_v2},
        {"cuMemFree", (void *)cuMemFree_v2},
        {"cuMemGetInfo", (void *)cuMemGetInfo_v2},
        {"cuCtxGetDevice", (void *)cuCtxGetDevice},
    };
    if (!symbol || !pfn) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(symbol, table[i].name) == 0) {
            *pfn = table[i].fn;
            if (status) *status = CU_GET_PROC_ADDRESS_SUCCESS;
            return CUDA_SUCCESS;
        }
    }
    *pfn = NULL;
    if (status) *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
}
