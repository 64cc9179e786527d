/* A run that grows while it is watched: every INTERVAL_MS, one more 64 MiB allocation (kept),
 * with a line on stdout; for `vramtrace top`, whose numbers must change between two looks.
 *   growing STEPS INTERVAL_MS
 * Prints `STEP <i> allocated=<bytes>` per step and `GROWING done` at the end. Exit 0 unless a
 * call failed.
 *   gcc -std=gnu11 -Wall -O1 -o growing growing.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <time.h>
#include "sequence.h"

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc < 3) {
        fprintf(stderr, "usage: %s STEPS INTERVAL_MS\n", argv[0]);
        return 2;
    }
    long steps = strtol(argv[1], NULL, 10), ms = strtol(argv[2], NULL, 10);
    if (RUNNER_PRIMARY_CONTEXT("growing")) return 1;
    size_t free_b = 0, total_b = 0;
    cuMemGetInfo_v2(&free_b, &total_b);
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    for (long i = 1; i <= steps; i++) {
        CUdeviceptr p = 0;
        if (cuMemAlloc_v2(&p, 64UL << 20) != CUDA_SUCCESS) return 1;
        printf("STEP %ld allocated=%lu\n", i, (unsigned long)i * (64UL << 20));
        nanosleep(&pause, NULL);
    }
    printf("GROWING done\n");
    return 0;
}
