/* The same call sequence as linked.c, but every function comes from
 * dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) + dlsym of its exact exported name, the route
 * JAX/XLA and other loaders take. A name the driver does not export (one newer than the driver)
 * gets a `MISSING` line on stderr and the sequence skips it. No -lcuda:
 *   gcc -std=c11 -Wall -o dlsym dlsym.c -ldl
 * (run with LD_LIBRARY_PATH pointing at the directory that holds libcuda.so.1). */
#include <dlfcn.h>

#include "sequence.h"

int main(void) {
    runner_stdout_setup();
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror());
        return 1;
    }
    struct cu_api api;
#define FILL_DLSYM(slot, sym)                                                                      \
    api.slot = (__typeof__(api.slot))dlsym(h, #sym);                                               \
    api.slot##_name = #sym;                                                                        \
    if (!api.slot) fprintf(stderr, "MISSING %s: %s\n", #sym, dlerror());
    SEQ_SLOTS(FILL_DLSYM)
    if (!seq_has_basics(&api)) {
        fprintf(stderr, "dlsym: the driver lacks the basic entry points\n");
        return 1;
    }
    return run_sequence(&api) ? 1 : 0;
}
