/* A signal handler that calls into the driver (or the shim) while the thread it interrupted is
 * inside the shim, perhaps holding one of its locks.
 *   sigcall MODE N
 * A timer (CLOCK_MONOTONIC, every 20 µs, aimed at the main thread) raises SIGALRM while the main
 * thread runs N × (cuMemAlloc_v2(4096) + cuMemFree_v2) — and, in the `dlsym` and `procaddr`
 * modes, also one cuGetProcAddress_v2("cuMemAlloc") per pair, so that the signal often lands
 * while the shim looks the answer up in its identity table. (Not a dlsym: glibc's own dlsym is not
 * async-signal-safe — a handler's dlsym that interrupts another dlsym can deadlock in glibc,
 * shim or not.) The handler, by MODE:
 *   call     cuMemAlloc_v2(512) + cuMemFree_v2 (the linked exports)
 *   mark     vramtrace_mark("signal", n), looked up beforehand with dlsym(RTLD_DEFAULT)
 *   dlsym    dlsym(libcuda, "cuMemFree_v2")
 *   procaddr cuGetProcAddress_v2("cuMemFree", ...)
 *   fork     fork(), at most 50 times, after the first 1000 pairs (glibc's fork in a handler
 *            that interrupted malloc would block in glibc); the child returns from the handler
 *            into whatever it interrupted, then makes one cuMemAlloc_v2(333) + cuMemFree_v2 pair
 *            and _exit(0)s; the parent's handler waits for it
 * Prints `SIGCALL mode=<m> pairs=<N> handled=<h> handler_calls=<c> failures=<n>`, where
 * handler_calls counts the driver calls (call mode: allocs and frees) or lookups the handler made.
 * Meant for the lock-free stub driver (stub_cuda.c), so any deadlock is the shim's.
 *   gcc -std=gnu11 -Wall -O2 -o sigcall sigcall.c -L<dir> -lcuda -ldl -lrt -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sequence.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

enum { CALL, MARK, DLSYM, PROCADDR, FORK } mode;
static void *lib;
static void (*mark)(const char *, long long);
static volatile long handled, handler_calls, failures;
static volatile int armed, in_child;

static void on_alarm(int sig) {
    (void)sig;
    handled++;
    if (mode == CALL) {
        CUdeviceptr p = 0;
        if (cuMemAlloc_v2(&p, 512) != CUDA_SUCCESS || cuMemFree_v2(p) != CUDA_SUCCESS) failures++;
        handler_calls += 2;
    } else if (mode == MARK) {
        if (mark) mark("signal", handled);
        handler_calls++;
    } else if (mode == DLSYM) {
        if (!dlsym(lib, "cuMemFree_v2")) failures++;
        handler_calls++;
    } else if (mode == PROCADDR) {
        void *fn = NULL;
        if (cuGetProcAddress_v2("cuMemFree", &fn, 12000, 0, NULL) != CUDA_SUCCESS || !fn) failures++;
        handler_calls++;
    } else if (armed && handler_calls < 50) {
        handler_calls++;
        pid_t pid = fork();
        if (pid == 0) {
            in_child = 1;
            return;
        }
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failures++;
    }
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc != 3) {
        fprintf(stderr, "usage: %s call|mark|dlsym|procaddr|fork N\n", argv[0]);
        return 2;
    }
    const char *m = argv[1];
    mode = !strcmp(m, "call")   ? CALL
           : !strcmp(m, "mark") ? MARK
           : !strcmp(m, "dlsym") ? DLSYM
           : !strcmp(m, "fork") ? FORK
                                : PROCADDR;
    long n = strtol(argv[2], NULL, 10);
    if (RUNNER_PRIMARY_CONTEXT("sigcall")) return 1;
    lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    mark = (void (*)(const char *, long long))dlsym(RTLD_DEFAULT, "vramtrace_mark");

    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct sigevent sev = {0};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGALRM;
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
        perror("timer_create");
        return 1;
    }
    struct itimerspec its = {{0, 20000}, {0, 20000}};
    timer_settime(timer, 0, &its, NULL);

    for (long i = 0; i < n; i++) {
        CUdeviceptr p = 0;
        if (cuMemAlloc_v2(&p, 4096) != CUDA_SUCCESS || cuMemFree_v2(p) != CUDA_SUCCESS) failures++;
        if (mode == DLSYM || mode == PROCADDR) {
            void *fn = NULL;
            if (cuGetProcAddress_v2("cuMemAlloc", &fn, 12000, 0, NULL) != CUDA_SUCCESS || !fn) failures++;
        }
        if (in_child) {
            CUdeviceptr q = 0;
            int bad = cuMemAlloc_v2(&q, 333) != CUDA_SUCCESS || cuMemFree_v2(q) != CUDA_SUCCESS;
            _exit(bad);
        }
        if (i == 1000) armed = 1;
    }
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(timer, 0, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    printf("SIGCALL mode=%s pairs=%ld handled=%ld handler_calls=%ld failures=%ld\n", m, n, handled,
           handler_calls, failures);
    return failures ? 1 : 0;
}
