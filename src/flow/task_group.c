/*
 * Task groups (asyncio.TaskGroup).
 *
 * The group tracks its children with one record each; a record's job is
 * registered on the child and runs when the child is done. The rules are
 * asyncio's (Lib/asyncio/taskgroups.py, 3.13):
 *
 * - The first child that fails (not by cancellation) aborts the group: the
 *   other children are cancelled, and so is the task that entered the group
 *   (the "parent", running the body), once; the group remembers that it
 *   cancelled the parent and takes that request back at exit.
 * - Exit marks the group as exiting; if the body failed it aborts the
 *   group; then it waits until no child is left. A cancellation of the
 *   parent while it waits aborts the group (once) and is remembered, but the
 *   wait goes on: an ended group never leaves a running child behind.
 * - Exit's outcome: -CIO_EGROUP if any child (or the body) failed, every
 *   error kept; else -ECANCELED if the parent was cancelled from outside;
 *   else 0. Errors win over a cancellation; in that case the parent's
 *   outstanding cancellation is left in place (uncancel then cancel, which
 *   keeps the count), so it still ends cancelled unless it uncancels.
 *
 * The records live in blocks the group allocates (CHILD_BLOCK_FIRST
 * records, then twice as many each time, up to CHILD_BLOCK_MAX), listed in
 * a small table. A record stays where it is while its job is registered
 * on the child. Each record also holds one error slot: the group's k-th
 * error goes into the k-th record's slot (error_at), so there is room
 * for every possible error (one per child; the body's, always the last,
 * has a slot in the group) without memory at the time of the error. Why
 * not one record per malloc and a separate error array grown by realloc:
 * a group of 10,000 children made 10,000 small allocations interleaved
 * with its tasks, and the array (256 KiB at the end) crossed glibc's mmap
 * threshold, so whether each group faulted 32 fresh pages in depended on
 * what the program had freed before (a warm group ran half again as slow
 * after one lock was made and freed in an earlier loop). Now such a group
 * makes 16 allocations of at most 56 KiB, from the heap.
 *
 * A child's message is read from the child when asked for (the group holds
 * a reference to every child until it is freed); the body's message, given
 * to cio_task_group_exit_msg, is copied into the group.
 *
 * Lifetime. While the body waits inside exit, freeing the group would pull
 * it from under that wait: cio_task_group_free() refuses with -EBUSY and
 * reports it, as the synchronisation primitives do.
 */
#include <string.h>

#include "flow.h"

typedef struct group_error {
    cio_task *task; /* NULL for the body's own error */
    int error;
} group_error;

/* The job is registered on the child and runs when it is done. The error
 * slot is not this child's: it holds the group's error of the same index
 * (error_at), so that room for every error exists before any happens. */
typedef struct child {
    cio__job job;
    cio_task_group *group;
    cio_task *task; /* NULL while the spawn that claimed the record runs */
    group_error error;
} child;

#define CHILD_BLOCK_FIRST 8
/* 56 KiB a block: below glibc's mmap threshold, so a block comes from the
 * heap rather than from fresh pages the kernel must fault in. */
#define CHILD_BLOCK_MAX 1024

typedef struct child_block {
    size_t used;
    child records[];
} child_block;

struct cio_task_group {
    cio_loop *loop;
    cio__task *parent;
    child_block **blocks; /* the records of every child spawned, oldest first */
    size_t nblocks, blocks_cap;
    size_t spawned, pending;
    size_t nerrors;
    group_error body_error; /* the error numbered spawned, if any (error_at) */
    char *body_message;   /* the body's error message (exit_msg), owned */
    cio__waitq exit_wait; /* the parent, while exit waits for children */
    uint8_t exiting;
    uint8_t aborting;
    uint8_t exited;
    uint8_t parent_cancel_requested;
};

/* Blocks 0 to CHILD_GROWING_BLOCKS - 1 double in size; every later one
 * holds CHILD_BLOCK_MAX records. */
#define CHILD_GROWING_BLOCKS 7
#define CHILD_GROWING_RECORDS (CHILD_BLOCK_FIRST * ((1u << CHILD_GROWING_BLOCKS) - 1))
_Static_assert((CHILD_BLOCK_FIRST << CHILD_GROWING_BLOCKS) == CHILD_BLOCK_MAX,
               "the growing blocks end where the blocks of CHILD_BLOCK_MAX begin");

static size_t block_cap(size_t j) {
    return j < CHILD_GROWING_BLOCKS ? (size_t)CHILD_BLOCK_FIRST << j : CHILD_BLOCK_MAX;
}

/* The record of the k-th child spawned, found in at most seven steps
 * whatever the size of the group (a walk over every block made a group of
 * a million children quadratic in its error lookups). */
static child *record_at(const cio_task_group *g, size_t k) {
    size_t j = 0;
    if (k >= CHILD_GROWING_RECORDS) {
        k -= CHILD_GROWING_RECORDS;
        j = CHILD_GROWING_BLOCKS + k / CHILD_BLOCK_MAX;
        k %= CHILD_BLOCK_MAX;
    } else {
        while (k >= block_cap(j)) k -= block_cap(j++);
    }
    return &g->blocks[j]->records[k];
}

/* The group's k-th error is kept in the k-th child's record while there is
 * one (a child's error is never numbered past the children spawned), else
 * in the group's own slot, which only the body's error, the last, reaches. */
static const group_error *error_at(const cio_task_group *g, size_t k) {
    return k < g->spawned ? &record_at(g, k)->error : &g->body_error;
}

static void record_error(cio_task_group *g, cio_task *task, int err) {
    /* The slot error_at reads: the group owns it, so it may be written. */
    group_error *slot = (group_error *)error_at(g, g->nerrors++);
    *slot = (group_error){.task = task, .error = err};
}

/* Every child, newest first (the order the records were once listed in).
 * The body may use continue; a break would only skip to the next record. */
#define FOR_EACH_CHILD(g, c)                                                              \
    for (size_t j_ = (g)->nblocks; j_-- > 0;)                                              \
        for (size_t i_ = (g)->blocks[j_]->used; i_-- > 0;)                                 \
            for (child *c = &(g)->blocks[j_]->records[i_]; c; c = NULL)

static void abort_children(cio_task_group *g) {
    g->aborting = 1;
    /* A record without a task is a spawn still under way (eager_start). */
    FOR_EACH_CHILD(g, c)
        if (c->task && !cio_future_done(c->task)) cio_task_cancel(c->task, NULL);
}

/* A free record for the next child: in the newest block, or in a new one. */
static child *next_record(cio_task_group *g) {
    child_block *last = g->nblocks > 0 ? g->blocks[g->nblocks - 1] : NULL;
    if (last && last->used < block_cap(g->nblocks - 1)) return &last->records[last->used];
    if (g->nblocks == g->blocks_cap) {
        size_t cap = g->blocks_cap ? g->blocks_cap * 2 : 8;
        child_block **grown = cio__realloc(g->blocks, cap * sizeof *grown);
        if (!grown) return NULL;
        g->blocks = grown;
        g->blocks_cap = cap;
    }
    size_t n = block_cap(g->nblocks);
    child_block *fresh = cio__malloc(sizeof *fresh + n * sizeof fresh->records[0]);
    if (!fresh) return NULL;
    fresh->used = 0;
    g->blocks[g->nblocks++] = fresh;
    return &fresh->records[0];
}

static void on_group_child_done(cio__job *job) {
    child *c = CIO__CONTAINER_OF(job, child, job);
    cio_task_group *g = c->group;
    g->pending--;
    if (g->pending == 0) cio__waitq_wake_one(&g->exit_wait, NULL);
    if (cio_future_cancelled(c->task)) return;
    int err = cio_future_error(c->task); /* also marks it retrieved */
    if (err == 0) return;
    record_error(g, c->task, err);
    if (g->parent->fut.state != CIO__PENDING) {
        cio__report(g->loop, "Task in a TaskGroup failed after its parent finished", err, c->task);
        return;
    }
    if (!g->aborting && !g->parent_cancel_requested) {
        /* Stop the body too: whatever it awaits now returns -ECANCELED. */
        abort_children(g);
        g->parent_cancel_requested = 1;
        cio__task_cancel(g->parent, NULL);
    }
}

int cio_task_group_enter(cio_task_group **gp) {
    if (!gp) return -EINVAL;
    *gp = NULL;
    int rc;
    cio__task *parent = cio__current(&rc);
    if (!parent) return rc;
    cio_task_group *g = cio__calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    g->loop = parent->fut.loop;
    g->parent = parent;
    cio__waitq_init(&g->exit_wait);
    cio_future_ref(&parent->fut);
    *gp = g;
    return 0;
}

static int group_spawn(cio_task_group *g, cio_coro_fn fn, void *arg,
                       const cio_task_options *opts, cio_task **taskp, const char *site,
                       const void *pc) {
    if (taskp) *taskp = NULL;
    if (!g || !fn) return -EINVAL;
    if (g->exited || (g->exiting && g->pending == 0)) return -CIO_EGROUPDONE;
    if (g->aborting) return -CIO_EGROUPABORTING;
    child *c = next_record(g);
    if (!c) return -ENOMEM;
    /* The record is the group's before the spawn: a child started eagerly
     * runs inside it and may spawn into this group itself, which must get
     * the next record, not this one. */
    child_block *block = g->blocks[g->nblocks - 1];
    c->group = g;
    c->task = NULL;
    c->job.run = on_group_child_done;
    cio__list_init(&c->job.link);
    block->used++;
    g->spawned++;
    g->pending++;
    cio_task *task;
    int rc = cio__spawn(g->loop, fn, arg, opts, &task, site, pc);
    if (rc < 0) {
        /* Nothing ran (a spawn fails before it starts the child), so the
         * record is still the newest: it goes back for the next spawn. */
        block->used--;
        g->spawned--;
        g->pending--;
        return rc;
    }
    c->task = task;
    cio__future_add_waiter(task, &c->job);
    if (taskp) *taskp = cio_future_ref(task);
    return 0;
}

/* The public spawns are macros that pass CIO_HERE (see cio_spawn). */
int(cio_task_group_spawn)(cio_task_group *g, cio_coro_fn fn, void *arg, cio_task **taskp) {
    return group_spawn(g, fn, arg, NULL, taskp, NULL, __builtin_return_address(0));
}

int(cio_task_group_spawn_with)(cio_task_group *g, cio_coro_fn fn, void *arg,
                               const cio_task_options *opts, cio_task **taskp) {
    return group_spawn(g, fn, arg, opts, taskp, NULL, __builtin_return_address(0));
}

int cio_task_group_spawn_at(const char *site, cio_task_group *g, cio_coro_fn fn, void *arg,
                            const cio_task_options *opts, cio_task **taskp) {
    return group_spawn(g, fn, arg, opts, taskp, site, site ? NULL : __builtin_return_address(0));
}

int cio_task_group_exit(cio_task_group *g, int rc) {
    return cio_task_group_exit_msg(g, rc, NULL);
}

int cio_task_group_exit_msg(cio_task_group *g, int rc, const char *msg) {
    if (!g) return -EINVAL;
    if (g->exiting || g->exited) return -CIO_EINVALSTATE;
    if (cio_current_task() != &g->parent->fut) return -CIO_EINVALSTATE;
    if (rc < 0 && rc != -ECANCELED && msg) {
        /* Copied before anything else happens; without memory for the copy
         * the error still stands, unexplained, as with cio_raise_msg. */
        g->body_message = cio__strdup(msg);
    }
    g->exiting = 1;
    int propagate_cancel = rc == -ECANCELED;
    if (rc < 0 && !g->aborting) abort_children(g);
    while (g->pending > 0) {
        cio__waiter w;
        int status = cio__waitq_wait_on(&g->exit_wait, &w, CIO__WAIT_TASK_GROUP, g, NULL,
                                        "task group", INT64_MAX);
        if (status == -ECANCELED && !g->aborting) {
            /* The parent is being cancelled from outside. */
            propagate_cancel = 1;
            abort_children(g);
        }
    }
    g->exited = 1;
    if (g->parent_cancel_requested && cio_task_uncancel(&g->parent->fut) == 0)
        propagate_cancel = 0;
    if (rc < 0 && rc != -ECANCELED)
        record_error(g, NULL, rc);
    if (g->nerrors > 0) {
        /* Errors win; an outside cancellation stays outstanding. */
        if (cio_task_cancelling(&g->parent->fut) > 0) {
            cio_task_uncancel(&g->parent->fut);
            cio__task_cancel(g->parent, NULL);
        }
        return -CIO_EGROUP;
    }
    return propagate_cancel ? -ECANCELED : 0;
}

size_t cio_task_group_error_count(const cio_task_group *g) {
    return g ? g->nerrors : 0;
}

int cio_task_group_error(const cio_task_group *g, size_t i, int *err, cio_task **task,
                         const char **message) {
    if (err) *err = 0;
    if (task) *task = NULL;
    if (message) *message = NULL;
    if (!g || i >= g->nerrors) return -EINVAL;
    const group_error *e = error_at(g, i);
    if (err) *err = e->error;
    if (task) *task = e->task;
    if (message) *message = e->task ? cio_future_error_message(e->task) : g->body_message;
    return 0;
}

int cio_task_group_free(cio_task_group *g) {
    if (!g) return 0;
    if (g->exiting && !g->exited)
        return cio__waitq_refuse_free(&g->exit_wait,
                                      "cio_task_group_free: the body still waits in exit; not freed");
    /* A group freed without exit cancels its children and lets them finish
     * detached; either way every record goes. */
    FOR_EACH_CHILD(g, c) {
        if (!c->task) continue; /* a spawn under way: the child never existed */
        if (cio__link_linked(&c->job.link)) cio__list_unlink(&c->job.link);
        if (!cio_future_done(c->task)) cio_task_cancel(c->task, NULL);
        cio_future_unref(c->task);
    }
    for (size_t j = 0; j < g->nblocks; j++) cio__free(g->blocks[j]);
    cio__free(g->blocks);
    cio_future_unref(&g->parent->fut);
    cio__free(g->body_message);
    cio__free(g);
    return 0;
}
