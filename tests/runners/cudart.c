/* Real cudart: linked against NVIDIA's libcudart.so.12 (from the nvidia-cuda-runtime-cu12 wheel),
 * it makes the runtime calls that inference programs make, then takes driver functions the way
 * PyTorch and ggml do, through cudaGetDriverEntryPointByVersion (which ends in the driver's
 * cuGetProcAddress), and calls them. Only real cudart can run it: it does not run on the fake
 * driver, which lacks the tables cudart needs.
 *   gcc -std=gnu11 -Wall -o cudart cudart.c -L<dir> -l:libcudart.so.12 -Wl,-rpath,<dir>
 * Output on stdout, one line per call, flushed per line:
 *   CUDART <runtime function> result=<cudaError_t> value=<int>   (a runtime call)
 *   CALL ...                                                     (a driver call, see README.md)
 * Exit status 0. Without a GPU every runtime call answers cudaErrorNoDevice (100), or
 * cudaErrorInsufficientDriver (35) if the driver is older than the runtime, and the driver calls
 * answer CUDA_ERROR_NOT_INITIALIZED; the program just reports what it saw. */
#include <stddef.h>

#include "sequence.h"

typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;
/* cudaDriverEntryPointQueryResult: 0 success, 1 symbol not found, 2 version not sufficient. */
typedef int cudaDriverEntryPointQueryResult;
#define cudaEnableDefault 0ull
#define cudaEnablePerThreadDefaultStream 2ull
#define cudaHostAllocPortable 1u
#define cudaMemAttachGlobal 1u

cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMalloc(void **p, size_t size);
cudaError_t cudaMallocPitch(void **p, size_t *pitch, size_t width, size_t height);
cudaError_t cudaMallocManaged(void **p, size_t size, unsigned flags);
cudaError_t cudaMallocAsync(void **p, size_t size, cudaStream_t s);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t size);
cudaError_t cudaHostAlloc(void **p, size_t size, unsigned flags);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **fn, unsigned version,
                                             unsigned long long flags,
                                             cudaDriverEntryPointQueryResult *status);

static void rt_line(const char *name, cudaError_t e, long long value) {
    printf("CUDART %s result=%d value=%lld\n", name, (int)e, value);
}

#define RT(call, value)                                                                            \
    do {                                                                                           \
        cudaError_t e_ = call;                                                                     \
        rt_line(#call, e_, (long long)(value));                                                    \
    } while (0)

/* A driver function through cudart, at the version and with the flags a program built with
 * CUDA 12.9 uses; prints the lookup as a CALL line for cuGetProcAddress_v2 would not be honest
 * (cudart may answer from its own cache), so as a CUDART line. */
static void *entry(const char *name, unsigned long long flags) {
    void *fn = NULL;
    cudaDriverEntryPointQueryResult st = -1;
    cudaError_t e = cudaGetDriverEntryPointByVersion(name, &fn, CUDA_VERSION, flags, &st);
    printf("CUDART cudaGetDriverEntryPointByVersion(%s,%llu) result=%d value=%d\n", name, flags,
           (int)e, (int)st);
    return e == 0 && st == 0 ? fn : NULL;
}

int main(void) {
    runner_stdout_setup();
    int v = 0, n = -1;
    size_t free_b = 0, total_b = 0, pitch = 0;
    void *d = NULL, *pd = NULL, *m = NULL, *a = NULL, *h = NULL, *h2 = NULL;

    RT(cudaRuntimeGetVersion(&v), v);
    RT(cudaDriverGetVersion(&v), v);
    RT(cudaGetDeviceCount(&n), n);
    RT(cudaSetDevice(0), 0);
    RT(cudaMemGetInfo(&free_b, &total_b), free_b);
    RT(cudaMalloc(&d, 64 << 20), d != NULL);
    RT(cudaMallocPitch(&pd, &pitch, 1000, 100), pitch);
    RT(cudaMallocManaged(&m, 16 << 20, cudaMemAttachGlobal), m != NULL);
    RT(cudaMallocAsync(&a, 8 << 20, NULL), a != NULL);
    RT(cudaFreeAsync(a, NULL), 0);
    RT(cudaMallocHost(&h, 1 << 20), h != NULL);
    RT(cudaHostAlloc(&h2, 1 << 20, cudaHostAllocPortable), h2 != NULL);
    RT(cudaFreeHost(h2), 0);
    RT(cudaFreeHost(h), 0);
    RT(cudaFree(m), 0);
    RT(cudaFree(pd), 0);
    RT(cudaFree(d), 0);
    RT(cudaDeviceSynchronize(), 0);
    RT(cudaGetLastError(), 0);
    printf("CUDART cudaGetErrorName(100) %s\n", cudaGetErrorName(100));

    /* The driver, reached through cudart as PyTorch's and ggml's own driver calls reach it. */
    __typeof__(&cuMemAlloc_v2) alloc = (__typeof__(alloc))entry("cuMemAlloc", cudaEnableDefault);
    __typeof__(&cuMemFree_v2) fre = (__typeof__(fre))entry("cuMemFree", cudaEnableDefault);
    __typeof__(&cuMemGetInfo_v2) info = (__typeof__(info))entry("cuMemGetInfo", cudaEnableDefault);
    __typeof__(&cuMemAllocAsync_ptsz) alloc_async =
        (__typeof__(alloc_async))entry("cuMemAllocAsync", cudaEnablePerThreadDefaultStream);
    __typeof__(&cuMemCreate) create = (__typeof__(create))entry("cuMemCreate", cudaEnableDefault);
    __typeof__(&cuMemAddressReserve) reserve =
        (__typeof__(reserve))entry("cuMemAddressReserve", cudaEnableDefault);
    (void)entry("cuNoSuchFunction", cudaEnableDefault);
    CUdeviceptr p = 0, va = 0;
    CUmemGenericAllocationHandle mh = 0;
    if (info) {
        CUresult r = info(&free_b, &total_b);
        call_line("cuMemGetInfo_v2", r, free_b, 0, 0);
    }
    if (alloc) {
        CUresult r = alloc(&p, 4 << 20);
        call_line("cuMemAlloc_v2", r, 4 << 20, p, 0);
    }
    if (fre) {
        CUresult r = fre(p);
        call_line("cuMemFree_v2", r, 0, p, 0);
    }
    if (alloc_async) {
        CUdeviceptr x = 0;
        CUresult r = alloc_async(&x, 2 << 20, NULL);
        call_line("cuMemAllocAsync_ptsz", r, 2 << 20, x, 0);
    }
    if (create) {
        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        CUresult r = create(&mh, 2 << 20, &prop, 0);
        call_line("cuMemCreate", r, 2 << 20, 0, mh);
    }
    if (reserve) {
        CUresult r = reserve(&va, 2 << 20, 0, 0, 0);
        call_line("cuMemAddressReserve", r, 2 << 20, va, 0);
    }
    RT(cudaDeviceReset(), 0);
    return 0;
}
