/* Dies with live allocations, the two ways runners die: ggml abort()s on a CUDA error, Ollama
 * SIGKILLs its runner.
 *   crasher N abort   N allocations (one CALL line each), `READY`, then abort()
 *   crasher N hang    N allocations, `READY`, then sleep until killed
 *   gcc -std=gnu11 -Wall -o crasher crasher.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <unistd.h>

#include "sequence.h"

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc != 3 || (strcmp(argv[2], "abort") != 0 && strcmp(argv[2], "hang") != 0)) {
        fprintf(stderr, "usage: %s N abort|hang\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    CUcontext ctx = NULL;
    CUresult r = cuInit(0);
    call_line("cuInit", r, 0, 0, 0);
    r = cuCtxCreate_v2(&ctx, 0, 0);
    call_line("cuCtxCreate_v2", r, 0, 0, U64(ctx));
    if (r != CUDA_SUCCESS) return 1;
    for (long i = 0; i < n; i++) {
        CUdeviceptr p = 0;
        size_t size = (size_t)(i + 1) * MIB;
        r = cuMemAlloc_v2(&p, size);
        call_line("cuMemAlloc_v2", r, size, p, 0);
        if (r != CUDA_SUCCESS) return 1;
    }
    printf("READY\n");
    fflush(stdout);
    if (strcmp(argv[2], "abort") == 0) abort();
    for (;;) pause();
}
