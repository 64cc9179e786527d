/* fork() and exec() around driver calls:
 *   forker          allocate; fork; the child allocates and exits; the parent waits and
 *                   allocates again
 *   forker exec P   the same, but the child execv()s the program P (e.g. the linked runner)
 * Besides the CALL lines it prints `FORK child=<pid>` (parent) and `CHILD pid=<pid>` (child) so
 * tests can tell which process made which call. Exit status 0 unless a call or the child failed.
 *   gcc -std=gnu11 -Wall -o forker forker.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <sys/wait.h>
#include <unistd.h>

#include "sequence.h"

static int failures;

static CUdeviceptr alloc(size_t size) {
    CUdeviceptr p = 0;
    CUresult r = cuMemAlloc_v2(&p, size);
    call_line("cuMemAlloc_v2", r, size, p, 0);
    if (r != CUDA_SUCCESS) failures++;
    return p;
}

static void release(CUdeviceptr p) {
    CUresult r = cuMemFree_v2(p);
    call_line("cuMemFree_v2", r, 0, p, 0);
    if (r != CUDA_SUCCESS) failures++;
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    int exec_child = argc >= 3 && strcmp(argv[1], "exec") == 0;
    if (argc >= 2 && !exec_child) {
        fprintf(stderr, "usage: %s [exec PROGRAM]\n", argv[0]);
        return 2;
    }
    CUcontext ctx = NULL;
    CUresult r = cuInit(0);
    call_line("cuInit", r, 0, 0, 0);
    r = cuDevicePrimaryCtxRetain(&ctx, 0);
    call_line("cuDevicePrimaryCtxRetain", r, 0, 0, U64(ctx));
    r = cuCtxSetCurrent(ctx);
    call_line("cuCtxSetCurrent", r, 0, 0, U64(ctx));
    if (r != CUDA_SUCCESS) return 1;

    CUdeviceptr before = alloc(8 * MIB);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        printf("CHILD pid=%d\n", (int)getpid());
        if (exec_child) {
            char *args[] = {argv[2], NULL};
            execv(argv[2], args);
            perror("execv");
            _exit(127);
        }
        CUdeviceptr c = alloc(4 * MIB);
        release(c);
        exit(failures ? 1 : 0);
    }
    printf("FORK child=%d\n", (int)pid);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "forker: child failed (status 0x%x)\n", status);
        failures++;
    }
    CUdeviceptr after = alloc(2 * MIB);
    release(after);
    release(before);
    return failures ? 1 : 0;
}
