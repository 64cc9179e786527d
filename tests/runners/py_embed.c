/* An embedder that loads Python late: it first allocates through the driver itself, then
 * dlopen()s libpython with RTLD_LOCAL (its symbols stay out of the global scope, so extension
 * modules such as ctypes cannot load), gives Python one builtin, vt_alloc(size), that allocates
 * through the driver with the GIL held, and runs a script with it.
 *   py_embed LIBPYTHON SCRIPT [ARGS...]     (sys.argv = [SCRIPT, ARGS...])
 * Prints `NATIVE <CUresult>` for its own allocation; exits with the script's status. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long CUdeviceptr;
typedef struct { const char *name; void *(*meth)(void *, void *); int flags; const char *doc; } MethodDef;
#define METH_O 0x0008

static int (*cu_alloc)(CUdeviceptr *, size_t);
static int (*cu_set_current)(void *);
static void *ctx;
static size_t (*as_size)(void *);
static void *(*from_long)(long);

static void *need(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "py_embed: %s: %s\n", name, dlerror());
        exit(2);
    }
    return p;
}

/* vt_alloc(size) -> CUresult; the context is made current on the calling thread first. */
static void *vt_alloc(void *self, void *arg) {
    (void)self;
    CUdeviceptr p;
    cu_set_current(ctx);
    return from_long(cu_alloc(&p, as_size(arg)));
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: py_embed LIBPYTHON SCRIPT [ARGS...]\n");
        return 2;
    }
    void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!cuda) {
        fprintf(stderr, "py_embed: %s\n", dlerror());
        return 2;
    }
    int (*cu_init)(unsigned) = need(cuda, "cuInit");
    int (*ctx_create)(void **, unsigned, int) = need(cuda, "cuCtxCreate_v2");
    cu_alloc = need(cuda, "cuMemAlloc_v2");
    cu_set_current = need(cuda, "cuCtxSetCurrent");
    CUdeviceptr p;
    if (cu_init(0) || ctx_create(&ctx, 0, 0)) return 2;
    printf("NATIVE %d\n", cu_alloc(&p, 4096));
    fflush(stdout);

    void *py = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!py) {
        fprintf(stderr, "py_embed: %s\n", dlerror());
        return 2;
    }
    void (*init)(int) = need(py, "Py_InitializeEx");
    int (*run_string)(const char *) = need(py, "PyRun_SimpleString");
    int (*run_file)(FILE *, const char *) = need(py, "PyRun_SimpleFile");
    int (*finalize)(void) = need(py, "Py_FinalizeEx");
    void *(*import)(const char *) = need(py, "PyImport_ImportModule");
    void *(*new_function)(MethodDef *, void *, void *) = need(py, "PyCFunction_NewEx");
    int (*set_attr)(void *, const char *, void *) = need(py, "PyObject_SetAttrString");
    as_size = need(py, "PyLong_AsSize_t");
    from_long = need(py, "PyLong_FromLong");

    init(0);
    static MethodDef def = {"vt_alloc", vt_alloc, METH_O, NULL};
    if (set_attr(import("builtins"), "vt_alloc", new_function(&def, NULL, NULL))) return 2;
    /* sys.argv = [SCRIPT, ARGS...] */
    size_t len = 64;
    for (int i = 2; i < argc; i++) len += strlen(argv[i]) + 8;
    char *set_argv = malloc(len);
    strcpy(set_argv, "import sys; sys.argv = [");
    for (int i = 2; i < argc; i++) {
        strcat(set_argv, "'");
        strcat(set_argv, argv[i]);
        strcat(set_argv, "', ");
    }
    strcat(set_argv, "]");
    int rc = run_string(set_argv);
    FILE *f = fopen(argv[2], "r");
    if (!f) return 2;
    rc = rc || run_file(f, argv[2]);
    fclose(f);
    return finalize() || rc ? 1 : 0;
}
