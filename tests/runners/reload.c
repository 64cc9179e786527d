/* Loads the driver, unloads it, loads it again (to another address if it can), through
 * dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) + dlsym of exact names, like JAX or CuPy do.
 *   reload call     init, primary context, one alloc/free pair; dlclose; dlopen again; the same
 *   reload nocall   the first load only looks the functions up, makes no call; dlclose; then as
 *                   above
 * After each dlclose it prints `UNLOADED <yes|no>` (whether the loader really dropped the
 * library: a dlopen(RTLD_NOLOAD) finds nothing), then, before loading again, maps a placeholder
 * where the library was so the second load must go elsewhere, and prints `MOVED <yes|no>`
 * (whether the library now has another load address; found from cuInit, which interposers do
 * not wrap, so the answer is the same under one). CALL lines for the driver calls. Exit 0 unless
 * a call failed. Meant for the lock-free stub driver (stub_cuda.c), which unloads cleanly.
 *   gcc -std=gnu11 -Wall -o reload reload.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/mman.h>

#include "sequence.h"

struct fns {
    __typeof__(&cuInit) init;
    __typeof__(&cuDevicePrimaryCtxRetain) retain;
    __typeof__(&cuCtxSetCurrent) set_current;
    __typeof__(&cuMemAlloc_v2) alloc;
    __typeof__(&cuMemFree_v2) free_;
};

static int failures;

static void *load(struct fns *f) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        exit(1);
    }
    f->init = (__typeof__(f->init))dlsym(h, "cuInit");
    f->retain = (__typeof__(f->retain))dlsym(h, "cuDevicePrimaryCtxRetain");
    f->set_current = (__typeof__(f->set_current))dlsym(h, "cuCtxSetCurrent");
    f->alloc = (__typeof__(f->alloc))dlsym(h, "cuMemAlloc_v2");
    f->free_ = (__typeof__(f->free_))dlsym(h, "cuMemFree_v2");
    if (!f->init || !f->retain || !f->set_current || !f->alloc || !f->free_) {
        fprintf(stderr, "dlsym failed\n");
        exit(1);
    }
    return h;
}

static void use(const struct fns *f) {
    CUcontext ctx = NULL;
    CUdeviceptr p = 0;
    CUresult r = f->init(0);
    call_line("cuInit", r, 0, 0, 0);
    r = f->retain(&ctx, 0);
    call_line("cuDevicePrimaryCtxRetain", r, 0, 0, U64(ctx));
    failures += r != CUDA_SUCCESS;
    r = f->set_current(ctx);
    call_line("cuCtxSetCurrent", r, 0, 0, U64(ctx));
    r = f->alloc(&p, 1 << 20);
    call_line("cuMemAlloc_v2", r, 1 << 20, p, 0);
    failures += r != CUDA_SUCCESS;
    r = f->free_(p);
    call_line("cuMemFree_v2", r, 0, p, 0);
    failures += r != CUDA_SUCCESS;
}

/* The library's load address, from a function inside it. */
static void *base_of(void *fn) {
    Dl_info info;
    return dladdr(fn, &info) ? info.dli_fbase : NULL;
}

static void unload(void *h, const struct fns *f, void **hole) {
    void *base = base_of((void *)f->init); /* cuInit: never wrapped by an interposer */
    dlclose(h);
    void *again = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    printf("UNLOADED %s\n", again ? "no" : "yes");
    if (again) {
        dlclose(again);
        return;
    }
    /* Keep the old place's first page taken, so the next load lands elsewhere. */
    *hole = mmap(base, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
}

int main(int argc, char **argv) {
    runner_stdout_setup();
    int call_first = argc == 2 && strcmp(argv[1], "call") == 0;
    if (argc != 2 || (!call_first && strcmp(argv[1], "nocall") != 0)) {
        fprintf(stderr, "usage: %s call|nocall\n", argv[0]);
        return 2;
    }
    struct fns a, b;
    void *hole = MAP_FAILED;
    void *h = load(&a);
    if (call_first) use(&a);
    unload(h, &a, &hole);
    h = load(&b);
    printf("MOVED %s\n", base_of((void *)b.init) != base_of((void *)a.init) ? "yes" : "no");
    use(&b);
    dlclose(h);
    return failures ? 1 : 0;
}
