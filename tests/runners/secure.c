/* Loads the shim by path with dlopen — the way a setuid program could still get it: glibc ignores
 * LD_PRELOAD paths in secure mode, but not dlopen — then a driver, and records through the shim:
 *   secure SHIM DRIVER
 * calls vramtrace_mark("secure", 1) and DRIVER's cuMemGetInfo_v2 as looked up through the shim's
 * own dlsym (what every lookup of a program gets when the shim is preloaded), and prints `SECURE at_secure=<0|1> mark=<found|missing>`. Outside secure mode
 * that creates a trace file in $VRAMTRACE_DIR with the marker and the call; tests run it as a
 * setuid binary (at_secure=1), where the shim must create nothing. Exit 0 unless a dlopen failed.
 *   gcc -std=gnu11 -Wall -o secure secure.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <sys/auxv.h>

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3) {
        fprintf(stderr, "usage: %s SHIM DRIVER\n", argv[0]);
        return 2;
    }
    void *shim = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    void *driver = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (!shim || !driver) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    void (*mark)(const char *, long long) = (void (*)(const char *, long long))dlsym(shim, "vramtrace_mark");
    if (mark) mark("secure", 1);
    void *(*shim_dlsym)(void *, const char *) = (void *(*)(void *, const char *))dlsym(shim, "dlsym");
    int (*get_info)(size_t *, size_t *) = shim_dlsym ? (int (*)(size_t *, size_t *))shim_dlsym(driver, "cuMemGetInfo_v2") : NULL;
    size_t free_b = 0, total_b = 0;
    if (get_info) get_info(&free_b, &total_b);
    printf("SECURE at_secure=%lu mark=%s\n", getauxval(AT_SECURE), mark ? "found" : "missing");
    return 0;
}
