/* fork() while other threads are inside the driver and the shim:
 *   forkstorm T N F [_exit]
 * T threads each run N × (cuMemAlloc_v2(size) + cuMemFree_v2), where size = 512 × (i + 1) for
 * the i-th pair (so the order of a thread's calls can be read back from the sizes), while the
 * main thread forks F times, spread over the run. Each child allocates 777 bytes, frees them and
 * exits 0 with exit(), or with _exit() when the 4th argument is `_exit`; the parent waits for
 * it. A child that deadlocks hangs the parent (tests run this under a deadline). Prints
 *   FORKSTORM threads=<T> pairs=<N> forks=<F> children_ok=<n> failures=<n>
 * Meant for the lock-free stub driver (stub_cuda.c): the fake driver keeps a mutex that a fork
 * can leave locked in the child.
 *   gcc -std=gnu11 -Wall -O2 -pthread -o forkstorm forkstorm.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sequence.h"

static long pairs;
static unsigned long failures, done_pairs;

static void *worker(void *arg) {
    (void)arg;
    unsigned long bad = 0;
    for (long i = 0; i < pairs; i++) {
        CUdeviceptr p = 0;
        if (cuMemAlloc_v2(&p, 512 * (size_t)(i + 1)) != CUDA_SUCCESS || cuMemFree_v2(p) != CUDA_SUCCESS)
            bad++;
        __atomic_fetch_add(&done_pairs, 1, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&failures, bad, __ATOMIC_RELAXED);
    return NULL;
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS PAIRS FORKS [_exit]\n", argv[0]);
        return 2;
    }
    long t = strtol(argv[1], NULL, 10), forks = strtol(argv[3], NULL, 10);
    pairs = strtol(argv[2], NULL, 10);
    int quick = argc > 4 && strcmp(argv[4], "_exit") == 0;
    if (t < 1 || t > 256) return 2;
    if (RUNNER_PRIMARY_CONTEXT("forkstorm")) return 1;
    pthread_t ts[256];
    for (long i = 0; i < t; i++) pthread_create(&ts[i], NULL, worker, NULL);
    long ok = 0;
    unsigned long total = (unsigned long)(t * pairs);
    for (long f = 0; f < forks; f++) {
        /* Spread the forks over the run: wait until the threads are f/forks of the way. */
        while (__atomic_load_n(&done_pairs, __ATOMIC_RELAXED) < total * (unsigned long)f / (unsigned long)forks)
            sched_yield();
        pid_t pid = fork();
        if (pid == 0) {
            CUdeviceptr p = 0;
            int bad = cuMemAlloc_v2(&p, 777) != CUDA_SUCCESS || cuMemFree_v2(p) != CUDA_SUCCESS;
            if (quick) _exit(bad);
            exit(bad);
        }
        int st = 0;
        if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
        else failures++;
    }
    for (long i = 0; i < t; i++) pthread_join(ts[i], NULL);
    printf("FORKSTORM threads=%ld pairs=%ld forks=%ld children_ok=%ld failures=%lu\n", t, pairs,
           forks, ok, failures);
    return failures ? 1 : 0;
}
