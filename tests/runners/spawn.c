/* Child processes that share the parent's memory or never run its fork handlers:
 *   spawn PROGRAM
 * allocates (so the shim is recording), then
 *   1. vfork(); the child execs a missing program and _exit(127)s;
 *   2. vfork(); the child execs PROGRAM;
 *   3. posix_spawn(PROGRAM);
 *   4. posix_spawn of a missing program (fails in the child);
 * waiting for each, then allocates again, frees both and exits 0. Prints
 *   SPAWN vfork_missing=<status> vfork_exec=<status> spawn=<status> spawn_missing=<rc or status>
 * with exit statuses as numbers. PROGRAM is typically the `linked` runner.
 *   gcc -std=gnu11 -Wall -o spawn spawn.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sequence.h"

extern char **environ;

static int status_of(pid_t pid) {
    int st = 0;
    if (pid <= 0 || waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int failures;

static CUdeviceptr alloc(size_t size) {
    CUdeviceptr p = 0;
    CUresult r = cuMemAlloc_v2(&p, size);
    call_line("cuMemAlloc_v2", r, size, p, 0);
    failures += r != CUDA_SUCCESS;
    return p;
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc != 2) {
        fprintf(stderr, "usage: %s PROGRAM\n", argv[0]);
        return 2;
    }
    if (RUNNER_PRIMARY_CONTEXT("spawn")) return 1;
    CUdeviceptr before = alloc(8 << 20);
    char *missing[] = {"/nonexistent/vramtrace-missing", NULL};
    char *prog[] = {argv[1], NULL};

    pid_t pid = vfork();
    if (pid == 0) {
        execv(missing[0], missing);
        _exit(127);
    }
    int vfork_missing = status_of(pid);
    pid = vfork();
    if (pid == 0) {
        execv(prog[0], prog);
        _exit(126);
    }
    int vfork_exec = status_of(pid);
    pid = 0;
    int rc = posix_spawn(&pid, prog[0], NULL, NULL, prog, environ);
    int spawned = rc == 0 ? status_of(pid) : -rc;
    pid = 0;
    rc = posix_spawn(&pid, missing[0], NULL, NULL, missing, environ);
    int spawn_missing = rc != 0 ? rc : status_of(pid);

    CUdeviceptr after = alloc(2 << 20);
    failures += cuMemFree_v2(after) != CUDA_SUCCESS;
    failures += cuMemFree_v2(before) != CUDA_SUCCESS;
    printf("SPAWN vfork_missing=%d vfork_exec=%d spawn=%d spawn_missing=%d\n", vfork_missing,
           vfork_exec, spawned, spawn_missing);
    return failures ? 1 : 0;
}
