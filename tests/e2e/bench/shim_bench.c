/* Per-call cost of the driver's memory calls, as the program sees it. Linked with -lcuda so the
 * same binary runs with and without the shim. The calls are made from 40 frames deep, so a
 * 32-frame stack capture really walks 32 frames. Timed in thread CPU time: on a busy machine,
 * time other processes take from us does not count. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef unsigned long long CUdeviceptr;
typedef int CUdevice;
typedef void *CUcontext;
int cuInit(unsigned);
int cuCtxCreate_v2(CUcontext *, unsigned, CUdevice);
int cuMemAlloc_v2(CUdeviceptr *, size_t);
int cuMemFree_v2(CUdeviceptr);
int cuCtxGetDevice(CUdevice *);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int n_iter;

__attribute__((noinline)) static void measure(void) {
    CUdeviceptr p;
    CUdevice d;
    double t0 = now();
    for (int i = 0; i < n_iter; i++) {
        cuMemAlloc_v2(&p, 4096);
        cuMemFree_v2(p);
    }
    double t1 = now();
    for (int i = 0; i < n_iter; i++) cuCtxGetDevice(&d);
    double t2 = now();
    printf("hooked_ns_per_call %.1f\nunhooked_ns_per_call %.1f\n", (t1 - t0) / (2.0 * n_iter), (t2 - t1) / n_iter);
}

__attribute__((noinline)) static int deep(int n) {
    if (n == 0) {
        measure();
        return 0;
    }
    int r = deep(n - 1);
    __asm__ volatile("" ::: "memory"); /* keep the frame: no tail call */
    return r + 1;
}

int main(int argc, char **argv) {
    n_iter = argc > 1 ? atoi(argv[1]) : 100000;
    CUcontext ctx;
    if (cuInit(0) || cuCtxCreate_v2(&ctx, 0, 0)) return 1;
    deep(40);
    return 0;
}
