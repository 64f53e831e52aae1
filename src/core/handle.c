/*
 * Scheduled callbacks: call_soon, call_later, call_at and their handles,
 * and call_soon_threadsafe (through the inbox, inbox.c, from another
 * thread).
 *
 * Each scheduled callback is a node taken from a per-loop pool. A node is a
 * job (so it can sit in the ready queue) and a timer (so it can sit in the
 * heap). The pool hands nodes out from a free list and grows by blocks, so
 * scheduling a callback allocates only while the pool grows. Every time a
 * node is handed out it gets a fresh id; a cio_handle remembers the id, so a
 * handle to a callback that already ran (its node perhaps reused since) is
 * recognised and ignored instead of cancelling a stranger.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "handle.h"

/*
 * The live-loop table. A handle must stay safe to use after its loop closed
 * (the node pool is gone) and after the loop was freed (the loop is gone),
 * without allocating per handle and without a lock on the hot path. So
 * every loop occupies a slot of a process-wide table for its whole life,
 * from cio_loop_new to cio_loop_free, and a handle keeps the key of that
 * slot: its index and the generation of the occupant. Looking a key up is
 * two loads: the slot's current key (atomic) and, if it is still this
 * loop's, the loop pointer. The table grows by chunks that are never freed,
 * so a lookup never reads freed memory, whatever the handle's age. Taking
 * and giving back slots (loop creation and freeing) is under a mutex.
 *
 * A slot's key is generation << SLOT_BITS | index; the generation is odd
 * while a loop occupies the slot and even while it is free, so the key of a
 * live loop differs from every key an earlier occupant gave out, and a
 * zero-initialised handle (key 0) never matches.
 */
#define SLOT_BITS 24
#define SLOT_CHUNK 256
#define SLOT_CHUNKS ((1u << SLOT_BITS) / SLOT_CHUNK)

typedef struct loop_slot {
    _Atomic uint64_t key;
    cio_loop *loop;
    uint32_t next_free;
} loop_slot;

static loop_slot *_Atomic slot_chunks[SLOT_CHUNKS];
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t slot_count;
static uint32_t slot_free = UINT32_MAX;

/* Where a reader outside the process finds every loop (debug/debug_table.c
 * puts this in the .cio_debug section). */
const cio__loop_registry_layout cio__loop_registry = {
    .chunks = (const void *)slot_chunks,
    .count = &slot_count,
    .chunk_slots = SLOT_CHUNK,
    .max_chunks = SLOT_CHUNKS,
    .slot_size = sizeof(loop_slot),
    .slot_loop = offsetof(loop_slot, loop),
};

static loop_slot *slot_at(uint32_t index) {
    loop_slot *chunk = atomic_load_explicit(&slot_chunks[index / SLOT_CHUNK], memory_order_acquire);
    return chunk ? &chunk[index % SLOT_CHUNK] : NULL;
}

/* Every open loop of the process is in the table, so cio_close() walks it
 * to make each loop that knows a descriptor forget it. Only loops that
 * belong to the calling thread (it made them, or ran them last) and to this
 * process: another thread's loop may be in use at this very moment, and a
 * loop inherited from the parent of a fork shares the parent's epoll
 * instance, whose registrations are not the child's to change. */
void cio__loop_each_local(void (*fn)(cio_loop *loop, void *arg), void *arg) {
    uintptr_t self = (uintptr_t)pthread_self();
    pthread_mutex_lock(&slot_lock);
    for (uint32_t i = 0; i < slot_count; i++) {
        cio_loop *loop = slot_at(i)->loop;
        if (!loop || atomic_load_explicit(&loop->owner, memory_order_relaxed) != self) continue;
        if (loop->generation != cio__fork_generation) continue;
        if (!loop->closed && !loop->closing) fn(loop, arg);
    }
    pthread_mutex_unlock(&slot_lock);
}

/* In a forked child: another thread of the parent may have held the lock
 * when it forked, and that thread does not exist in the child. */
void cio__loop_slots_after_fork(void) {
    pthread_mutex_init(&slot_lock, NULL);
}

int cio__loop_slot_acquire(cio_loop *loop) {
    int rc = 0;
    pthread_mutex_lock(&slot_lock);
    uint32_t index = slot_free;
    if (index != UINT32_MAX) {
        slot_free = slot_at(index)->next_free;
    } else if (slot_count == SLOT_CHUNKS * SLOT_CHUNK) {
        rc = -ENOMEM;
    } else {
        index = slot_count;
        if (index % SLOT_CHUNK == 0) {
            /* Never freed: a handle may look a slot up at any later time.
             * Plain calloc: this is process infrastructure, made once, not
             * an allocation of the loop's that fault injection should
             * count. */
            loop_slot *chunk = calloc(SLOT_CHUNK, sizeof *chunk);
            if (!chunk) rc = -ENOMEM;
            else atomic_store_explicit(&slot_chunks[index / SLOT_CHUNK], chunk, memory_order_release);
        }
        if (rc == 0) slot_count++;
    }
    if (rc == 0) {
        loop_slot *slot = slot_at(index);
        uint64_t generation = (atomic_load_explicit(&slot->key, memory_order_relaxed) >> SLOT_BITS) + 1;
        slot->loop = loop;
        loop->key = generation << SLOT_BITS | index;
        atomic_store_explicit(&slot->key, loop->key, memory_order_release);
    }
    pthread_mutex_unlock(&slot_lock);
    return rc;
}

void cio__loop_slot_release(cio_loop *loop) {
    uint32_t index = (uint32_t)(loop->key & ((1u << SLOT_BITS) - 1));
    pthread_mutex_lock(&slot_lock);
    loop_slot *slot = slot_at(index);
    uint64_t generation = (loop->key >> SLOT_BITS) + 1;
    atomic_store_explicit(&slot->key, generation << SLOT_BITS | index, memory_order_release);
    slot->loop = NULL;
    slot->next_free = slot_free;
    slot_free = index;
    pthread_mutex_unlock(&slot_lock);
}

/* A slot's key matches only while the loop that handed it out occupies the
 * slot: a freed slot's key has moved on to an even generation, and a slot
 * never used has no loop. */
static inline cio_loop *loop_by_key(uint64_t key) {
    uint32_t index = (uint32_t)(key & ((1u << SLOT_BITS) - 1));
    loop_slot *slot = slot_at(index);
    if (!slot || atomic_load_explicit(&slot->key, memory_order_acquire) != key) return NULL;
    return slot->loop;
}

cio_loop *cio__loop_by_key(uint64_t key) {
    return loop_by_key(key);
}

#define NODES_PER_BLOCK 256
#define HANDLE_CANCELLED_BIT (UINT64_C(1) << 63)

/* Another block of nodes for the free list: 0, or -ENOMEM. Out of line, so
 * that taking a node from the list sets up no frame. */
__attribute__((noinline)) static int add_node_block(cio_loop *loop) {
    cio__node **blocks =
        cio__realloc(loop->node_blocks, (loop->node_block_count + 1) * sizeof *blocks);
    if (!blocks) return -ENOMEM;
    loop->node_blocks = blocks;
    cio__node *block = cio__calloc(NODES_PER_BLOCK, sizeof *block);
    if (!block) return -ENOMEM;
    blocks[loop->node_block_count++] = block;
    /* A node belongs to one loop for good: its loop is written once,
     * here, so that debug mode can check the thread of a call on a
     * handle (from any thread) before reading anything the loop's own
     * thread keeps changing. */
    for (size_t i = NODES_PER_BLOCK; i-- > 0;) {
        block[i].loop = loop;
        block[i].free_next = loop->free_nodes;
        loop->free_nodes = &block[i];
    }
    return 0;
}

/* Inlined into call_soon, the hottest taker; other files call the copy
 * below. */
__attribute__((always_inline)) static inline cio__node *node_alloc(cio_loop *loop) {
    if (__builtin_expect(!loop->free_nodes, 0) && add_node_block(loop) < 0) return NULL;
    cio__node *node = loop->free_nodes;
    loop->free_nodes = node->free_next;
    node->id = ++loop->node_ids;
    node->timer.index = CIO__TIMER_UNARMED;
    node->timer.job.run = NULL;
    cio__list_init(&node->timer.job.link);
    return node;
}

cio__node *cio__node_alloc(cio_loop *loop) {
    return node_alloc(loop);
}

void cio__node_free(cio_loop *loop, cio__node *node) {
    node->id = 0;
    node->state = CIO__NODE_FREE;
    node->callback = NULL;
    node->done = NULL;
    node->future = NULL;
    node->arg = NULL;
    node->free_next = loop->free_nodes;
    loop->free_nodes = node;
}

void cio__node_pool_destroy(cio_loop *loop) {
    for (size_t i = 0; i < loop->node_block_count; i++) cio__free(loop->node_blocks[i]);
    cio__free(loop->node_blocks);
    loop->node_blocks = NULL;
    loop->node_block_count = 0;
    loop->free_nodes = NULL;
}

/* Runs a call_soon / call_later callback popped from the ready queue. The
 * node is recycled before the callback runs, so the callback may schedule
 * again without growing the pool. */
static void run_callback(cio__job *job) {
    cio__node *node = CIO__CONTAINER_OF(job, cio__node, job);
    cio_loop *loop = node->loop;
    cio_callback_fn fn = node->callback;
    void *arg = node->arg;
    bool cancelled = node->state == CIO__NODE_CANCELLED;
    cio__node_free(loop, node);
    if (!cancelled) fn(loop, arg);
}

/* A call_later callback: the loop runs it when its timer's job comes up. */
static void fire_timer(cio__timer *timer) {
    cio__node *node = CIO__CONTAINER_OF(timer, cio__node, timer);
    run_callback(&node->job);
}

/* A call_soon handle's when_ns: no timer's deadline is ever this low
 * (cio__deadline clamps to INT64_MIN + 1), so a timer due before loop time
 * 0 (call_at(-20)) still reads its own deadline. */
#define CIO__HANDLE_SOON INT64_MIN

static void fill_handle(cio_handle *handle, cio__node *node, int64_t when) {
    if (!handle) return;
    handle->node = node;
    handle->id = node->id;
    handle->when_ns = when;
    handle->loop_key = node->loop->key;
}

/* A call that fails leaves an inert handle, so that cancelling it later is
 * harmless even if it held garbage before (convention 3 of cio.h). */
static void clear_handle(cio_handle *handle) {
    if (handle) *handle = (cio_handle){0};
}

static inline void queue_callback(cio_loop *loop, cio__node *node, cio_callback_fn fn, void *arg,
                                  cio_handle *handle) {
    node->callback = fn;
    node->arg = arg;
    node->state = CIO__NODE_READY;
    node->job.run = run_callback;
    cio__ready_push(loop, &node->job);
    fill_handle(handle, node, CIO__HANDLE_SOON);
}

/* Everything call_soon does besides its common case: bad arguments, a loop
 * that refuses work, a pool with no free node. */
__attribute__((noinline)) static int call_soon_slow(cio_loop *loop, cio_callback_fn fn, void *arg,
                                                    cio_handle *handle) {
    int rc = !loop || !fn ? -EINVAL : cio__loop_check(loop);
    cio__node *node = rc < 0 ? NULL : node_alloc(loop);
    if (!node) {
        clear_handle(handle);
        return rc < 0 ? rc : -ENOMEM;
    }
    queue_callback(loop, node, fn, arg, handle);
    return 0;
}

/* The common case (an open loop that is not in debug mode, a node on the
 * free list) calls no function, so the compiler saves no registers for it:
 * this is the step a callback chain pays once per loop iteration. */
int cio_call_soon(cio_loop *loop, cio_callback_fn fn, void *arg, cio_handle *handle) {
    if (__builtin_expect(!loop || !fn || cio__loop_check_fast(loop) < 0 || !loop->free_nodes, 0))
        return call_soon_slow(loop, fn, arg, handle);
    queue_callback(loop, node_alloc(loop), fn, arg, handle);
    return 0;
}

/* A failure leaves the handle inert (cleared); success fills it, so the
 * common case writes it once. */
static int schedule_at_ns(cio_loop *loop, int64_t when, cio_callback_fn fn, void *arg,
                          cio_handle *handle) {
    int rc = cio__loop_check(loop);
    if (rc == 0) rc = cio__timer_heap_reserve(&loop->timers, 1);
    cio__node *node = rc < 0 ? NULL : node_alloc(loop);
    if (__builtin_expect(!node, 0)) {
        clear_handle(handle);
        return rc < 0 ? rc : -ENOMEM;
    }
    node->callback = fn;
    node->arg = arg;
    node->state = CIO__NODE_TIMER;
    node->job.run = run_callback;
    node->timer.fire = fire_timer;
    cio__loop_arm_timer(loop, &node->timer, when);
    fill_handle(handle, node, when);
    return 0;
}

int cio_call_at(cio_loop *loop, double when, cio_callback_fn fn, void *arg, cio_handle *handle) {
    if (!loop || !fn || isnan(when)) {
        clear_handle(handle);
        return -EINVAL;
    }
    return schedule_at_ns(loop, cio__seconds_to_ns(when), fn, arg, handle);
}

/*
 * cio_call_soon_threadsafe: a heap record posted to the inbox. It runs as
 * a callback of the batch after the drain, like asyncio's handle appended
 * to _ready; dropped without running if the loop closes first.
 */
typedef struct ts_call {
    cio__xjob x;
    cio_loop *loop;
    cio_callback_fn fn;
    void *arg;
} ts_call;

static void ts_call_run(cio__xjob *x) {
    ts_call *c = CIO__CONTAINER_OF(x, ts_call, x);
    cio_loop *loop = c->loop;
    cio_callback_fn fn = c->fn;
    void *arg = c->arg;
    cio__free(c);
    fn(loop, arg);
}

static void ts_call_discard(cio__xjob *x) {
    cio__free(CIO__CONTAINER_OF(x, ts_call, x));
}

int cio_call_soon_threadsafe(cio_loop *loop, cio_callback_fn fn, void *arg) {
    if (!loop || !fn) return -EINVAL;
    /* From the loop's own thread (running it, or its owner while it does
     * not run) the call joins the ready queue at once, as asyncio appends
     * it to _ready: FIFO with call_soon's callbacks, where the inbox would
     * put it behind those scheduled after it. */
    if (cio_running_loop() == loop ||
        (atomic_load_explicit(&loop->owner, memory_order_relaxed) == (uintptr_t)pthread_self() &&
         loop->generation == cio__fork_generation && !loop->running))
        return cio_call_soon(loop, fn, arg, NULL);
    ts_call *c = cio__malloc(sizeof *c);
    if (!c) return -ENOMEM;
    cio__xjob_init(&c->x, ts_call_run, ts_call_discard);
    c->loop = loop;
    c->fn = fn;
    c->arg = arg;
    int rc = cio__inbox_post_call(loop, &c->x);
    if (rc < 0) cio__free(c);
    return rc;
}

int cio_call_later(cio_loop *loop, double delay, cio_callback_fn fn, void *arg,
                   cio_handle *handle) {
    if (!loop || !fn || isnan(delay)) {
        clear_handle(handle);
        return -EINVAL;
    }
    return schedule_at_ns(loop, cio__deadline_after(delay), fn, arg, handle);
}

/* The loop of a handle is found through the live-loop table, never through
 * its node (whose pool may be freed), and checked for the calling thread
 * before anything the loop's thread writes is read; only an open loop
 * still has its node pool. One lookup serves both. */
int cio_handle_cancel(cio_handle *handle) {
    if (!handle) return -EINVAL;
    if (!handle->node || (handle->id & HANDLE_CANCELLED_BIT) || handle->id == 0) return 0;
    cio_loop *loop = loop_by_key(handle->loop_key);
    /* As asyncio's Handle.cancel(), the handle reads as cancelled from now
     * on even when there was nothing left to cancel (the callback ran, or
     * the loop is closed); the return value says whether there was. An
     * open loop of this process, not in debug mode, passes one test. */
    if (loop && cio__loop_check_fast(loop) < 0) {
        int rc = cio__loop_check_thread(loop);
        if (rc < 0) return rc;
        if (loop->closed || loop->closing) loop = NULL;
    }
    handle->id |= HANDLE_CANCELLED_BIT;
    if (!loop) return 0;
    cio__node *node = handle->node;
    if (node->id != (handle->id & ~HANDLE_CANCELLED_BIT)) return 0;
    int cancelled = 0;
    switch (node->state) {
    case CIO__NODE_TIMER:
        cio__loop_disarm_timer(node->loop, &node->timer);
        cio__node_free(node->loop, node);
        cancelled = 1;
        break;
    case CIO__NODE_READY:
        node->state = CIO__NODE_CANCELLED; /* freed when the ready queue pops it */
        cancelled = 1;
        break;
    default:
        break;
    }
    return cancelled;
}

int cio_handle_cancelled(const cio_handle *handle) {
    return handle && (handle->id & HANDLE_CANCELLED_BIT) != 0;
}

double cio_handle_when(const cio_handle *handle) {
    if (!handle) return NAN;
    if (handle->when_ns == CIO__HANDLE_SOON) return -1.0;
    return (double)handle->when_ns / 1e9;
}
