/* Real frames for stack attribution, shared by the programs whose call stacks must carry their
 * own function names: FRAME keeps a function out of inlining and interprocedural optimisation,
 * KEEP_FRAME() after a call keeps the caller's frame on the stack (no tail call). Build with
 * -fno-omit-frame-pointer -fno-optimize-sibling-calls as well. */
#ifndef VRAMTRACE_FRAMES_H
#define VRAMTRACE_FRAMES_H

#if defined(__clang__)
#define FRAME __attribute__((noinline, used))
#else
#define FRAME __attribute__((noipa, used))
#endif
#define KEEP_FRAME() __asm__ __volatile__("" ::: "memory")

#endif
