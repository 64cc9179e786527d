/* A native worker for the Python tests: worker_alloc(ctx, size) allocates from a new pthread,
 * one Python never saw (it has no Python thread state), joins it and returns the CUresult.
 * Load it with ctypes after the driver (it looks the driver up among loaded objects). */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

typedef unsigned long long CUdeviceptr;

static void *context;
static size_t wanted;
static int result = -1;

static void *run(void *arg) {
    (void)arg;
    void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!cuda) return NULL;
    int (*set_current)(void *) = (int (*)(void *))dlsym(cuda, "cuCtxSetCurrent");
    int (*alloc)(CUdeviceptr *, size_t) = (int (*)(CUdeviceptr *, size_t))dlsym(cuda, "cuMemAlloc_v2");
    CUdeviceptr p;
    if (set_current && alloc && set_current(context) == 0) result = alloc(&p, wanted);
    dlclose(cuda);
    return NULL;
}

int worker_alloc(void *ctx, size_t size) {
    pthread_t t;
    context = ctx;
    wanted = size;
    if (pthread_create(&t, NULL, run, NULL)) return -1;
    pthread_join(t, NULL);
    return result;
}
