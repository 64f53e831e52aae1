/*
 * Callback nodes: the pooled object behind a cio_handle, and behind every
 * done callback a program registers on a future.
 */
#ifndef CIO_CORE_HANDLE_H
#define CIO_CORE_HANDLE_H

#include "loop.h"

enum cio__node_state {
    CIO__NODE_FREE = 0,
    CIO__NODE_TIMER,     /* armed in the timer heap */
    CIO__NODE_READY,     /* in the ready queue */
    CIO__NODE_WAITING,   /* a done callback registered on a pending future */
    CIO__NODE_CANCELLED, /* cancelled while in the ready queue; freed when popped */
    /* An entered timeout scope (flow/timeout.c): the node holds its timer,
     * future is its task, arg the caller's cio_timeout, and free_next
     * links the task's entered scopes. */
    CIO__NODE_SCOPE,
    CIO__NODE_SCOPE_EXPIRING /* the same, once its deadline passed */
};

typedef struct cio__node {
    cio__job job;
    cio__timer timer;
    uint64_t id;       /* matches cio_handle.id while the node is live */
    uint8_t state;
    cio_loop *loop;
    cio_callback_fn callback; /* call_soon / call_later */
    cio_done_fn done;         /* done callbacks */
    cio_future *future;       /* the future a done callback belongs to */
    void *arg;
    struct cio__node *free_next;
} cio__node;

/* The live-loop table's layout, for readers outside the process: chunks
 * is an array of max_chunks pointers to arrays of chunk_slots slots of
 * slot_size bytes, the first *count of them in use, each with its loop
 * pointer (NULL when free) at offset slot_loop. */
typedef struct cio__loop_registry {
    const void *chunks;
    const uint32_t *count;
    uint64_t chunk_slots;
    uint64_t max_chunks;
    uint64_t slot_size;
    uint64_t slot_loop;
} cio__loop_registry_layout;
extern const cio__loop_registry_layout cio__loop_registry;

/* The process-wide table of live loops that handles are checked against
 * (src/core/handle.c): a loop takes a slot at creation and gives it back
 * when it is freed; a key names the slot and the generation of its
 * occupant. */
int cio__loop_slot_acquire(cio_loop *loop);
void cio__loop_slot_release(cio_loop *loop);
void cio__loop_slots_after_fork(void);
/* The loop a key names while that loop exists (from cio_loop_new to
 * cio_loop_free), else NULL: what an object that may outlive its loop
 * reads instead of a loop pointer that may dangle. */
cio_loop *cio__loop_by_key(uint64_t key);
/* Calls fn(loop, arg) for every open loop of this process that belongs to
 * the calling thread (made or last run by it): cio_close's walk. */
void cio__loop_each_local(void (*fn)(cio_loop *loop, void *arg), void *arg);

cio__node *cio__node_alloc(cio_loop *loop);
void cio__node_free(cio_loop *loop, cio__node *node);
void cio__node_pool_destroy(cio_loop *loop);

#endif
