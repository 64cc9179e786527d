/* Replays cuGetProcAddress lookups against one driver library and prints, for each, what the
 * driver answered, so that two drivers (the fake and NVIDIA's) can be compared line by line:
 *   lookups DRIVER LOOKUPS_FILE
 * DRIVER is a path given to dlopen (RTLD_NOW | RTLD_LOCAL); LOOKUPS_FILE has `name version flags`
 * per line (cudart12-lookups.txt's format; a line of only `version flags` is the empty name;
 * version may be negative, flags may be hex; lines starting with # are comments). Output, one
 * line each, on stdout:
 *   DRIVER version=<cuDriverGetVersion>
 *   LOOKUP <name|""> <version> <flags> exported=<0|1> v2=<result>,<status>,<fn> v1=<result>,<fn>
 * `exported`: the driver exports a function of exactly that name (dlsym); v2 is
 * cuGetProcAddress_v2, v1 the four-argument cuGetProcAddress. <status> is the symbolStatus
 * written, or `unset` if the driver left it alone; <fn> is the exported function the returned
 * pointer is (dladdr's symbol, which must start exactly at the pointer), `NULL`, `unset` (the
 * driver did not write *pfn), `outside` (not in the driver) or `inside:<sym>` (inside, not at
 * the start of an exported function).
 *   gcc -std=gnu11 -Wall -o lookups lookups.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_min.h"

typedef __typeof__(&cuGetProcAddress_v2) gpa_v2_fn;
typedef __typeof__(&cuGetProcAddress) gpa_v1_fn;
typedef __typeof__(&cuDriverGetVersion) version_fn;

/* Never a valid answer: tells "left alone" from "written". */
#define UNSET_PTR ((void *)0x5e7)
#define UNSET_STATUS ((CUdriverProcAddressQueryResult)0x5e7)

static void *driver_base;

/* Names the function `p` is, in the words of the header comment. */
static const char *describe(void *p, char *buf, size_t len) {
    if (p == UNSET_PTR) return "unset";
    if (!p) return "NULL";
    Dl_info di;
    if (!dladdr(p, &di) || di.dli_fbase != driver_base) return "outside";
    if (!di.dli_sname) return "inside:?";
    if (di.dli_saddr != p) {
        snprintf(buf, len, "inside:%s", di.dli_sname);
        return buf;
    }
    return di.dli_sname;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3) {
        fprintf(stderr, "usage: %s DRIVER LOOKUPS_FILE\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    gpa_v2_fn v2 = (gpa_v2_fn)dlsym(h, "cuGetProcAddress_v2");
    gpa_v1_fn v1 = (gpa_v1_fn)dlsym(h, "cuGetProcAddress");
    version_fn version = (version_fn)dlsym(h, "cuDriverGetVersion");
    Dl_info self;
    if (!v2 || !v1 || !version || !dladdr((void *)v2, &self)) {
        fprintf(stderr, "%s: not a CUDA driver (no cuGetProcAddress_v2/cuGetProcAddress)\n",
                argv[1]);
        return 1;
    }
    driver_base = self.dli_fbase;
    int dv = 0;
    CUresult r = version(&dv);
    printf("DRIVER version=%d result=%d\n", dv, (int)r);

    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 2;
    }
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char name[128] = "", vs[32], fs[32];
        if (line[0] == '#') continue;
        if (sscanf(line, "%127s %31s %31s", name, vs, fs) != 3) {
            name[0] = 0;
            if (sscanf(line, "%31s %31s", vs, fs) != 2) continue;
        }
        int ver = (int)strtol(vs, NULL, 0);
        unsigned long long flags = strtoull(fs, NULL, 0);
        int exported = name[0] && dlsym(h, name) != NULL;

        void *p2 = UNSET_PTR, *p1 = UNSET_PTR;
        CUdriverProcAddressQueryResult st = UNSET_STATUS;
        CUresult r2 = v2(name, &p2, ver, flags, &st);
        CUresult r1 = v1(name, &p1, ver, flags);
        char b2[160], b1[160], sts[16];
        if (st == UNSET_STATUS)
            snprintf(sts, sizeof sts, "unset");
        else
            snprintf(sts, sizeof sts, "%d", (int)st);
        printf("LOOKUP %s %d %llu exported=%d v2=%d,%s,%s v1=%d,%s\n", name[0] ? name : "\"\"", ver,
               flags, exported, (int)r2, sts, describe(p2, b2, sizeof b2), (int)r1,
               describe(p1, b1, sizeof b1));
    }
    fclose(f);
    return 0;
}
