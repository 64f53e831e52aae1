/*
 * Building new contexts and switching with sanitizer announcements. The
 * register work itself is in src/arch/switch_<isa>.S.
 */
#include "context.h"
#include "base/fault.h"

#include <stdint.h>
#include <string.h>

#ifdef CIO__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CIO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(CIO__ASAN) || defined(CIO__TSAN)
/* The context that switched to the running one; read by cio__ctx_arrived to
 * learn the bounds of stacks AddressSanitizer reports (the thread's own
 * stack is not known in advance). */
static CIO__TLS cio__ctx *switched_from;
#endif

void cio__ctx_make(cio__ctx *ctx, void *lo, size_t size, void (*entry)(void *), void *arg) {
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    memset(ctx, 0, sizeof *ctx);
#if defined(CIO__ASAN) || defined(CIO__TSAN)
    ctx->stack_lo = lo;
    ctx->stack_size = size;
#endif
#ifdef CIO__TSAN
    ctx->tsan_fiber = __tsan_create_fiber(0);
#endif
#if defined(__x86_64__)
    /* Seven saved words (six registers and the return address), then two
     * zero words: the trampoline starts with rsp = top - 16, 16-byte
     * aligned, and a zero return address above it ends any backtrace. */
    uintptr_t *sp = (uintptr_t *)(top - 9 * sizeof(uintptr_t));
    memset(sp, 0, 9 * sizeof(uintptr_t));
    sp[2] = (uintptr_t)entry;              /* r13 */
    sp[3] = (uintptr_t)arg;                /* r12 */
    sp[6] = (uintptr_t)cio__ctx_trampoline; /* return address */
    ctx->sp = sp;
#elif defined(__aarch64__)
    uintptr_t *sp = (uintptr_t *)(top - 176);
    memset(sp, 0, 176);
    sp[0] = (uintptr_t)arg;                 /* x19 */
    sp[1] = (uintptr_t)entry;               /* x20 */
    sp[10] = 0;                             /* x29: end of the frame chain */
    sp[11] = (uintptr_t)cio__ctx_trampoline; /* x30 */
    ctx->sp = sp;
#else
#error "cio has a context switch for x86-64 and aarch64 only"
#endif
}

#if defined(CIO__ASAN) || defined(CIO__TSAN)
void cio__ctx_arrived(cio__ctx *self) {
#ifdef CIO__ASAN
    const void *lo = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, &lo, &size);
    if (switched_from && switched_from->stack_lo == NULL) {
        switched_from->stack_lo = lo;
        switched_from->stack_size = size;
    }
#else
    (void)self;
#endif
}

void cio__ctx_jump(cio__ctx *from, cio__ctx *to, int exiting) {
#ifdef CIO__ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &from->asan_fake_stack, to->stack_lo,
                                   to->stack_size);
#else
    (void)exiting;
#endif
#ifdef CIO__TSAN
    /* The context running now may be the thread's own, never announced. */
    if (!from->tsan_fiber) from->tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    switched_from = from;
    cio__ctx_switch(&from->sp, to->sp);
    cio__ctx_arrived(from);
}
#endif

void cio__ctx_destroy(cio__ctx *ctx) {
#ifdef CIO__TSAN
    if (ctx->tsan_fiber) __tsan_destroy_fiber(ctx->tsan_fiber);
    ctx->tsan_fiber = NULL;
#else
    (void)ctx;
#endif
}
