/* Loads the shim by path with dlopen — the way a setuid program could still get it: glibc ignores
 * LD_PRELOAD paths in secure mode, but not dlopen — and records a marker through it:
 *   secure SHIM
 * calls vramtrace_mark("secure", 1) and prints `SECURE at_secure=<0|1> mark=<found|missing>`.
 * Outside secure mode the marker creates a trace file in $VRAMTRACE_DIR; tests run it as a setuid
 * binary (at_secure=1), where the shim must create nothing. Exit 0 unless the dlopen failed.
 *   gcc -std=gnu11 -Wall -o secure secure.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <sys/auxv.h>

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) {
        fprintf(stderr, "usage: %s SHIM\n", argv[0]);
        return 2;
    }
    void *shim = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!shim) {
        fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    void (*mark)(const char *, long long) = (void (*)(const char *, long long))dlsym(shim, "vramtrace_mark");
    if (mark) mark("secure", 1);
    printf("SECURE at_secure=%lu mark=%s\n", getauxval(AT_SECURE), mark ? "found" : "missing");
    return 0;
}
