/* Replays cudart 12.9's driver lookup sequence, then runs the shared call sequence through the
 * pointers those lookups returned:
 *   1. dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL); dlsym "cuGetProcAddress_v2";
 *   2. every lookup in the file given as argv[1] (cudart12-lookups.txt: `name version flags`,
 *      the first line has an empty name), in order, with these side effects as cudart has them:
 *      the "" probe at version 0 must answer CUDA_SUCCESS with symbolStatus
 *      CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND (as the real driver does); right after cuInit@2000
 *      resolves it is called; cuGetProcAddress@12000 replaces the dlsym'd pointer for all later
 *      lookups. A lookup that finds nothing answers CUDA_SUCCESS, a NULL pointer and the reason
 *      in symbolStatus; many do (the fake implements a subset, an older driver lacks newer
 *      functions) and cudart accepts that.
 *   3. the call sequence (sequence.h) for every slot the lookups filled, e.g. cuMemAlloc@3020 →
 *      cuMemAlloc_v2, cuMemAllocAsync with flags=2 → cuMemAllocAsync_ptsz. Slots cudart never
 *      looks up (VMM, cuCtxDestroy, ...) are fetched as cudaGetDriverEntryPointByVersion does for
 *      ggml and PyTorch: one more cuGetProcAddress_v2 lookup at the variant's version.
 *   gcc -std=c11 -Wall -o cudart_replay cudart_replay.c -ldl
 *   LD_LIBRARY_PATH=<dir with libcuda.so.1> ./cudart_replay cudart12-lookups.txt */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

#include "sequence.h"

typedef __typeof__(&cuGetProcAddress_v2) gpa_v2_fn;

/* One variant of a base name as the real driver has it; `fits` = has the slot's signature. */
struct variant {
    const char *sym;
    int since;
    int fits;
};

/* How a table slot is found: base name, stream flavour (flags), every variant of that base
 * (oldest first) so the one a lookup resolved to can be named exactly. */
struct spec {
    size_t fn, name;
    const char *base;
    unsigned flags;
    struct variant v[4];
};

#define SPEC(slot, base, flags, ...)                                                               \
    {offsetof(struct cu_api, slot), offsetof(struct cu_api, slot##_name), base, flags, {__VA_ARGS__}}
#define ONE(slot, sym, since) SPEC(slot, #sym, 0, {#sym, since, 1})
#define PTSZ CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM

static const struct spec specs[] = {
    ONE(Init, cuInit, 2000),
    ONE(DriverGetVersion, cuDriverGetVersion, 2020),
    ONE(DeviceGetCount, cuDeviceGetCount, 2000),
    ONE(DeviceGet, cuDeviceGet, 2000),
    ONE(DeviceGetName, cuDeviceGetName, 2000),
    SPEC(DeviceTotalMem, "cuDeviceTotalMem", 0, {"cuDeviceTotalMem", 2000, 0},
         {"cuDeviceTotalMem_v2", 3020, 1}),
    ONE(GetErrorString, cuGetErrorString, 6000),
    ONE(DevicePrimaryCtxRetain, cuDevicePrimaryCtxRetain, 7000),
    SPEC(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease", 0,
         {"cuDevicePrimaryCtxRelease", 7000, 1}, {"cuDevicePrimaryCtxRelease_v2", 11000, 1}),
    SPEC(DevicePrimaryCtxReset, "cuDevicePrimaryCtxReset", 0, {"cuDevicePrimaryCtxReset", 7000, 1},
         {"cuDevicePrimaryCtxReset_v2", 11000, 1}),
    ONE(CtxSetCurrent, cuCtxSetCurrent, 4000),
    ONE(CtxGetCurrent, cuCtxGetCurrent, 4000),
    SPEC(CtxPushCurrent, "cuCtxPushCurrent", 0, {"cuCtxPushCurrent", 2000, 1},
         {"cuCtxPushCurrent_v2", 4000, 1}),
    SPEC(CtxPopCurrent, "cuCtxPopCurrent", 0, {"cuCtxPopCurrent", 2000, 1},
         {"cuCtxPopCurrent_v2", 4000, 1}),
    ONE(CtxGetDevice, cuCtxGetDevice, 2000),
    ONE(CtxSynchronize, cuCtxSynchronize, 2000),
    SPEC(CtxCreate, "cuCtxCreate", 0, {"cuCtxCreate", 2000, 1}, {"cuCtxCreate_v2", 3020, 1},
         {"cuCtxCreate_v3", 11040, 0}, {"cuCtxCreate_v4", 12050, 0}),
    SPEC(CtxCreateV3, "cuCtxCreate", 0, {"cuCtxCreate", 2000, 0}, {"cuCtxCreate_v2", 3020, 0},
         {"cuCtxCreate_v3", 11040, 1}, {"cuCtxCreate_v4", 12050, 0}),
    SPEC(CtxCreateV4, "cuCtxCreate", 0, {"cuCtxCreate", 2000, 0}, {"cuCtxCreate_v2", 3020, 0},
         {"cuCtxCreate_v3", 11040, 0}, {"cuCtxCreate_v4", 12050, 1}),
    SPEC(CtxDestroy, "cuCtxDestroy", 0, {"cuCtxDestroy", 2000, 1}, {"cuCtxDestroy_v2", 4000, 1}),
    SPEC(MemGetInfo, "cuMemGetInfo", 0, {"cuMemGetInfo", 2000, 0}, {"cuMemGetInfo_v2", 3020, 1}),
    SPEC(MemAlloc, "cuMemAlloc", 0, {"cuMemAlloc", 2000, 0}, {"cuMemAlloc_v2", 3020, 1}),
    SPEC(MemAllocPitch, "cuMemAllocPitch", 0, {"cuMemAllocPitch", 2000, 0},
         {"cuMemAllocPitch_v2", 3020, 1}),
    ONE(MemAllocManaged, cuMemAllocManaged, 6000),
    SPEC(MemFree, "cuMemFree", 0, {"cuMemFree", 2000, 0}, {"cuMemFree_v2", 3020, 1}),
    ONE(StreamCreate, cuStreamCreate, 2000),
    SPEC(StreamDestroy, "cuStreamDestroy", 0, {"cuStreamDestroy", 2000, 1},
         {"cuStreamDestroy_v2", 4000, 1}),
    ONE(StreamSynchronize, cuStreamSynchronize, 2000),
    ONE(DeviceGetDefaultMemPool, cuDeviceGetDefaultMemPool, 11020),
    ONE(MemPoolCreate, cuMemPoolCreate, 11020),
    ONE(MemPoolDestroy, cuMemPoolDestroy, 11020),
    ONE(MemPoolTrimTo, cuMemPoolTrimTo, 11020),
    ONE(MemAllocAsync, cuMemAllocAsync, 11020),
    SPEC(MemAllocAsyncPtsz, "cuMemAllocAsync", PTSZ, {"cuMemAllocAsync_ptsz", 11020, 1}),
    ONE(MemAllocFromPoolAsync, cuMemAllocFromPoolAsync, 11020),
    SPEC(MemAllocFromPoolAsyncPtsz, "cuMemAllocFromPoolAsync", PTSZ,
         {"cuMemAllocFromPoolAsync_ptsz", 11020, 1}),
    ONE(MemFreeAsync, cuMemFreeAsync, 11020),
    SPEC(MemFreeAsyncPtsz, "cuMemFreeAsync", PTSZ, {"cuMemFreeAsync_ptsz", 11020, 1}),
    ONE(MemGetAllocationGranularity, cuMemGetAllocationGranularity, 10020),
    ONE(MemAddressReserve, cuMemAddressReserve, 10020),
    ONE(MemAddressFree, cuMemAddressFree, 10020),
    ONE(MemCreate, cuMemCreate, 10020),
    ONE(MemRelease, cuMemRelease, 10020),
    ONE(MemMap, cuMemMap, 10020),
    ONE(MemUnmap, cuMemUnmap, 10020),
    ONE(MemSetAccess, cuMemSetAccess, 10020),
    ONE(MemHostAlloc, cuMemHostAlloc, 2020),
    SPEC(MemAllocHost, "cuMemAllocHost", 0, {"cuMemAllocHost", 2000, 0},
         {"cuMemAllocHost_v2", 3020, 1}),
    ONE(MemFreeHost, cuMemFreeHost, 2000),
    SPEC(MemHostRegister, "cuMemHostRegister", 0, {"cuMemHostRegister", 4000, 0},
         {"cuMemHostRegister_v2", 6050, 1}),
    ONE(MemHostUnregister, cuMemHostUnregister, 4000),
};

/* A lookup that succeeded. */
struct hit {
    char name[96];
    int version;
    unsigned long long flags;
    void *pfn;
};

int main(int argc, char **argv) {
    runner_stdout_setup();
    if (argc < 2) {
        fprintf(stderr, "usage: %s cudart12-lookups.txt\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror());
        return 1;
    }
    gpa_v2_fn gpa = (gpa_v2_fn)dlsym(h, "cuGetProcAddress_v2");
    if (!gpa) {
        fprintf(stderr, "dlsym cuGetProcAddress_v2: %s\n", dlerror());
        return 1;
    }

    static struct hit hits[1024];
    size_t nhits = 0, nlookups = 0;
    int inited = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char name[96] = "";
        int version = 0;
        unsigned long long flags = 0;
        /* "name version flags", or " version flags" for the empty-name probe. */
        if (sscanf(line, "%95s %d %llu", name, &version, &flags) != 3) {
            name[0] = 0;
            if (sscanf(line, "%d %llu", &version, &flags) != 2) continue;
        }
        void *pfn = NULL;
        CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
        CUresult r = gpa(name, &pfn, version, flags, &st);
        call_line("cuGetProcAddress_v2", r, 0, U64(pfn), 0);
        nlookups++;
        if (r != CUDA_SUCCESS) {
            /* cudart's names, versions and flags are all valid: only an answer, never an error. */
            fprintf(stderr, "UNEXPECTED lookup %s@%d flags %llu failed with %d\n", name, version,
                    flags, (int)r);
            seq_failures++;
            continue;
        }
        if (name[0] == 0 && st != CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND) {
            fprintf(stderr, "UNEXPECTED cuGetProcAddress_v2(\"\") status=%d, expected %d\n",
                    (int)st, (int)CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
            seq_failures++;
        }
        if (st != CU_GET_PROC_ADDRESS_SUCCESS || !pfn) {
            /* Nothing found: the pointer must be NULL and the status must say why. */
            if (pfn || st == CU_GET_PROC_ADDRESS_SUCCESS) {
                fprintf(stderr, "UNEXPECTED lookup %s@%d found nothing with pfn=%p status=%d\n",
                        name, version, pfn, (int)st);
                seq_failures++;
            }
            continue;
        }
        if (nhits < sizeof hits / sizeof hits[0]) {
            struct hit *x = &hits[nhits++];
            snprintf(x->name, sizeof x->name, "%s", name);
            x->version = version;
            x->flags = flags;
            x->pfn = pfn;
        }
        if (!inited && strcmp(name, "cuInit") == 0) {
            CUresult ri = ((__typeof__(&cuInit))pfn)(0);
            call_line("cuInit", ri, 0, 0, 0);
            seq_init_result("cuInit", ri);
            inited = 1;
        }
        if (strcmp(name, "cuGetProcAddress") == 0 && version >= 12000) gpa = (gpa_v2_fn)pfn;
    }
    fclose(f);
    fprintf(stderr, "cudart_replay: %zu lookups, %zu resolved\n", nlookups, nhits);

    /* Fill each slot from the newest lookup of its base name with its stream flavour, named after
     * the variant that version resolves to; a variant of another signature leaves it empty. */
    struct cu_api api;
    memset(&api, 0, sizeof api);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const struct spec *sp = &specs[i];
        const struct hit *best = NULL;
        for (size_t j = 0; j < nhits; j++) {
            const struct hit *x = &hits[j];
            if (strcmp(x->name, sp->base) != 0 || ((x->flags ^ sp->flags) & PTSZ)) continue;
            if (!best || x->version >= best->version) best = x;
        }
        const struct variant *got = NULL;
        if (best)
            for (size_t k = 0; k < 4 && sp->v[k].sym; k++)
                if (sp->v[k].since <= best->version) got = &sp->v[k];
        if (!got || !got->fits) {
            /* cudart itself never asked for this one: programs get it the way ggml (VMM pool) and
             * PyTorch (expandable segments) do, through cudaGetDriverEntryPointByVersion, which
             * is a cuGetProcAddress lookup at the version of the variant they were built for. */
            const struct variant *want = NULL;
            for (size_t k = 0; k < 4 && sp->v[k].sym; k++)
                if (sp->v[k].fits) want = &sp->v[k];
            if (!want || nhits >= sizeof hits / sizeof hits[0]) continue;
            void *pfn = NULL;
            CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
            CUresult r = gpa(sp->base, &pfn, want->since, sp->flags, &st);
            call_line("cuGetProcAddress_v2", r, 0, U64(pfn), 0);
            if (r != CUDA_SUCCESS || st != CU_GET_PROC_ADDRESS_SUCCESS || !pfn) continue;
            /* An older driver answers with its own newest variant, which has another signature
             * (cuCtxCreate@12050 is cuCtxCreate_v3 on a 12.2 driver): no slot then. */
            if (!dlsym(h, want->sym)) continue;
            struct hit *x = &hits[nhits++];
            snprintf(x->name, sizeof x->name, "%s", sp->base);
            x->version = want->since;
            x->flags = sp->flags;
            x->pfn = pfn;
            best = x;
            got = want;
        }
        memcpy((char *)&api + sp->fn, &best->pfn, sizeof best->pfn);
        memcpy((char *)&api + sp->name, &got->sym, sizeof got->sym);
        /* Sanity: the pointer is the exported function of that name. Only a note: an interposer
         * may hand out wrappers that differ between the two routes. */
        void *direct = dlsym(h, got->sym);
        if (direct != best->pfn)
            fprintf(stderr, "NOTE %s@%d resolved to %p, dlsym(%s) is %p\n", sp->base,
                    best->version, best->pfn, got->sym, direct);
    }
    if (!seq_has_basics(&api)) {
        fprintf(stderr, "cudart_replay: the lookups did not provide the basic entry points\n");
        return 1;
    }
    return run_sequence(&api) || seq_failures ? 1 : 0;
}
