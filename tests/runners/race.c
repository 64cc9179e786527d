/* Many threads whose first driver calls race each other: the process's very first recorded call
 * (which makes the shim create its trace file), its first lookups, its first stack.
 *   race T K [dlsym]
 * The main thread only calls cuInit (not recorded). T threads wait at a barrier, then each
 * retains the primary context, makes it current and runs K × (cuMemAlloc_v2(4096) +
 * cuMemFree_v2), by the linked exports, or with `dlsym` through its own
 * dlopen("libcuda.so.1") + dlsym lookups made after the barrier. Prints
 * `RACE threads=<T> pairs=<K> failures=<n>`; exit 0 unless a call failed.
 *   gcc -std=gnu11 -Wall -O2 -pthread -o race race.c -L<dir> -lcuda -ldl -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

#include "sequence.h"

static pthread_barrier_t start;
static long pairs;
static int by_dlsym;
static unsigned long failures;

static void *worker(void *arg) {
    (void)arg;
    __typeof__(&cuDevicePrimaryCtxRetain) retain = cuDevicePrimaryCtxRetain;
    __typeof__(&cuMemAlloc_v2) alloc = cuMemAlloc_v2;
    __typeof__(&cuMemFree_v2) release = cuMemFree_v2;
    unsigned long bad = 0;
    pthread_barrier_wait(&start);
    if (by_dlsym) {
        void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        retain = (__typeof__(retain))dlsym(h, "cuDevicePrimaryCtxRetain");
        alloc = (__typeof__(alloc))dlsym(h, "cuMemAlloc_v2");
        release = (__typeof__(release))dlsym(h, "cuMemFree_v2");
        if (!retain || !alloc || !release) {
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
            return NULL;
        }
    }
    CUcontext ctx = NULL;
    if (retain(&ctx, 0) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS) bad++;
    for (long i = 0; i < pairs; i++) {
        CUdeviceptr p = 0;
        if (alloc(&p, 4096) != CUDA_SUCCESS || release(p) != CUDA_SUCCESS) bad++;
    }
    __atomic_fetch_add(&failures, bad, __ATOMIC_RELAXED);
    return NULL;
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc < 3) {
        fprintf(stderr, "usage: %s THREADS PAIRS [dlsym]\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    pairs = strtol(argv[2], NULL, 10);
    by_dlsym = argc > 3 && strcmp(argv[3], "dlsym") == 0;
    if (n < 1 || n > 1024 || cuInit(0) != CUDA_SUCCESS) return 2;
    pthread_t ts[1024];
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (long i = 0; i < n; i++) pthread_create(&ts[i], NULL, worker, NULL);
    for (long i = 0; i < n; i++) pthread_join(ts[i], NULL);
    printf("RACE threads=%ld pairs=%ld failures=%lu\n", n, pairs, failures);
    return failures ? 1 : 0;
}
