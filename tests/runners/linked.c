/* Linked against libcuda (-lcuda): calls every recorded driver function by its exported name.
 *   gcc -std=c11 -Wall -o linked linked.c -L<dir> -lcuda -Wl,-rpath,<dir>
 * Exit status: 0, or 1 if the driver answered something the fake must not answer. */
#include "sequence.h"

int main(void) {
    runner_stdout_setup();
    struct cu_api api;
#define FILL_LINKED(slot, sym)                                                                     \
    api.slot = sym;                                                                                \
    api.slot##_name = #sym;
    SEQ_SLOTS(FILL_LINKED)
    return run_sequence(&api) ? 1 : 0;
}
