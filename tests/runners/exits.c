/* Ends without running exit handlers:
 *   exits HOW N      N × cuMemAlloc_v2(1 MiB) (a CALL line each), then exits with status 3 by
 *                    HOW: exit, _exit or _Exit (the last two skip atexit handlers and destructors).
 *   gcc -std=gnu11 -Wall -o exits exits.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <unistd.h>

#include "sequence.h"

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc != 3) {
        fprintf(stderr, "usage: %s exit|_exit|_Exit N\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    CUcontext ctx = NULL;
    if (cuInit(0) || cuCtxCreate_v2(&ctx, 0, 0)) return 1;
    for (long i = 0; i < n; i++) {
        CUdeviceptr p = 0;
        CUresult r = cuMemAlloc_v2(&p, MIB);
        call_line("cuMemAlloc_v2", r, MIB, p, 0);
    }
    if (strcmp(argv[1], "_exit") == 0) _exit(3);
    if (strcmp(argv[1], "_Exit") == 0) _Exit(3);
    exit(3);
}
