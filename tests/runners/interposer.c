/* A second LD_PRELOAD library that wraps cuMemAlloc_v2 and cuMemFree_v2, the way other
 * interposers (HAMi-core, vgpu-manager, ...) do: it forwards each call to the next definition,
 * found lazily with dlsym(RTLD_NEXT, name), counts the calls, and reports the count at exit:
 *   INTERPOSER calls=<n>        (stderr, from a destructor)
 * Tests load it together with the vramtrace shim, in either order, to check that both see every
 * call and that RTLD_NEXT forwarding still reaches the driver.
 *   gcc -std=gnu11 -Wall -shared -fPIC -o libinterposer.so interposer.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

#include "cuda_min.h"

typedef __typeof__(&cuMemAlloc_v2) alloc_fn;
typedef __typeof__(&cuMemFree_v2) free_fn;

static unsigned long calls;

/* Resolves `name` in the libraries after this one, once; NULL if there is none. */
static void *next(void **slot, const char *name) {
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
    static void *real;
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    alloc_fn f = (alloc_fn)next(&real, "cuMemAlloc_v2");
    return f ? f(dptr, bytesize) : CUDA_ERROR_NOT_INITIALIZED;
}

CUresult cuMemFree_v2(CUdeviceptr dptr) {
    static void *real;
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    free_fn f = (free_fn)next(&real, "cuMemFree_v2");
    return f ? f(dptr) : CUDA_ERROR_NOT_INITIALIZED;
}

__attribute__((destructor)) static void interposer_report(void) {
    fprintf(stderr, "INTERPOSER calls=%lu\n", __atomic_load_n(&calls, __ATOMIC_RELAXED));
}
