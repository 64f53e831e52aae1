/*
 * Context switching between task stacks.
 *
 * cio__ctx_switch (src/arch/switch_<isa>.S) saves the callee-saved registers
 * of the running context on its own stack, stores the stack pointer in
 * *save_sp, loads load_sp and pops the registers saved there. Everything
 * else the ABI lets a call clobber needs no saving, because the switch is
 * an ordinary function call for the compiler.
 *
 * cio__ctx_jump wraps it with the announcements AddressSanitizer and
 * ThreadSanitizer need to follow a stack switch (their "fiber" APIs);
 * Valgrind is told about each stack once, when the stack is made (stack.c).
 *
 * Floating-point control state (x87 control word and MXCSR on x86-64, FPCR
 * on aarch64) is shared by all tasks of a thread, not saved per task: a task
 * that changes the rounding mode changes it for the thread, as a function
 * call would. This keeps the switch at its minimum; docs/design.md says so.
 */
#ifndef CIO_CONTEXT_H
#define CIO_CONTEXT_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define CIO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CIO__ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define CIO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CIO__TSAN 1
#endif
#endif

typedef struct cio__ctx {
    void *sp;              /* saved stack pointer while not running */
#if defined(CIO__ASAN) || defined(CIO__TSAN)
    /* What the sanitizers are told at each switch; a plain build keeps
     * only sp, as every idle task carries a context. */
    const void *stack_lo;  /* stack bounds, for AddressSanitizer */
    size_t stack_size;
    void *asan_fake_stack;
    void *tsan_fiber;      /* ThreadSanitizer's fiber for this context */
#endif
} cio__ctx;

void cio__ctx_switch(void **save_sp, void *load_sp);

/* Entered by the first switch into a new context: calls entry(arg), which
 * must never return (it switches away for good instead). */
void cio__ctx_trampoline(void);

/* Prepares ctx so that switching to it runs entry(arg) on the stack
 * [lo, lo + size). */
void cio__ctx_make(cio__ctx *ctx, void *lo, size_t size, void (*entry)(void *), void *arg);

#if defined(CIO__ASAN) || defined(CIO__TSAN)
/* Switches from the running context (saved in from) to to. exiting says that
 * from will never be resumed, so its sanitizer state can be dropped. */
void cio__ctx_jump(cio__ctx *from, cio__ctx *to, int exiting);

/* Called first thing in a new context, before any other code runs on it. */
void cio__ctx_arrived(cio__ctx *self);
#else
/* Without sanitizers there is nothing to announce: the switch is the whole
 * job, and inlining it saves a call on the hottest path of the library. */
static inline void cio__ctx_jump(cio__ctx *from, cio__ctx *to, int exiting) {
    (void)exiting;
    cio__ctx_switch(&from->sp, to->sp);
}

static inline void cio__ctx_arrived(cio__ctx *self) {
    (void)self;
}
#endif

/* Releases what the sanitizers keep for a context made by cio__ctx_make;
 * called from another context once it will never run again. */
void cio__ctx_destroy(cio__ctx *ctx);

#endif
