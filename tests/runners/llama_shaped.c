/* llama_shaped: replays llama.cpp's GPU memory pattern (model load, KV cache, compute buffers,
 * cuBLAS workspace, the growing ggml CUDA scratch pool, teardown) through the cudart-style route
 * (cuGetProcAddress_v2 lookups), with call stacks that carry llama.cpp's real function names.
 *
 * The functions below are named with the exact symbols llama.cpp/ggml have in a real build
 * (Itanium-mangled C++ names; `static` where llama.cpp's are static, so they live only in .symtab
 * like the real `_ZL...` ones). Each is a real frame: noipa/noinline, a compiler barrier after
 * every call, and built with -fno-omit-frame-pointer -fno-optimize-sibling-calls:
 *   gcc -std=gnu11 -Wall -g -O1 -fno-omit-frame-pointer -fno-optimize-sibling-calls \
 *       -o llama_shaped llama_shaped.c -ldl
 * The names and their demangled forms are listed in README.md.
 *
 * Environment (sizes accept K/M/G/T and KiB/MiB/GiB/TiB suffixes):
 *   LLAMA_WEIGHTS_BYTES (2 GiB)  LLAMA_WEIGHTS_BUFFERS (1)  LLAMA_KV_BYTES (512 MiB)
 *   LLAMA_COMPUTE_BYTES (300 MiB) LLAMA_HOST_COMPUTE_BYTES (16 MiB) LLAMA_CUBLAS_WS (4 MiB)
 *   LLAMA_TOKENS_PER_STEP (512)  LLAMA_STEPS (8)  LLAMA_POOL_BYTES_PER_TOKEN (32 KiB)
 *   LLAMA_NO_VMM=1 (legacy cudaMalloc pool)  LLAMA_OOM_AT_END=1 (final pool growth fails → abort)
 * stdout: one CALL line per driver call (sequence.h). stderr: llama.cpp's own log lines. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>

#include "frames.h"
#include "sequence.h"

#define GGML_CUDA_FILE "/llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu"

/* ---- configuration ------------------------------------------------------------------------ */

static unsigned long long env_bytes(const char *name, unsigned long long dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    int shift = -1;
    if (end == v) shift = -1;
    else if (!*end || !strcmp(end, "B")) shift = 0;
    else if (!strcmp(end, "K") || !strcmp(end, "KiB")) shift = 10;
    else if (!strcmp(end, "M") || !strcmp(end, "MiB")) shift = 20;
    else if (!strcmp(end, "G") || !strcmp(end, "GiB")) shift = 30;
    else if (!strcmp(end, "T") || !strcmp(end, "TiB")) shift = 40;
    if (shift < 0 || (shift && n > (~0ull >> shift))) {
        fprintf(stderr, "llama_shaped: ignoring %s=%s, using %llu\n", name, v, dflt);
        return dflt;
    }
    return n << shift;
}

static struct {
    unsigned long long weights, kv, compute, host_compute, cublas_ws, per_token;
    unsigned long long weight_buffers, tokens_per_step, steps;
    bool vmm, oom_at_end;
} cfg;

/* Set by ggml_cuda_init() from cuMemGetAllocationGranularity. */
static size_t vmm_granularity;

/* ---- the driver, reached the way cudart reaches it ----------------------------------------- */

typedef __typeof__(&cuGetProcAddress_v2) gpa_fn;

static struct {
    gpa_fn GetProcAddress;
    __typeof__(&cuInit) Init;
    __typeof__(&cuDeviceGetCount) DeviceGetCount;
    __typeof__(&cuDeviceGet) DeviceGet;
    __typeof__(&cuDeviceGetName) DeviceGetName;
    __typeof__(&cuDeviceTotalMem_v2) DeviceTotalMem;
    __typeof__(&cuDevicePrimaryCtxRetain) DevicePrimaryCtxRetain;
    __typeof__(&cuCtxSetCurrent) CtxSetCurrent;
    __typeof__(&cuCtxSynchronize) CtxSynchronize;
    __typeof__(&cuGetErrorString) GetErrorString;
    __typeof__(&cuMemGetInfo_v2) MemGetInfo;
    __typeof__(&cuMemAlloc_v2) MemAlloc;
    __typeof__(&cuMemFree_v2) MemFree;
    __typeof__(&cuMemHostAlloc) MemHostAlloc;
    __typeof__(&cuMemFreeHost) MemFreeHost;
    __typeof__(&cuMemGetAllocationGranularity) MemGetAllocationGranularity;
    __typeof__(&cuMemCreate) MemCreate;
    __typeof__(&cuMemAddressReserve) MemAddressReserve;
    __typeof__(&cuMemMap) MemMap;
    __typeof__(&cuMemRelease) MemRelease;
    __typeof__(&cuMemSetAccess) MemSetAccess;
    __typeof__(&cuMemUnmap) MemUnmap;
    __typeof__(&cuMemAddressFree) MemAddressFree;
} drv;

static void *lookup(const char *name, int version) {
    void *pfn = NULL;
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
    CUresult r = drv.GetProcAddress(name, &pfn, version, 0, &st);
    call_line("cuGetProcAddress_v2", r, 0, U64(pfn), 0);
    if (r != CUDA_SUCCESS || !pfn) {
        fprintf(stderr, "llama_shaped: driver lookup %s@%d failed: %d\n", name, version, (int)r);
        exit(1);
    }
    return pfn;
}

#define LOOKUP(field, name, version) drv.field = (__typeof__(drv.field))lookup(name, version)

/* cudart's start-up: dlopen the driver, take cuGetProcAddress_v2 by dlsym, probe, cuInit, switch
 * to the cuGetProcAddress it returns for 12.0, then fetch what it needs at its own versions. */
static void cudart_driver_init(void) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "llama_shaped: dlopen libcuda.so.1: %s\n", dlerror());
        exit(1);
    }
    drv.GetProcAddress = (gpa_fn)dlsym(h, "cuGetProcAddress_v2");
    if (!drv.GetProcAddress) {
        fprintf(stderr, "llama_shaped: no cuGetProcAddress_v2 in libcuda.so.1\n");
        exit(1);
    }
    void *probe = NULL;
    CUdriverProcAddressQueryResult st;
    CUresult r = drv.GetProcAddress("", &probe, 0, 0, &st);
    call_line("cuGetProcAddress_v2", r, 0, U64(probe), 0);
    LOOKUP(Init, "cuInit", 2000);
    r = drv.Init(0);
    call_line("cuInit", r, 0, 0, 0);
    if (r != CUDA_SUCCESS) exit(1);
    LOOKUP(GetProcAddress, "cuGetProcAddress", 12000);
    LOOKUP(DeviceGetCount, "cuDeviceGetCount", 2000);
    LOOKUP(DeviceGet, "cuDeviceGet", 2000);
    LOOKUP(DeviceGetName, "cuDeviceGetName", 2000);
    LOOKUP(DeviceTotalMem, "cuDeviceTotalMem", 3020);
    LOOKUP(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", 7000);
    LOOKUP(CtxSetCurrent, "cuCtxSetCurrent", 4000);
    LOOKUP(CtxSynchronize, "cuCtxSynchronize", 2000);
    LOOKUP(GetErrorString, "cuGetErrorString", 6000);
    LOOKUP(MemGetInfo, "cuMemGetInfo", 3020);
    LOOKUP(MemAlloc, "cuMemAlloc", 3020);
    LOOKUP(MemFree, "cuMemFree", 3020);
    LOOKUP(MemHostAlloc, "cuMemHostAlloc", 2020);
    LOOKUP(MemFreeHost, "cuMemFreeHost", 2000);
    if (cfg.vmm) {
        /* ggml's own driver calls for its VMM pool, at the toolkit's version. */
        LOOKUP(MemGetAllocationGranularity, "cuMemGetAllocationGranularity", CUDA_VERSION);
        LOOKUP(MemCreate, "cuMemCreate", CUDA_VERSION);
        LOOKUP(MemAddressReserve, "cuMemAddressReserve", CUDA_VERSION);
        LOOKUP(MemMap, "cuMemMap", CUDA_VERSION);
        LOOKUP(MemRelease, "cuMemRelease", CUDA_VERSION);
        LOOKUP(MemSetAccess, "cuMemSetAccess", CUDA_VERSION);
        LOOKUP(MemUnmap, "cuMemUnmap", CUDA_VERSION);
        LOOKUP(MemAddressFree, "cuMemAddressFree", CUDA_VERSION);
    }
}

/* ---- libcudart's public entry points (extern "C"; their internals are unnamed in a real
 * libcudart, so the frames between these and the driver are left out) ---------------------- */

typedef int cudaError_t; /* cudaSuccess = 0, cudaErrorMemoryAllocation = 2 */

static const char *cudaGetErrorString_(cudaError_t e) {
    return e == 0 ? "no error" : e == 2 ? "out of memory" : "unknown error";
}

/* The runtime's lazy primary-context set-up, on the first call that needs a context. */
static void cudart_lazy_context(void) {
    static bool done;
    if (done) return;
    done = true;
    CUcontext c = NULL;
    CUresult r = drv.DevicePrimaryCtxRetain(&c, 0);
    call_line("cuDevicePrimaryCtxRetain", r, 0, 0, U64(c));
    r = drv.CtxSetCurrent(c);
    call_line("cuCtxSetCurrent", r, 0, 0, U64(c));
}

FRAME cudaError_t cudaMalloc(void **ptr, size_t size) {
    cudart_lazy_context();
    CUdeviceptr p = 0;
    CUresult r = drv.MemAlloc(&p, size);
    call_line("cuMemAlloc_v2", r, size, p, 0);
    KEEP_FRAME();
    if (r != CUDA_SUCCESS) return r == CUDA_ERROR_OUT_OF_MEMORY ? 2 : 999;
    *ptr = (void *)(uintptr_t)p;
    return 0;
}

FRAME cudaError_t cudaFree(void *ptr) {
    CUresult r = drv.MemFree((CUdeviceptr)(uintptr_t)ptr);
    call_line("cuMemFree_v2", r, 0, U64(ptr), 0);
    KEEP_FRAME();
    return r == CUDA_SUCCESS ? 0 : 1;
}

FRAME cudaError_t cudaMallocHost(void **ptr, size_t size) {
    cudart_lazy_context();
    CUresult r = drv.MemHostAlloc(ptr, size, 0);
    call_line("cuMemHostAlloc", r, size, U64(*ptr), 0);
    KEEP_FRAME();
    return r == CUDA_SUCCESS ? 0 : 2;
}

FRAME cudaError_t cudaFreeHost(void *ptr) {
    CUresult r = drv.MemFreeHost(ptr);
    call_line("cuMemFreeHost", r, 0, U64(ptr), 0);
    KEEP_FRAME();
    return r == CUDA_SUCCESS ? 0 : 1;
}

FRAME cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    cudart_lazy_context();
    CUresult r = drv.MemGetInfo(free_b, total_b);
    call_line("cuMemGetInfo_v2", r, *free_b, 0, 0);
    KEEP_FRAME();
    return r == CUDA_SUCCESS ? 0 : 1;
}

FRAME cudaError_t cudaDeviceSynchronize(void) {
    CUresult r = drv.CtxSynchronize();
    call_line("cuCtxSynchronize", r, 0, 0, 0);
    KEEP_FRAME();
    return r == CUDA_SUCCESS ? 0 : 1;
}

/* cuBLAS allocates its default workspace with the handle. */
static void *cublas_workspace;

FRAME int cublasCreate_v2(void **handle) {
    cudaError_t e = cudaMalloc(&cublas_workspace, cfg.cublas_ws);
    KEEP_FRAME();
    *handle = e == 0 ? (void *)&cublas_workspace : NULL;
    return e == 0 ? 0 : 3; /* CUBLAS_STATUS_ALLOC_FAILED */
}

FRAME int cublasDestroy_v2(void *handle) {
    (void)handle;
    cudaFree(cublas_workspace);
    KEEP_FRAME();
    return 0;
}

/* ---- ggml ----------------------------------------------------------------------------------- */

struct ggml_backend_buffer_type {
    int device;
    const char *name;
};
struct ggml_backend_buffer {
    struct ggml_backend_buffer_type *buft;
    void *ptr;
    size_t size;
    bool host;
};

static struct ggml_backend_buffer_type cuda_buft = {0, "CUDA0"};
static struct ggml_backend_buffer_type cuda_host_buft = {0, "CUDA_Host"};

/* ggml.c: GGML_ABORT. ggml then tries to print a backtrace with gdb; the abort is what matters. */
FRAME void ggml_abort(const char *file, int line, const char *msg) {
    fflush(stdout);
    fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    abort();
}

/* ggml-cuda.cu: ggml_cuda_error(const char*, const char*, const char*, int, const char*). */
FRAME void _Z15ggml_cuda_errorPKcS0_S0_iS0_(const char *stmt, const char *func, const char *file,
                                             int line, const char *msg) {
    fprintf(stderr, "CUDA error: %s\n", msg);
    fprintf(stderr, "  current device: %d, in function %s at %s:%d\n", 0, func, file, line);
    fprintf(stderr, "  %s\n", stmt);
    ggml_abort(GGML_CUDA_FILE, 88, "CUDA error");
}

/* CU_CHECK: a failed driver call aborts with the driver's error string. A macro, as in ggml, so
 * that the failing function itself calls ggml_cuda_error. */
#define CU_CHECK(r, stmt, line)                                                                    \
    do {                                                                                           \
        if ((r) != CUDA_SUCCESS) {                                                                 \
            const char *msg_ = "unknown error";                                                    \
            CUresult r2_ = drv.GetErrorString((r), &msg_);                                         \
            call_line("cuGetErrorString", r2_, 0, 0, 0);                                           \
            _Z15ggml_cuda_errorPKcS0_S0_iS0_(stmt, ggml_func, GGML_CUDA_FILE, line, msg_);       \
        }                                                                                          \
    } while (0)

/* static cudaError_t ggml_cuda_device_malloc(void ** ptr, size_t size, int device) */
FRAME static cudaError_t _ZL23ggml_cuda_device_mallocPPvmi(void **ptr, size_t size, int device) {
    (void)device;
    cudaError_t e = cudaMalloc(ptr, size);
    KEEP_FRAME();
    return e;
}

/* static ggml_backend_buffer_t ggml_backend_cuda_buffer_type_alloc_buffer(buft, size) */
FRAME static struct ggml_backend_buffer *
_ZL42ggml_backend_cuda_buffer_type_alloc_bufferP24ggml_backend_buffer_typem(
    struct ggml_backend_buffer_type *buft, size_t size) {
    void *dev_ptr = NULL;
    cudaError_t err = _ZL23ggml_cuda_device_mallocPPvmi(&dev_ptr, size, buft->device);
    KEEP_FRAME();
    if (err != 0) {
        fprintf(stderr, "%s: allocating %.2f MiB on device %d: cudaMalloc failed: %s\n",
                "ggml_backend_cuda_buffer_type_alloc_buffer", size / 1024.0 / 1024.0,
                buft->device, cudaGetErrorString_(err));
        return NULL;
    }
    struct ggml_backend_buffer *b = calloc(1, sizeof *b);
    b->buft = buft;
    b->ptr = dev_ptr;
    b->size = size;
    return b;
}

/* static void * ggml_cuda_host_malloc(size_t size) */
FRAME static void *_ZL21ggml_cuda_host_mallocm(size_t size) {
    void *ptr = NULL;
    cudaError_t err = cudaMallocHost(&ptr, size);
    KEEP_FRAME();
    return err == 0 ? ptr : NULL;
}

/* static ggml_backend_buffer_t ggml_backend_cuda_host_buffer_type_alloc_buffer(buft, size) */
FRAME static struct ggml_backend_buffer *
_ZL47ggml_backend_cuda_host_buffer_type_alloc_bufferP24ggml_backend_buffer_typem(
    struct ggml_backend_buffer_type *buft, size_t size) {
    void *ptr = _ZL21ggml_cuda_host_mallocm(size);
    KEEP_FRAME();
    struct ggml_backend_buffer *b = calloc(1, sizeof *b);
    b->buft = buft;
    b->size = size;
    b->host = true;
    b->ptr = ptr ? ptr : malloc(size); /* ggml falls back to plain host memory */
    return b;
}

/* ggml-backend.cpp (extern "C") */
FRAME struct ggml_backend_buffer *ggml_backend_buft_alloc_buffer(struct ggml_backend_buffer_type *buft,
                                                                 size_t size) {
    struct ggml_backend_buffer *b =
        buft == &cuda_host_buft
            ? _ZL47ggml_backend_cuda_host_buffer_type_alloc_bufferP24ggml_backend_buffer_typem(buft, size)
            : _ZL42ggml_backend_cuda_buffer_type_alloc_bufferP24ggml_backend_buffer_typem(buft, size);
    KEEP_FRAME();
    return b;
}

/* ggml-alloc.c: static alloc_tensor_range, ggml_backend_alloc_ctx_tensors_from_buft */
FRAME static struct ggml_backend_buffer *alloc_tensor_range(struct ggml_backend_buffer_type *buft,
                                                            size_t size) {
    struct ggml_backend_buffer *b = ggml_backend_buft_alloc_buffer(buft, size);
    KEEP_FRAME();
    return b;
}

FRAME struct ggml_backend_buffer *
ggml_backend_alloc_ctx_tensors_from_buft(size_t size, struct ggml_backend_buffer_type *buft) {
    struct ggml_backend_buffer *b = alloc_tensor_range(buft, size);
    KEEP_FRAME();
    return b;
}

/* ggml-alloc.c: the graph allocator's buffers */
FRAME static struct ggml_backend_buffer *ggml_vbuffer_alloc(struct ggml_backend_buffer_type *buft,
                                                            size_t size) {
    struct ggml_backend_buffer *b = ggml_backend_buft_alloc_buffer(buft, size);
    KEEP_FRAME();
    return b;
}

struct ggml_gallocr {
    struct ggml_backend_buffer *buffers[2];
};

FRAME bool ggml_gallocr_reserve_n(struct ggml_gallocr *galloc) {
    galloc->buffers[0] = ggml_vbuffer_alloc(&cuda_buft, cfg.compute);
    KEEP_FRAME();
    if (!galloc->buffers[0]) return false;
    galloc->buffers[1] = ggml_vbuffer_alloc(&cuda_host_buft, cfg.host_compute);
    KEEP_FRAME();
    return galloc->buffers[1] != NULL;
}

FRAME bool ggml_backend_sched_reserve(struct ggml_gallocr *galloc) {
    bool ok = ggml_gallocr_reserve_n(galloc);
    KEEP_FRAME();
    return ok;
}

/* ggml_backend_buffer_free → the CUDA buffer's free_buffer → ~ggml_backend_cuda_buffer_context */
FRAME void _ZN32ggml_backend_cuda_buffer_contextD2Ev(struct ggml_backend_buffer *b) {
    cudaFree(b->ptr);
    KEEP_FRAME();
}
extern __typeof__(_ZN32ggml_backend_cuda_buffer_contextD2Ev) _ZN32ggml_backend_cuda_buffer_contextD1Ev
    __attribute__((alias("_ZN32ggml_backend_cuda_buffer_contextD2Ev")));

FRAME static void _ZL36ggml_backend_cuda_buffer_free_bufferP19ggml_backend_buffer(
    struct ggml_backend_buffer *b) {
    _ZN32ggml_backend_cuda_buffer_contextD1Ev(b);
    KEEP_FRAME();
}

FRAME static void _ZL41ggml_backend_cuda_host_buffer_free_bufferP19ggml_backend_buffer(
    struct ggml_backend_buffer *b) {
    cudaFreeHost(b->ptr);
    KEEP_FRAME();
}

FRAME void ggml_backend_buffer_free(struct ggml_backend_buffer *b) {
    if (!b) return;
    if (b->host)
        _ZL41ggml_backend_cuda_host_buffer_free_bufferP19ggml_backend_buffer(b);
    else
        _ZL36ggml_backend_cuda_buffer_free_bufferP19ggml_backend_buffer(b);
    KEEP_FRAME();
    free(b);
}

FRAME void ggml_gallocr_free(struct ggml_gallocr *galloc) {
    ggml_backend_buffer_free(galloc->buffers[0]);
    ggml_backend_buffer_free(galloc->buffers[1]);
    KEEP_FRAME();
}

FRAME void ggml_backend_sched_free(struct ggml_gallocr *galloc) {
    ggml_gallocr_free(galloc);
    KEEP_FRAME();
}

/* ---- ggml's CUDA scratch pools -------------------------------------------------------------- */

#define CUDA_POOL_VMM_MAX_SIZE (1ull << 35) /* 32 GiB */
#define MAX_BUFFERS 256

struct ggml_cuda_pool_vmm {
    CUdeviceptr pool_addr;
    size_t pool_used, pool_size, granularity;
};

struct ggml_cuda_buffer {
    void *ptr;
    size_t size;
};
struct ggml_cuda_pool_leg {
    struct ggml_cuda_buffer buffer_pool[MAX_BUFFERS];
    size_t pool_size;
};

/* ggml_cuda_pool_vmm::alloc(size_t size, size_t * actual_size): grow the mapped range at its end
 * by whole granules; never shrinks. */
FRAME void *_ZN18ggml_cuda_pool_vmm5allocEmPm(struct ggml_cuda_pool_vmm *self, size_t size,
                                               size_t *actual_size) {
    static const char ggml_func[] = "alloc";
    const size_t alignment = 128;
    size = alignment * ((size + alignment - 1) / alignment);
    size_t avail = self->pool_size - self->pool_used;
    if (size > avail) {
        size_t reserve_size = size - avail;
        const size_t g = self->granularity;
        reserve_size = g * ((reserve_size + g - 1) / g);
        if (self->pool_size + reserve_size > CUDA_POOL_VMM_MAX_SIZE)
            ggml_abort("/llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu", 441,
                       "GGML_ASSERT(pool_size + reserve_size <= CUDA_POOL_VMM_MAX_SIZE) failed");

        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = 0;
        CUmemGenericAllocationHandle handle = 0;
        CUresult r = drv.MemCreate(&handle, reserve_size, &prop, 0);
        call_line("cuMemCreate", r, reserve_size, 0, handle);
        CU_CHECK(r, "cuMemCreate(&handle, reserve_size, &prop, 0)", 447);

        if (self->pool_addr == 0) {
            r = drv.MemAddressReserve(&self->pool_addr, CUDA_POOL_VMM_MAX_SIZE, 0, 0, 0);
            call_line("cuMemAddressReserve", r, CUDA_POOL_VMM_MAX_SIZE, self->pool_addr, 0);
            CU_CHECK(r, "cuMemAddressReserve(&pool_addr, CUDA_POOL_VMM_MAX_SIZE, 0, 0, 0)", 451);
        }
        CUdeviceptr start_ptr = self->pool_addr + self->pool_size;
        r = drv.MemMap(start_ptr, reserve_size, 0, handle, 0);
        call_line("cuMemMap", r, reserve_size, start_ptr, handle);
        CU_CHECK(r, "cuMemMap(start_ptr, reserve_size, 0, handle, 0)", 456);

        r = drv.MemRelease(handle);
        call_line("cuMemRelease", r, 0, 0, handle);
        CU_CHECK(r, "cuMemRelease(handle)", 462);

        CUmemAccessDesc access;
        memset(&access, 0, sizeof access);
        access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        access.location.id = 0;
        access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
        r = drv.MemSetAccess(start_ptr, reserve_size, &access, 1);
        call_line("cuMemSetAccess", r, reserve_size, start_ptr, 0);
        CU_CHECK(r, "cuMemSetAccess(start_ptr, reserve_size, &access, 1)", 497);

        self->pool_size += reserve_size;
    }
    void *ptr = (void *)(uintptr_t)(self->pool_addr + self->pool_used);
    *actual_size = size;
    self->pool_used += size;
    KEEP_FRAME();
    return ptr;
}

/* ggml_cuda_pool_vmm::free(void*, size_t): LIFO. */
FRAME void _ZN18ggml_cuda_pool_vmm4freeEPvm(struct ggml_cuda_pool_vmm *self, void *ptr,
                                             size_t size) {
    self->pool_used -= size;
    if ((uintptr_t)ptr != self->pool_addr + self->pool_used)
        ggml_abort("/llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu", 529,
                   "GGML_ASSERT(ptr == (void *) ((char *)(pool_addr) + pool_used)) failed");
    KEEP_FRAME();
}

/* ~ggml_cuda_pool_vmm: one unmap of everything mapped, one address free. */
FRAME void _ZN18ggml_cuda_pool_vmmD2Ev(struct ggml_cuda_pool_vmm *self) {
    static const char ggml_func[] = "~ggml_cuda_pool_vmm";
    if (self->pool_addr != 0) {
        CUresult r = drv.MemUnmap(self->pool_addr, self->pool_size);
        call_line("cuMemUnmap", r, self->pool_size, self->pool_addr, 0);
        CU_CHECK(r, "cuMemUnmap(pool_addr, pool_size)", 418);
        r = drv.MemAddressFree(self->pool_addr, CUDA_POOL_VMM_MAX_SIZE);
        call_line("cuMemAddressFree", r, CUDA_POOL_VMM_MAX_SIZE, self->pool_addr, 0);
        CU_CHECK(r, "cuMemAddressFree(pool_addr, CUDA_POOL_VMM_MAX_SIZE)", 419);
    }
    KEEP_FRAME();
}
extern __typeof__(_ZN18ggml_cuda_pool_vmmD2Ev) _ZN18ggml_cuda_pool_vmmD1Ev
    __attribute__((alias("_ZN18ggml_cuda_pool_vmmD2Ev")));

/* ggml_cuda_pool_leg::clear_pool(): cudaFree every cached buffer. */
FRAME void _ZN18ggml_cuda_pool_leg10clear_poolEv(struct ggml_cuda_pool_leg *self) {
    for (int i = 0; i < MAX_BUFFERS; ++i) {
        struct ggml_cuda_buffer *b = &self->buffer_pool[i];
        if (b->ptr != NULL) {
            cudaFree(b->ptr);
            self->pool_size -= b->size;
            b->ptr = NULL;
            b->size = 0;
        }
    }
    KEEP_FRAME();
}

/* ggml_cuda_pool_leg::alloc(size_t, size_t*): best fit among cached buffers, else cudaMalloc
 * 5% more; on OOM flush the cache once and retry; then CUDA_CHECK aborts. */
FRAME void *_ZN18ggml_cuda_pool_leg5allocEmPm(struct ggml_cuda_pool_leg *self, size_t size,
                                               size_t *actual_size) {
    size_t best_diff = 1ull << 36;
    int ibest = -1;
    for (int i = 0; i < MAX_BUFFERS; ++i) {
        struct ggml_cuda_buffer *b = &self->buffer_pool[i];
        if (b->ptr != NULL && b->size >= size && b->size - size < best_diff) {
            best_diff = b->size - size;
            ibest = i;
        }
    }
    if (ibest >= 0) {
        struct ggml_cuda_buffer *b = &self->buffer_pool[ibest];
        void *ptr = b->ptr;
        *actual_size = b->size;
        b->ptr = NULL;
        b->size = 0;
        return ptr;
    }
    void *ptr = NULL;
    size_t look_ahead_size = (size_t)(1.05 * size);
    look_ahead_size = 256 * ((look_ahead_size + 255) / 256);
    cudaError_t err = _ZL23ggml_cuda_device_mallocPPvmi(&ptr, look_ahead_size, 0);
    KEEP_FRAME();
    if (err == 2) {
        cudaDeviceSynchronize();
        _ZN18ggml_cuda_pool_leg10clear_poolEv(self);
        err = _ZL23ggml_cuda_device_mallocPPvmi(&ptr, look_ahead_size, 0);
        KEEP_FRAME();
    }
    if (err != 0)
        _Z15ggml_cuda_errorPKcS0_S0_iS0_("err", "alloc", GGML_CUDA_FILE, 380,
                                         cudaGetErrorString_(err));
    *actual_size = look_ahead_size;
    self->pool_size += look_ahead_size;
    return ptr;
}

/* ggml_cuda_pool_leg::free(void*, size_t): back into the cache (cudaFree only when full). */
FRAME void _ZN18ggml_cuda_pool_leg4freeEPvm(struct ggml_cuda_pool_leg *self, void *ptr,
                                             size_t size) {
    for (int i = 0; i < MAX_BUFFERS; ++i) {
        struct ggml_cuda_buffer *b = &self->buffer_pool[i];
        if (b->ptr == NULL) {
            b->ptr = ptr;
            b->size = size;
            return;
        }
    }
    cudaFree(ptr);
    KEEP_FRAME();
    self->pool_size -= size;
}

FRAME void _ZN18ggml_cuda_pool_legD2Ev(struct ggml_cuda_pool_leg *self) {
    _ZN18ggml_cuda_pool_leg10clear_poolEv(self);
    KEEP_FRAME();
}
extern __typeof__(_ZN18ggml_cuda_pool_legD2Ev) _ZN18ggml_cuda_pool_legD1Ev
    __attribute__((alias("_ZN18ggml_cuda_pool_legD2Ev")));

/* ggml_backend_cuda_context: one pool (VMM or legacy) and one cuBLAS handle for device 0. */
struct ggml_backend_cuda_context {
    struct ggml_cuda_pool_vmm vmm;
    struct ggml_cuda_pool_leg *leg;
    void *cublas;
};

/* ggml_cuda_pool_alloc<half>::alloc(size_t n): n halves from the context's pool. */
struct ggml_cuda_pool_alloc_half {
    struct ggml_backend_cuda_context *ctx;
    void *ptr;
    size_t actual_size;
};

FRAME void *_ZN20ggml_cuda_pool_allocI6__halfE5allocEm(struct ggml_cuda_pool_alloc_half *self,
                                                       size_t n) {
    if (cfg.vmm)
        self->ptr = _ZN18ggml_cuda_pool_vmm5allocEmPm(&self->ctx->vmm, n * 2, &self->actual_size);
    else
        self->ptr = _ZN18ggml_cuda_pool_leg5allocEmPm(self->ctx->leg, n * 2, &self->actual_size);
    KEEP_FRAME();
    return self->ptr;
}

static void pool_alloc_release(struct ggml_cuda_pool_alloc_half *a) {
    if (!a->ptr) return;
    if (cfg.vmm)
        _ZN18ggml_cuda_pool_vmm4freeEPvm(&a->ctx->vmm, a->ptr, a->actual_size);
    else
        _ZN18ggml_cuda_pool_leg4freeEPvm(a->ctx->leg, a->ptr, a->actual_size);
    a->ptr = NULL;
}

/* ggml_backend_cuda_context::cublas_handle(int): created on first use. */
FRAME void *_ZN25ggml_backend_cuda_context13cublas_handleEi(struct ggml_backend_cuda_context *self,
                                                            int device) {
    (void)device;
    if (!self->cublas && cublasCreate_v2(&self->cublas) != 0)
        ggml_abort(GGML_CUDA_FILE, 1290, "cuBLAS error");
    KEEP_FRAME();
    return self->cublas;
}

/* ~ggml_backend_cuda_context: cuBLAS handles first, then (members) the pools. */
FRAME void _ZN25ggml_backend_cuda_contextD2Ev(struct ggml_backend_cuda_context *self) {
    if (self->cublas) cublasDestroy_v2(self->cublas);
    if (cfg.vmm) {
        _ZN18ggml_cuda_pool_vmmD1Ev(&self->vmm);
    } else {
        _ZN18ggml_cuda_pool_legD1Ev(self->leg);
        free(self->leg);
    }
    KEEP_FRAME();
}
extern __typeof__(_ZN25ggml_backend_cuda_contextD2Ev) _ZN25ggml_backend_cuda_contextD1Ev
    __attribute__((alias("_ZN25ggml_backend_cuda_contextD2Ev")));

/* One decode's cuBLAS mat-mul: src1 converted to F16 in pool memory sized by the context. */
struct ggml_tensor {
    size_t pool_bytes;
};

/* static void ggml_cuda_op_mul_mat_cublas(ctx, src0, src1, dst, src0_dd_i, src1_ddf_i,
 *     src1_ddq_i, dst_dd_i, row_low, row_high, src1_ncols, src1_padded_row_size, stream) */
FRAME static void
_ZL27ggml_cuda_op_mul_mat_cublasR25ggml_backend_cuda_contextPK11ggml_tensorS3_PS1_PKcPKfS6_PfllllP11CUstream_st(
    struct ggml_backend_cuda_context *ctx, const struct ggml_tensor *src0,
    const struct ggml_tensor *src1, struct ggml_tensor *dst, const char *src0_dd_i,
    const float *src1_ddf_i, const char *src1_ddq_i, float *dst_dd_i, int64_t row_low,
    int64_t row_high, int64_t src1_ncols, int64_t src1_padded_row_size, CUstream stream) {
    (void)src0, (void)src1_ddf_i, (void)src0_dd_i, (void)src1_ddq_i, (void)dst_dd_i;
    (void)row_low, (void)row_high, (void)src1_ncols, (void)src1_padded_row_size, (void)stream;
    struct ggml_cuda_pool_alloc_half src1_as_f16 = {ctx, NULL, 0};
    _ZN20ggml_cuda_pool_allocI6__halfE5allocEm(&src1_as_f16, src1->pool_bytes / 2);
    KEEP_FRAME();
    _ZN25ggml_backend_cuda_context13cublas_handleEi(ctx, 0);
    KEEP_FRAME();
    dst->pool_bytes = src1_as_f16.actual_size;
    pool_alloc_release(&src1_as_f16);
}

/* static void ggml_cuda_mul_mat(ctx, src0, src1, dst) */
FRAME static void _ZL17ggml_cuda_mul_matR25ggml_backend_cuda_contextPK11ggml_tensorS3_PS1_(
    struct ggml_backend_cuda_context *ctx, const struct ggml_tensor *src0,
    const struct ggml_tensor *src1, struct ggml_tensor *dst) {
    _ZL27ggml_cuda_op_mul_mat_cublasR25ggml_backend_cuda_contextPK11ggml_tensorS3_PS1_PKcPKfS6_PfllllP11CUstream_st(
        ctx, src0, src1, dst, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL);
    KEEP_FRAME();
}

/* static bool ggml_cuda_compute_forward(ggml_backend_cuda_context & ctx, ggml_tensor * dst) */
FRAME static bool _ZL25ggml_cuda_compute_forwardR25ggml_backend_cuda_contextP11ggml_tensor(
    struct ggml_backend_cuda_context *ctx, struct ggml_tensor *dst) {
    struct ggml_tensor src0 = {0};
    _ZL17ggml_cuda_mul_matR25ggml_backend_cuda_contextPK11ggml_tensorS3_PS1_(ctx, &src0, dst, dst);
    KEEP_FRAME();
    return true;
}

struct ggml_backend {
    struct ggml_backend_cuda_context *context;
};

/* static ggml_status ggml_backend_cuda_graph_compute(ggml_backend_t, ggml_cgraph *) */
FRAME static int _ZL31ggml_backend_cuda_graph_computeP12ggml_backendP11ggml_cgraph(
    struct ggml_backend *backend, struct ggml_tensor *graph) {
    _ZL25ggml_cuda_compute_forwardR25ggml_backend_cuda_contextP11ggml_tensor(backend->context, graph);
    KEEP_FRAME();
    return 0;
}

FRAME int ggml_backend_graph_compute_async(struct ggml_backend *backend, struct ggml_tensor *graph) {
    int s = _ZL31ggml_backend_cuda_graph_computeP12ggml_backendP11ggml_cgraph(backend, graph);
    KEEP_FRAME();
    return s;
}

FRAME static int ggml_backend_sched_compute_splits(struct ggml_backend *backend,
                                                   struct ggml_tensor *graph) {
    int s = ggml_backend_graph_compute_async(backend, graph);
    KEEP_FRAME();
    return s;
}

FRAME int ggml_backend_sched_graph_compute_async(struct ggml_backend *backend,
                                                 struct ggml_tensor *graph) {
    int s = ggml_backend_sched_compute_splits(backend, graph);
    KEEP_FRAME();
    return s;
}

/* static void ggml_backend_cuda_free(ggml_backend_t backend) */
FRAME static void _ZL22ggml_backend_cuda_freeP12ggml_backend(struct ggml_backend *backend) {
    _ZN25ggml_backend_cuda_contextD1Ev(backend->context);
    KEEP_FRAME();
    free(backend->context);
}

FRAME void ggml_backend_free(struct ggml_backend *backend) {
    _ZL22ggml_backend_cuda_freeP12ggml_backend(backend);
    KEEP_FRAME();
    free(backend);
}

/* static ggml_cuda_device_info ggml_cuda_init(): device discovery as ggml logs it. */
FRAME static void _ZL14ggml_cuda_initv(void) {
    static const char ggml_func[] = "ggml_cuda_init";
    int count = 0;
    CUresult r = drv.DeviceGetCount(&count);
    call_line("cuDeviceGetCount", r, (unsigned long long)count, 0, 0);
    CUdevice dev = 0;
    r = drv.DeviceGet(&dev, 0);
    call_line("cuDeviceGet", r, 0, 0, 0);
    char name[256] = "";
    r = drv.DeviceGetName(name, sizeof name, dev);
    call_line("cuDeviceGetName", r, 0, 0, 0);
    size_t total = 0;
    r = drv.DeviceTotalMem(&total, dev);
    call_line("cuDeviceTotalMem_v2", r, total, 0, 0);
    if (cfg.vmm) {
        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = dev;
        size_t g = 0;
        r = drv.MemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED);
        call_line("cuMemGetAllocationGranularity", r, g, 0, 0);
        CU_CHECK(r, "cuMemGetAllocationGranularity(&info.devices[id].vmm_granularity, &alloc_prop, "
                    "CU_MEM_ALLOC_GRANULARITY_RECOMMENDED)", 254);
        vmm_granularity = g;
    }
    fprintf(stderr, "ggml_cuda_init: found %d CUDA devices (Total VRAM: %zu MiB):\n", count,
            total / (1024 * 1024));
    fprintf(stderr, "  Device 0: %s, compute capability 9.0, VMM: %s, VRAM: %zu MiB\n", name,
            cfg.vmm ? "yes" : "no", total / (1024 * 1024));
}

/* ---- llama.cpp ------------------------------------------------------------------------------ */

#define N_LAYER 32

struct llama_model_loader {
    const char *fname;
};
struct llama_model {
    struct ggml_backend_buffer *bufs[64];
    int n_bufs;
};
struct llama_kv_cache {
    struct ggml_backend_buffer *buf;
};
struct llama_context {
    const struct llama_model *model;
    struct llama_kv_cache *memory;
    struct ggml_gallocr sched;
    struct ggml_backend *backend;
    uint32_t n_ctx;
};
struct llama_batch {
    uint64_t n_tokens; /* new tokens in this batch */
    uint64_t n_past;   /* tokens already in the context */
};

static double mib(size_t n) { return n / 1024.0 / 1024.0; }

/* bool llama_model::load_tensors(llama_model_loader & ml) */
FRAME bool _ZN11llama_model12load_tensorsER18llama_model_loader(struct llama_model *model,
                                                                struct llama_model_loader *ml) {
    (void)ml;
    fprintf(stderr, "load_tensors: offloading %d repeating layers to GPU\n", N_LAYER);
    fprintf(stderr, "load_tensors: offloaded %d/%d layers to GPU\n", N_LAYER + 1, N_LAYER + 1);
    unsigned long long n = cfg.weight_buffers, left = cfg.weights;
    for (unsigned long long i = 0; i < n; i++) {
        size_t size = (size_t)(i + 1 == n ? left : cfg.weights / n);
        left -= size;
        struct ggml_backend_buffer *buf = ggml_backend_alloc_ctx_tensors_from_buft(size, &cuda_buft);
        KEEP_FRAME();
        if (!buf) {
            fprintf(stderr, "llama_model_load: error loading model: unable to allocate %s buffer\n",
                    cuda_buft.name);
            return false;
        }
        model->bufs[model->n_bufs++] = buf;
    }
    for (int i = 0; i < model->n_bufs; i++)
        fprintf(stderr, "%s: %12s model buffer size = %8.2f MiB\n", "load_tensors",
                model->bufs[i]->buft->name, mib(model->bufs[i]->size));
    return true;
}

/* static int llama_model_load(const std::string & fname, std::vector<std::string> & splits,
 *                             llama_model & model, llama_model_params & params) */
FRAME static int
_ZL16llama_model_loadRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEERSt6vectorIS4_SaIS4_EER11llama_modelR18llama_model_params(
    const char *fname, void *splits, struct llama_model *model, void *params) {
    (void)splits, (void)params;
    struct llama_model_loader ml = {fname};
    bool ok = _ZN11llama_model12load_tensorsER18llama_model_loader(model, &ml);
    KEEP_FRAME();
    return ok ? 0 : -1;
}

FRAME struct llama_model *llama_model_load_from_file(const char *path_model) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    KEEP_FRAME();
    fprintf(stderr, "llama_model_load_from_file_impl: using device CUDA0 (Fake CUDA Device) "
                    "(0000:01:00.0) - %zu MiB free\n", free_b / 1024 / 1024);
    struct llama_model *model = calloc(1, sizeof *model);
    int status =
        _ZL16llama_model_loadRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEERSt6vectorIS4_SaIS4_EER11llama_modelR18llama_model_params(
            path_model, NULL, model, NULL);
    KEEP_FRAME();
    if (status < 0) {
        fprintf(stderr, "llama_model_load_from_file_impl: failed to load model\n");
        free(model);
        return NULL;
    }
    return model;
}

/* llama_model::~llama_model(): the weights go back. */
FRAME void _ZN11llama_modelD2Ev(struct llama_model *model) {
    for (int i = 0; i < model->n_bufs; i++) ggml_backend_buffer_free(model->bufs[i]);
    KEEP_FRAME();
}

FRAME void llama_model_free(struct llama_model *model) {
    _ZN11llama_modelD2Ev(model);
    KEEP_FRAME();
    free(model);
}

/* llama_kv_cache::llama_kv_cache(const llama_model &, ggml_type type_k, ggml_type type_v,
 *     bool v_trans, bool offload, bool unified, uint32_t kv_size, uint32_t n_seq_max,
 *     uint32_t n_pad, uint32_t n_swa, llama_swa_type, const layer_filter_cb &,
 *     const layer_reuse_cb &): one buffer for all layers, then cleared. */
FRAME int
_ZN14llama_kv_cacheC2ERK11llama_model9ggml_typeS3_bbbjjjj14llama_swa_typeRKSt8functionIFbiEERKS5_IFiiEE(
    struct llama_kv_cache *self, const struct llama_model *model, int type_k, int type_v,
    bool v_trans, bool offload, bool unified, uint32_t kv_size, uint32_t n_seq_max, uint32_t n_pad,
    uint32_t n_swa, int swa_type, const void *filter, const void *reuse) {
    (void)model, (void)type_k, (void)type_v, (void)v_trans, (void)offload, (void)unified;
    (void)n_pad, (void)n_swa, (void)swa_type, (void)filter, (void)reuse;
    self->buf = ggml_backend_alloc_ctx_tensors_from_buft((size_t)cfg.kv, &cuda_buft);
    KEEP_FRAME();
    if (!self->buf) return -1; /* throws "failed to allocate buffer for kv cache" */
    fprintf(stderr, "%s: %10s KV buffer size = %8.2f MiB\n", "llama_kv_cache", cuda_buft.name,
            mib(self->buf->size));
    fprintf(stderr,
            "%s: size = %7.2f MiB (%6u cells, %3d layers, %2u/%u seqs), K (%s): %7.2f MiB, V "
            "(%s): %7.2f MiB\n",
            "llama_kv_cache", mib(self->buf->size), kv_size, N_LAYER, n_seq_max, n_seq_max, "f16",
            mib(self->buf->size) / 2, "f16", mib(self->buf->size) / 2);
    return 0;
}
extern __typeof__(
    _ZN14llama_kv_cacheC2ERK11llama_model9ggml_typeS3_bbbjjjj14llama_swa_typeRKSt8functionIFbiEERKS5_IFiiEE)
    _ZN14llama_kv_cacheC1ERK11llama_model9ggml_typeS3_bbbjjjj14llama_swa_typeRKSt8functionIFbiEERKS5_IFiiEE
    __attribute__((alias(
        "_ZN14llama_kv_cacheC2ERK11llama_model9ggml_typeS3_bbbjjjj14llama_swa_typeRKSt8functionIFbiEERKS5_IFiiEE")));

FRAME void _ZN14llama_kv_cacheD2Ev(struct llama_kv_cache *self) {
    ggml_backend_buffer_free(self->buf);
    KEEP_FRAME();
}

/* llama_memory_i * llama_model::create_memory(const llama_memory_params &,
 *                                             const llama_cparams &) const */
FRAME struct llama_kv_cache *
_ZNK11llama_model13create_memoryERK19llama_memory_paramsRK13llama_cparams(
    const struct llama_model *model, const void *params, const struct llama_context *cparams) {
    (void)params;
    struct llama_kv_cache *kv = calloc(1, sizeof *kv);
    int r = _ZN14llama_kv_cacheC1ERK11llama_model9ggml_typeS3_bbbjjjj14llama_swa_typeRKSt8functionIFbiEERKS5_IFiiEE(
        kv, model, 1, 1, true, true, true, cparams->n_ctx, 1, 1, 0, 0, NULL, NULL);
    KEEP_FRAME();
    if (r != 0) {
        free(kv);
        return NULL;
    }
    return kv;
}

/* ggml_cgraph * llama_context::graph_reserve(uint32_t n_tokens, uint32_t n_seqs,
 *     uint32_t n_outputs, const llama_memory_context_i * mctx, bool split_only) */
FRAME void *_ZN13llama_context13graph_reserveEjjjPK22llama_memory_context_ib(
    struct llama_context *self, uint32_t n_tokens, uint32_t n_seqs, uint32_t n_outputs,
    const void *mctx, bool split_only) {
    (void)n_tokens, (void)n_seqs, (void)n_outputs, (void)mctx, (void)split_only;
    bool ok = ggml_backend_sched_reserve(&self->sched);
    KEEP_FRAME();
    if (!ok) {
        fprintf(stderr, "graph_reserve: failed to allocate compute buffers\n");
        return NULL;
    }
    return &self->sched;
}

/* llama_context::llama_context(const llama_model & model, llama_context_params params) */
FRAME int _ZN13llama_contextC2ERK11llama_model20llama_context_params(struct llama_context *self,
                                                                     const struct llama_model *model,
                                                                     uint32_t n_ctx) {
    self->model = model;
    self->n_ctx = n_ctx;
    fprintf(stderr, "llama_context: constructing llama_context\n");
    fprintf(stderr, "llama_context: n_seq_max     = 1\n");
    fprintf(stderr, "llama_context: n_ctx         = %u\n", n_ctx);
    fprintf(stderr, "llama_context: n_batch       = %llu\n", cfg.tokens_per_step);
    fprintf(stderr, "llama_context: n_ubatch      = %llu\n", cfg.tokens_per_step);
    fprintf(stderr, "llama_context: flash_attn    = disabled\n");

    self->backend = calloc(1, sizeof *self->backend);
    self->backend->context = calloc(1, sizeof *self->backend->context);
    self->backend->context->vmm.granularity = vmm_granularity;
    if (!cfg.vmm) self->backend->context->leg = calloc(1, sizeof *self->backend->context->leg);

    self->memory = _ZNK11llama_model13create_memoryERK19llama_memory_paramsRK13llama_cparams(
        model, NULL, self);
    KEEP_FRAME();
    if (!self->memory) return -1;

    void *gf = _ZN13llama_context13graph_reserveEjjjPK22llama_memory_context_ib(
        self, (uint32_t)cfg.tokens_per_step, 1, (uint32_t)cfg.tokens_per_step, NULL, false);
    KEEP_FRAME();
    if (!gf) return -1;
    fprintf(stderr, "%s: %10s compute buffer size = %8.2f MiB\n", "llama_context",
            self->sched.buffers[0]->buft->name, mib(self->sched.buffers[0]->size));
    fprintf(stderr, "%s: %10s compute buffer size = %8.2f MiB\n", "llama_context",
            self->sched.buffers[1]->buft->name, mib(self->sched.buffers[1]->size));
    return 0;
}
extern __typeof__(_ZN13llama_contextC2ERK11llama_model20llama_context_params)
    _ZN13llama_contextC1ERK11llama_model20llama_context_params
    __attribute__((alias("_ZN13llama_contextC2ERK11llama_model20llama_context_params")));

/* llama_context::~llama_context(): compute buffers, KV cache, then the backend (pools, cuBLAS). */
FRAME void _ZN13llama_contextD2Ev(struct llama_context *self) {
    ggml_backend_sched_free(&self->sched);
    if (self->memory) {
        _ZN14llama_kv_cacheD2Ev(self->memory);
        free(self->memory);
    }
    ggml_backend_free(self->backend);
    KEEP_FRAME();
}
extern __typeof__(_ZN13llama_contextD2Ev) _ZN13llama_contextD1Ev
    __attribute__((alias("_ZN13llama_contextD2Ev")));

FRAME struct llama_context *llama_init_from_model(struct llama_model *model, uint32_t n_ctx) {
    struct llama_context *ctx = calloc(1, sizeof *ctx);
    int r = _ZN13llama_contextC1ERK11llama_model20llama_context_params(ctx, model, n_ctx);
    KEEP_FRAME();
    if (r != 0) {
        fprintf(stderr, "llama_init_from_model: failed to initialize the context\n");
        _ZN13llama_contextD1Ev(ctx);
        free(ctx);
        return NULL;
    }
    return ctx;
}

FRAME void llama_free(struct llama_context *ctx) {
    _ZN13llama_contextD1Ev(ctx);
    KEEP_FRAME();
    free(ctx);
}

/* ggml_status llama_context::graph_compute(ggml_cgraph * gf, bool batched) */
FRAME int _ZN13llama_context13graph_computeEP11ggml_cgraphb(struct llama_context *self,
                                                            struct ggml_tensor *gf, bool batched) {
    (void)batched;
    int s = ggml_backend_sched_graph_compute_async(self->backend, gf);
    KEEP_FRAME();
    return s;
}

/* llm_graph_result * llama_context::process_ubatch(const llama_ubatch &, llm_graph_type,
 *     llama_memory_context_i *, ggml_status & ret) */
FRAME void *
_ZN13llama_context14process_ubatchERK12llama_ubatch14llm_graph_typeP22llama_memory_context_iR11ggml_status(
    struct llama_context *self, const struct llama_batch *ubatch, int gtype, void *mctx,
    int *ret) {
    (void)gtype, (void)mctx;
    /* The scratch this graph needs grows with the context: bytes_per_token × tokens. */
    struct ggml_tensor gf = {(size_t)((ubatch->n_past + ubatch->n_tokens) * cfg.per_token)};
    *ret = _ZN13llama_context13graph_computeEP11ggml_cgraphb(self, &gf, false);
    KEEP_FRAME();
    return self;
}

/* int llama_context::decode(const llama_batch & batch_inp) */
FRAME int _ZN13llama_context6decodeERK11llama_batch(struct llama_context *self,
                                                    const struct llama_batch *batch) {
    int ret = 0;
    _ZN13llama_context14process_ubatchERK12llama_ubatch14llm_graph_typeP22llama_memory_context_iR11ggml_status(
        self, batch, 0, NULL, &ret);
    KEEP_FRAME();
    return ret;
}

FRAME int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch) {
    int r = _ZN13llama_context6decodeERK11llama_batch(ctx, &batch);
    KEEP_FRAME();
    return r;
}

/* ---- main ----------------------------------------------------------------------------------- */

typedef void (*vramtrace_mark_fn)(const char *label, int64_t value);

/* The profiler's marker API, when the shim is loaded; silently nothing otherwise. */
static void mark_tokens(int64_t n) {
    static vramtrace_mark_fn mark;
    static bool looked;
    if (!looked) {
        looked = true;
        mark = (vramtrace_mark_fn)dlsym(RTLD_DEFAULT, "vramtrace_mark");
    }
    if (mark) mark("tokens", n);
}

int main(void) {
    runner_stdout_setup();
    cfg.weights = env_bytes("LLAMA_WEIGHTS_BYTES", 2ull << 30);
    cfg.weight_buffers = env_bytes("LLAMA_WEIGHTS_BUFFERS", 1);
    cfg.kv = env_bytes("LLAMA_KV_BYTES", 512ull << 20);
    cfg.compute = env_bytes("LLAMA_COMPUTE_BYTES", 300ull << 20);
    cfg.host_compute = env_bytes("LLAMA_HOST_COMPUTE_BYTES", 16ull << 20);
    cfg.cublas_ws = env_bytes("LLAMA_CUBLAS_WS", 4ull << 20);
    cfg.tokens_per_step = env_bytes("LLAMA_TOKENS_PER_STEP", 512);
    cfg.steps = env_bytes("LLAMA_STEPS", 8);
    cfg.per_token = env_bytes("LLAMA_POOL_BYTES_PER_TOKEN", 32ull << 10);
    const char *novmm = getenv("LLAMA_NO_VMM");
    const char *oom = getenv("LLAMA_OOM_AT_END");
    cfg.vmm = !(novmm && *novmm && strcmp(novmm, "0") != 0);
    cfg.oom_at_end = oom && *oom && strcmp(oom, "0") != 0;
    if (cfg.weight_buffers < 1 || cfg.weight_buffers > 64) cfg.weight_buffers = 1;
    if (cfg.tokens_per_step < 1) cfg.tokens_per_step = 1;
    if (cfg.per_token < 1) cfg.per_token = 1;

    cudart_driver_init();
    _ZL14ggml_cuda_initv();

    struct llama_model *model = llama_model_load_from_file("model.gguf");
    if (!model) return 1;
    uint32_t n_ctx = (uint32_t)(cfg.tokens_per_step * (cfg.steps ? cfg.steps : 1));
    struct llama_context *ctx = llama_init_from_model(model, n_ctx);
    if (!ctx) {
        llama_model_free(model);
        return 1;
    }

    /* Prompt processing in steps: the context grows, and with it the scratch pool. */
    uint64_t n_past = 0;
    for (unsigned long long k = 0; k < cfg.steps; k++) {
        struct llama_batch batch = {cfg.tokens_per_step, n_past};
        mark_tokens((int64_t)(n_past + batch.n_tokens));
        if (llama_decode(ctx, batch) != 0) {
            fprintf(stderr, "main: llama_decode failed\n");
            return 1;
        }
        n_past += batch.n_tokens;
    }

    if (cfg.oom_at_end) {
        /* One more batch whose scratch needs more than the device has left, pool included. */
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        size_t pool_held = cfg.vmm ? ctx->backend->context->vmm.pool_size
                                   : ctx->backend->context->leg->pool_size;
        unsigned long long need = free_b + pool_held + (4ull << 20);
        uint64_t n_total = (need + cfg.per_token - 1) / cfg.per_token;
        struct llama_batch batch = {n_total - n_past, n_past};
        mark_tokens((int64_t)n_total);
        llama_decode(ctx, batch); /* aborts inside ggml */
        fprintf(stderr, "llama_shaped: expected the final batch to run out of memory\n");
        return 1;
    }

    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
