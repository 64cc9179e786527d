/* A long, steady run from one call site: N × (cuMemAlloc_v2(4096) + cuMemFree_v2), linked with
 * -lcuda. For memory (is the process's memory flat over millions of events?) and for a trace
 * that outgrows its space (disk full, file size limit).
 *   steady N [CHECKPOINT...]
 * After each CHECKPOINT pairs it prints the process's anonymous resident memory:
 *   RSS pairs=<n> anon_kib=<RssAnon from /proc/self/status>
 * and at the end `STEADY pairs=<N> failures=<n>`. Exit 0 unless a call failed.
 *   gcc -std=gnu11 -Wall -O2 -o steady steady.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include "sequence.h"

static long anon_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %ld kB", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc < 2) {
        fprintf(stderr, "usage: %s N [CHECKPOINT...]\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    if (RUNNER_PRIMARY_CONTEXT("steady")) return 1;
    long failures = 0;
    int next = 2;
    for (long i = 1; i <= n; i++) {
        CUdeviceptr p = 0;
        if (cuMemAlloc_v2(&p, 4096) != CUDA_SUCCESS || cuMemFree_v2(p) != CUDA_SUCCESS) failures++;
        while (next < argc && strtol(argv[next], NULL, 10) == i) {
            printf("RSS pairs=%ld anon_kib=%ld\n", i, anon_kib());
            next++;
        }
    }
    printf("STEADY pairs=%ld failures=%ld\n", n, failures);
    return failures ? 1 : 0;
}
