/* Linked against libcuda (-lcuda): calls every recorded driver function by its exported name.
 *   gcc -std=c11 -Wall -o linked linked.c -L<dir> -lcuda -Wl,-rpath,<dir>
 * -DRUNNER_CUDA_VERSION=<v> builds it as if for an older CUDA (default: cuda_min.h's 12.9): built
 * for 12.2, it does not call cuCtxCreate_v4 (CUDA 12.5), as a program built with that SDK.
 * Exit status: 0, or 1 if the driver answered something it must not answer. */
#include "sequence.h"

#ifndef RUNNER_CUDA_VERSION
#define RUNNER_CUDA_VERSION CUDA_VERSION
#endif

/* CUDA 12.5: drivers before it (such as NVIDIA's 535, API 12.2) do not export it. Weak, so the
 * program still loads on them; the sequence then skips what needs it, as with every NULL slot. */
#pragma weak cuCtxCreate_v4

int main(void) {
    runner_stdout_setup();
    struct cu_api api;
#define FILL_LINKED(slot, sym)                                                                     \
    api.slot = sym;                                                                                \
    api.slot##_name = #sym;
    SEQ_SLOTS(FILL_LINKED)
#if RUNNER_CUDA_VERSION < 12050
    api.CtxCreateV4 = NULL;
#endif
    return run_sequence(&api) ? 1 : 0;
}
