/* The assembly context switch, on its own (also run on aarch64 under qemu). */
#include "test.h"

#include <stdlib.h>

#include "core/context.h"

#define STACK_SIZE (256 * 1024)

static cio__ctx main_ctx, co_ctx;
static volatile int counter;

static void ping(void *arg) {
    int rounds = PTRI(arg);
    cio__ctx_arrived(&co_ctx);
    for (int i = 0; i < rounds; i++) {
        counter++;
        cio__ctx_jump(&co_ctx, &main_ctx, 0);
    }
    cio__ctx_jump(&co_ctx, &main_ctx, 1);
    abort(); /* never resumed */
}

TEST(ping_pong) {
    void *stack = malloc(STACK_SIZE);
    cio__ctx_make(&co_ctx, stack, STACK_SIZE, ping, IPTR(1000));
    for (int i = 0; i < 1000; i++) {
        cio__ctx_jump(&main_ctx, &co_ctx, 0);
        CHECK_EQ(counter, i + 1);
    }
    cio__ctx_jump(&main_ctx, &co_ctx, 0); /* lets it finish */
    free(stack);
}

/* Callee-saved registers must survive a switch: keep many live values,
 * integer and floating point, across switches. The compiler keeps some of
 * them in callee-saved registers (rbx, r12-r15 / x19-x28, d8-d15). */
static double fsum;
static long isum;

static void clobber(void *arg) {
    (void)arg;
    cio__ctx_arrived(&co_ctx);
    for (;;) {
        /* Use as many registers as possible with values unlike the caller's. */
        volatile double a = 1e9, b = -3.5, c = 7.25;
        volatile long x = -1, y = 0x5555, z = 0x7777;
        fsum += a + b + c;
        isum += x + y + z;
        cio__ctx_jump(&co_ctx, &main_ctx, 0);
    }
}

__attribute__((noinline)) static void check_preserved(void) {
    double d0 = 1.5, d1 = 2.5, d2 = 3.5, d3 = 4.5, d4 = 5.5, d5 = 6.5, d6 = 7.5, d7 = 8.5;
    long l0 = 11, l1 = 22, l2 = 33, l3 = 44, l4 = 55, l5 = 66;
    for (int i = 0; i < 100; i++) {
        cio__ctx_jump(&main_ctx, &co_ctx, 0);
        d0 += 1; d1 += 1; d2 += 1; d3 += 1; d4 += 1; d5 += 1; d6 += 1; d7 += 1;
        l0 += 1; l1 += 1; l2 += 1; l3 += 1; l4 += 1; l5 += 1;
    }
    CHECK_NEAR(d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7, 40.0 + 800.0, 1e-9);
    CHECK_EQ(l0 + l1 + l2 + l3 + l4 + l5, 231 + 600);
}

TEST(callee_saved_registers_survive) {
    void *stack = malloc(STACK_SIZE);
    cio__ctx_make(&co_ctx, stack, STACK_SIZE, clobber, NULL);
    check_preserved();
    CHECK(isum != 0);
    free(stack);
}

/* The trampoline must give the entry function an ABI-aligned stack:
 * 16 bytes at the call on both ISAs. A 16-aligned local proves it. */
static uintptr_t seen_alignment;

static void check_alignment(void *arg) {
    (void)arg;
    cio__ctx_arrived(&co_ctx);
    _Alignas(16) volatile char probe[16];
    probe[0] = 1;
    seen_alignment = (uintptr_t)probe % 16;
    /* A double and a vector-friendly memset in an aligned frame must work. */
    char buf[64];
    memset(buf, 0x5a, sizeof buf);
    volatile double d = 3.0;
    d = d * 2.0;
    CHECK_NEAR(d, 6.0, 0);
    cio__ctx_jump(&co_ctx, &main_ctx, 1);
}

TEST(entry_stack_is_aligned) {
    void *stack = malloc(STACK_SIZE);
    seen_alignment = 99;
    cio__ctx_make(&co_ctx, stack, STACK_SIZE, check_alignment, NULL);
    cio__ctx_jump(&main_ctx, &co_ctx, 0);
    CHECK_EQ(seen_alignment, 0);
    free(stack);
}

/* Many contexts resumed round robin, each with its own stack. */
#define RING 16
static cio__ctx ring_ctx[RING];
static int ring_counts[RING];

static void ring_member(void *arg) {
    int i = PTRI(arg);
    cio__ctx_arrived(&ring_ctx[i]);
    for (;;) {
        ring_counts[i]++;
        cio__ctx_jump(&ring_ctx[i], &main_ctx, 0);
    }
}

TEST(round_robin_ring) {
    void *stacks[RING];
    for (int i = 0; i < RING; i++) {
        stacks[i] = malloc(64 * 1024);
        cio__ctx_make(&ring_ctx[i], stacks[i], 64 * 1024, ring_member, IPTR(i));
    }
    for (int round = 0; round < 100; round++)
        for (int i = 0; i < RING; i++) cio__ctx_jump(&main_ctx, &ring_ctx[i], 0);
    for (int i = 0; i < RING; i++) CHECK_EQ(ring_counts[i], 100);
    for (int i = 0; i < RING; i++) free(stacks[i]);
}
