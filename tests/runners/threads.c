/* Contention: T threads (argv[1], default 16) each run N iterations (argv[2], default 10000) of
 * cuMemAlloc_v2(4096) + cuMemFree_v2 on one shared context, linked with -lcuda. To keep timing
 * meaningful it prints no per-call lines, only the setup calls and one summary line:
 *   THREADS threads=<T> iterations=<N> allocs=<n> frees=<n> failures=<n> seconds=<s>
 *   gcc -std=gnu11 -Wall -O2 -pthread -o threads threads.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

#include "sequence.h"

static CUcontext ctx;
static long iterations = 10000;
static unsigned long allocs, frees, failures;

static void *worker(void *arg) {
    (void)arg;
    unsigned long a = 0, f = 0, bad = 0;
    if (cuCtxSetCurrent(ctx) != CUDA_SUCCESS) bad++;
    for (long i = 0; i < iterations; i++) {
        CUdeviceptr p = 0;
        if (cuMemAlloc_v2(&p, 4096) != CUDA_SUCCESS) {
            bad++;
            continue;
        }
        a++;
        if (cuMemFree_v2(p) == CUDA_SUCCESS) f++;
        else bad++;
    }
    __atomic_fetch_add(&allocs, a, __ATOMIC_RELAXED);
    __atomic_fetch_add(&frees, f, __ATOMIC_RELAXED);
    __atomic_fetch_add(&failures, bad, __ATOMIC_RELAXED);
    return NULL;
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    long nthreads = argc > 1 ? strtol(argv[1], NULL, 10) : 16;
    if (argc > 2) iterations = strtol(argv[2], NULL, 10);
    if (nthreads < 1 || nthreads > 4096 || iterations < 0) {
        fprintf(stderr, "usage: %s [threads] [iterations]\n", argv[0]);
        return 2;
    }
    CUresult r = cuInit(0);
    call_line("cuInit", r, 0, 0, 0);
    r = cuDevicePrimaryCtxRetain(&ctx, 0);
    call_line("cuDevicePrimaryCtxRetain", r, 0, 0, U64(ctx));
    if (r != CUDA_SUCCESS) return 1;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t *ts = calloc((size_t)nthreads, sizeof *ts);
    long started = 0;
    for (; started < nthreads; started++)
        if (pthread_create(&ts[started], NULL, worker, NULL) != 0) break;
    for (long i = 0; i < started; i++) pthread_join(ts[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(ts);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (started != nthreads) failures++;
    printf("THREADS threads=%ld iterations=%ld allocs=%lu frees=%lu failures=%lu seconds=%.3f\n",
           started, iterations, allocs, frees, failures, secs);
    return failures ? 1 : 0;
}
