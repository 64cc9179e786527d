/* A program that takes every descriptor it did not open for its own, after the shim has opened
 * its trace file (the first driver call does that):
 *   fds closeall OUTFILE N   closes descriptors 3..1023, then opens OUTFILE (which so gets the
 *                            lowest free number: the one the trace file had)
 *   fds dup2 OUTFILE N       opens OUTFILE and dup2()s it over every other open descriptor >= 3
 * then N times: writes "line <i>\n" to OUTFILE with write(2) and makes one cuMemAlloc_v2(4096) +
 * cuMemFree_v2 pair (enough pairs make the shim grow its file), and closes OUTFILE. OUTFILE must
 * end up exactly "line 0\n" ... "line <N-1>\n". Prints `FDS mode=<m> pairs=<N> failures=<n>`.
 *   gcc -std=gnu11 -Wall -o fds fds.c -L<dir> -lcuda -Wl,-rpath,<dir> */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "sequence.h"

static long failures;

static void pair(void) {
    CUdeviceptr p = 0;
    if (cuMemAlloc_v2(&p, 4096) != CUDA_SUCCESS || cuMemFree_v2(p) != CUDA_SUCCESS) failures++;
}

/* dup2s `keep` over every other descriptor >= 3 (the listing's own descriptor included: it is
 * only closed after the walk, by closedir, which then closes `keep`'s duplicate). */
static void take_all(int keep) {
    int fds[1024], n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 1024) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 3 && fd != keep && fd != dirfd(d)) fds[n++] = fd;
    }
    if (d) closedir(d);
    for (int i = 0; i < n; i++)
        if (dup2(keep, fds[i]) < 0) failures++;
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc != 4 || (strcmp(argv[1], "closeall") != 0 && strcmp(argv[1], "dup2") != 0)) {
        fprintf(stderr, "usage: %s closeall|dup2 OUTFILE N\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[3], NULL, 10);
    if (RUNNER_PRIMARY_CONTEXT("fds")) return 1;
    pair();
    int out;
    if (strcmp(argv[1], "closeall") == 0) {
        for (int fd = 3; fd < 1024; fd++) close(fd);
        out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    } else {
        out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out >= 0) take_all(out);
    }
    if (out < 0) {
        perror("fds: open");
        return 1;
    }
    for (long i = 0; i < n; i++) {
        char line[32];
        int k = snprintf(line, sizeof line, "line %ld\n", i);
        if (write(out, line, (size_t)k) != k) failures++;
        pair();
    }
    if (close(out) != 0) failures++;
    printf("FDS mode=%s pairs=%ld failures=%ld\n", argv[1], n, failures);
    return failures ? 1 : 0;
}
