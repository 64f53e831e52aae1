/*
 * Task stacks.
 *
 * Stacks come from a per-loop pool, sorted into classes by size (a size is
 * rounded up to whole pages). An empty class is refilled by mapping one
 * slab that holds several stacks, so creating a task normally costs no
 * system call at all: it pops a stack from the class's free list, and a
 * finished task pushes it back.
 *
 * Guard pages versus the mapping limit. A PROT_NONE page below a stack
 * turns an overflow into a fault at once, but it splits the slab's mapping:
 * every guarded stack costs two of the 65,530 mappings Linux grants a
 * process by default (vm.max_map_count). cio therefore gives guard pages to
 * the first max_map_count / 4 stacks of the process (about 16,000 by
 * default; half the mappings stay free for the rest of the program) and,
 * once that budget is spent or mprotect fails, carves unguarded slabs that
 * cost one mapping per slab. An unguarded stack is checked two ways: each
 * time its task is switched out, the saved stack pointer must lie above a
 * red zone at the bottom; and when the task ends, the canary word at the
 * lowest address must still be zero. An overflow is then caught at the next
 * switch (or the task's end) rather than at the faulting instruction, and
 * the process stops with the same message.
 *
 * Overflow report. A guarded overflow raises SIGSEGV on a stack that no
 * longer has room, so the handler runs on an alternate signal stack. It
 * compares the fault address with the guard page of the task running in
 * that thread; on a match it writes "cio: task 'NAME' overflowed its
 * N-byte stack" and aborts. Any other fault is handed back to the handler
 * that was installed before cio's.
 */
#include "stack.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/fault.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CIO__HAVE_VALGRIND 1
#endif
#endif

#define STACKS_PER_SLAB_TARGET ((size_t)2 * 1024 * 1024)
#define STACKS_PER_SLAB_MAX 64

/* A free stack keeps its free-list link and flags in its top bytes. */
typedef struct free_stack {
    void *next;
    uint64_t guarded;
    void *lo;
} free_stack;

static size_t page_size(void) {
    static atomic_size_t cached;
    size_t size = atomic_load_explicit(&cached, memory_order_relaxed);
    if (size == 0) {
        long v = sysconf(_SC_PAGESIZE);
        size = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&cached, size, memory_order_relaxed);
    }
    return size;
}

/* Guarded stacks the process may still create; initialised on first use. */
static atomic_long guard_budget = -1;

static long read_max_map_count(void) {
    long value = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &value) != 1) value = 65530;
        fclose(f);
    }
    return value;
}

static bool take_guard(void) {
    long budget = atomic_load(&guard_budget);
    if (budget < 0) {
        long initial = read_max_map_count() / 4;
        atomic_compare_exchange_strong(&guard_budget, &budget, initial);
        budget = atomic_load(&guard_budget);
    }
    while (budget > 0) {
        if (atomic_compare_exchange_weak(&guard_budget, &budget, budget - 1)) return true;
    }
    return false;
}

static void give_back_guards(size_t n) {
    atomic_fetch_add(&guard_budget, (long)n);
}

size_t cio__stack_guard_budget(void) {
    long budget = atomic_load(&guard_budget);
    if (budget < 0) {
        take_guard();
        give_back_guards(1);
        budget = atomic_load(&guard_budget);
    }
    return (size_t)budget;
}

void cio__stack_set_guard_budget(size_t budget) {
    atomic_store(&guard_budget, (long)budget);
}

size_t cio__stack_round(size_t size) {
    size_t page = page_size();
    if (size < 16 * 1024) size = 16 * 1024;
    return (size + page - 1) & ~(page - 1);
}

static cio__stack_class *find_class(cio__stack_pool *pool, size_t size) {
    for (size_t i = 0; i < pool->class_count; i++)
        if (pool->classes[i].size == size) return &pool->classes[i];
    cio__stack_class *grown =
        cio__realloc(pool->classes, (pool->class_count + 1) * sizeof *pool->classes);
    if (!grown) return NULL;
    pool->classes = grown;
    cio__stack_class *c = &pool->classes[pool->class_count++];
    c->size = size;
    c->free_list = NULL;
    return c;
}

static free_stack *header_of(void *lo, size_t size) {
    return (free_stack *)((char *)lo + size - sizeof(free_stack));
}

static void push_free(cio__stack_class *c, void *lo, bool guarded) {
    free_stack *h = header_of(lo, c->size);
    h->next = c->free_list;
    h->guarded = guarded;
    h->lo = lo;
    c->free_list = h;
}

/* Maps one slab of stacks for class c and puts them on its free list. */
static int refill(cio__stack_pool *pool, cio__stack_class *c) {
    size_t page = page_size();
    size_t stride = c->size + page; /* every stack keeps room for a guard page */
    size_t count = STACKS_PER_SLAB_TARGET / stride;
    if (count < 1) count = 1;
    if (count > STACKS_PER_SLAB_MAX) count = STACKS_PER_SLAB_MAX;
    if (pool->slab_count == pool->slab_cap) {
        size_t cap = pool->slab_cap ? pool->slab_cap * 2 : 8;
        cio__stack_slab *grown = cio__realloc(pool->slabs, cap * sizeof *grown);
        if (!grown) return -ENOMEM;
        pool->slabs = grown;
        pool->slab_cap = cap;
    }
    size_t length = count * stride;
    void *base = cio__sys_mmap(length, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (base == MAP_FAILED) return -ENOMEM;

    /* Decide the guard for the whole slab: all of it or none of it, so the
     * mapping count stays what the budget says. */
    bool guarded = true;
    size_t taken = 0;
    for (; taken < count; taken++) {
        if (!take_guard()) break;
    }
    if (taken < count) {
        give_back_guards(taken);
        guarded = false;
    } else {
        for (size_t i = 0; i < count; i++) {
            if (cio__sys_mprotect((char *)base + i * stride, page, PROT_NONE) != 0) {
                /* Out of mappings after all: undo and fall back to canaries. */
                mprotect(base, length, PROT_READ | PROT_WRITE);
                give_back_guards(count);
                guarded = false;
                break;
            }
        }
    }
    cio__stack_slab *slab = &pool->slabs[pool->slab_count++];
    slab->base = base;
    slab->length = length;
    slab->stack_count = count;
    slab->stack_size = c->size;
    slab->guarded = guarded;
    /* Push in reverse so stacks are handed out from low to high addresses. */
    for (size_t i = count; i-- > 0;) {
        void *lo = (char *)base + i * stride + page;
#ifdef CIO__HAVE_VALGRIND
        VALGRIND_STACK_REGISTER(lo, (char *)lo + c->size);
#endif
        push_free(c, lo, guarded);
    }
    return 0;
}

int cio__stack_get(cio__stack_pool *pool, size_t size, cio__stack *out) {
    /* Nearly every task asks for the loop's default size: remember the
     * class of the last request and skip the rounding and the search. */
    cio__stack_class *c;
    if (size == pool->last_request && pool->class_count) {
        c = &pool->classes[pool->last_class];
    } else {
        size_t requested = size;
        c = find_class(pool, cio__stack_round(size));
        if (!c) return -ENOMEM;
        pool->last_request = requested;
        pool->last_class = (size_t)(c - pool->classes);
    }
    size = c->size;
    if (!c->free_list) {
        int rc = refill(pool, c);
        if (rc < 0) return rc;
    }
    free_stack *h = c->free_list;
    c->free_list = h->next;
    out->lo = h->lo;
    out->size = size;
    out->guarded = h->guarded != 0;
    /* An unguarded stack's canary (zero) is already in place: fresh memory
     * is zero, and a reused stack's previous task ended with it intact. */
    return 0;
}

void cio__stack_put(cio__stack_pool *pool, const cio__stack *stack) {
    cio__stack_class *c = NULL;
    if (pool->class_count && pool->classes[pool->last_class].size == stack->size)
        c = &pool->classes[pool->last_class];
    for (size_t i = 0; !c && i < pool->class_count; i++)
        if (pool->classes[i].size == stack->size) c = &pool->classes[i];
    if (!c) return; /* cannot happen: the class made the stack */
    push_free(c, stack->lo, stack->guarded);
}

void cio__stack_pool_destroy(cio__stack_pool *pool) {
    for (size_t i = 0; i < pool->slab_count; i++) {
        cio__stack_slab *s = &pool->slabs[i];
        munmap(s->base, s->length);
        if (s->guarded) give_back_guards(s->stack_count);
    }
    cio__free(pool->slabs);
    cio__free(pool->classes);
    memset(pool, 0, sizeof *pool);
}

/* ---- overflow detection ------------------------------------------------ */

static struct sigaction previous_segv;
static _Atomic(cio__running_stack_fn) running_stack_hook;

void cio__stack_set_running_hook(cio__running_stack_fn fn) {
    atomic_store(&running_stack_hook, fn);
}
static atomic_int handler_installed;

/* Formats without stdio: the handler must stay async-signal-safe. */
static size_t append(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at + 1 < cap) buf[at++] = *s++;
    return at;
}

static size_t append_size(char *buf, size_t at, size_t cap, size_t v) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at + 1 < cap) buf[at++] = digits[--n];
    return at;
}

void cio__stack_overflow_abort(const char *task_name, size_t size) {
    char msg[256];
    size_t at = append(msg, 0, sizeof msg, "cio: task '");
    at = append(msg, at, sizeof msg, task_name ? task_name : "?");
    at = append(msg, at, sizeof msg, "' overflowed its ");
    at = append_size(msg, at, sizeof msg, size);
    at = append(msg, at, sizeof msg, "-byte stack\n");
    ssize_t ignored = write(STDERR_FILENO, msg, at);
    (void)ignored;
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void on_segv(int sig, siginfo_t *info, void *uctx) {
    (void)uctx;
    char name[64];
    cio__running_stack_fn running = atomic_load(&running_stack_hook);
    const cio__stack *s = running ? running(name, sizeof name) : NULL;
    if (s && s->guarded) {
        char *addr = info->si_addr;
        char *lo = s->lo;
        if (addr < lo && addr >= lo - page_size()) cio__stack_overflow_abort(name, s->size);
    }
    /* Not ours: restore the previous disposition and let the fault repeat. */
    sigaction(sig, &previous_segv, NULL);
}

void cio__stack_install_overflow_handler(void) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&handler_installed, &expected, 1)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &previous_segv);
    }
}
