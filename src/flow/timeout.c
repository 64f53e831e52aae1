/*
 * Timeout scopes (asyncio.timeout and timeout_at).
 *
 * A scope arms a timer for its deadline. When the timer fires, the scope
 * cancels its task (counting one more cancellation request) and becomes
 * "expiring". The code inside the scope sees -ECANCELED from the call it is
 * suspended in and passes it to cio_timeout_exit, which takes its own
 * request back with uncancel(): if no other request remains beyond those
 * that were outstanding when the scope was entered, the cancellation was
 * the scope's own and the exit turns -ECANCELED into -ETIMEDOUT; otherwise
 * an outer cancellation (or an outer scope's expiry) is under way and
 * -ECANCELED passes through. This is asyncio's rule, and it is what makes
 * scopes nest.
 *
 * Where the state lives. The caller's cio_timeout (on the task's stack)
 * holds only what the caller may read back (the deadline, whether it
 * expired) and a reference to a node of the loop's callback pool, which
 * holds the timer, the task and the expiring flag while the scope is
 * entered. The loop's structures (its timer heap, its ready queue) thus
 * never point into a task's stack, so a scope its task never exited (the
 * function holding it returned, or the whole task did) cannot make the
 * loop write into stack memory that now belongs to something else. Each
 * task keeps the nodes of its entered scopes on a list (innermost first);
 * when the task returns with scopes still entered, the task layer
 * (core/task.c) disarms their timers, frees the nodes and reports the
 * mistake with the task's name. Taking a node from the pool allocates only
 * while the pool grows, as call_soon does.
 *
 * Entering twice. Entering a scope the task entered and has not exited is
 * refused. The cio_timeout is the caller's memory, uninitialised before the
 * first entry, so enter does not read it: it looks for a node pointing back
 * at it on the task's own list of entered scopes. (A scope entered by
 * another task is not found, but is harmless: each entry has its own node
 * and timer, the first task's exit is refused since the struct now names
 * the second's node, and its node is dropped when it returns.) Exiting
 * clears the state, so a cio_timeout variable may be entered again once
 * exited (asyncio's Timeout objects are single-use, but C storage is
 * reused, typically in a loop).
 *
 * The other calls trust the struct only once enter wrote it: enter stores a
 * magic word derived from the scope's address, and a scope counts as
 * entered only if that word matches and the node it names points back at
 * it, so a byte copy of a scope, or garbage, is never taken for one.
 */
#include <math.h>

#include "flow.h"

enum scope_state { CREATED = 0, ENTERED, EXPIRED, EXITED };

#define SCOPE_MAGIC ((uintptr_t)0x5c09e7a1c1057ed5ULL)

typedef struct scope {
    uintptr_t magic;          /* SCOPE_MAGIC ^ the scope's address once entered */
    cio__node *node;          /* while entered: the node holding the timer */
    uint64_t id;              /* the node's id when it was taken */
    int64_t when;             /* INT64_MAX: no deadline */
    double when_seconds;      /* the deadline as given, for cio_timeout_when */
    int cancelling_at_entry;
    int state;
} scope;

_Static_assert(sizeof(scope) <= sizeof(cio_timeout), "cio_timeout is too small");

static scope *scope_of(cio_timeout *t) {
    return (scope *)(void *)t;
}

static bool has_magic(const scope *s) {
    return s->magic == (SCOPE_MAGIC ^ (uintptr_t)s);
}

/* The node of an entered scope, or NULL. Only for a scope whose memory is
 * the caller's live cio_timeout: the node pointer is then one that enter
 * wrote, into the pool of the loop the scope was entered in. */
static cio__node *entered_node(const scope *s) {
    if (!has_magic(s) || s->state != ENTERED) return NULL;
    cio__node *node = s->node;
    if (node->id != s->id || node->arg != (const void *)s) return NULL;
    if (node->state != CIO__NODE_SCOPE && node->state != CIO__NODE_SCOPE_EXPIRING) return NULL;
    return node;
}

static cio__task *task_of_node(const cio__node *node) {
    return cio__task_of(node->future);
}

static void on_scope_expiry(cio__timer *timer) {
    cio__node *node = CIO__CONTAINER_OF(timer, cio__node, timer);
    if (node->state != CIO__NODE_SCOPE) return;
    node->state = CIO__NODE_SCOPE_EXPIRING;
    cio__task_cancel(task_of_node(node), NULL);
}

/* when_seconds is the deadline as the program gave it (or loop time plus
 * the delay): cio_timeout_when answers with it, bit for bit as asyncio's
 * when() answers with its float, where when / 1e9 could be off in the
 * last digit. */
static int arm(scope *s, cio__node *node, int64_t when, double when_seconds) {
    cio_loop *loop = node->loop;
    cio__loop_disarm_timer(loop, &node->timer);
    s->when = when;
    s->when_seconds = when_seconds;
    if (when == INT64_MAX) return 0;
    /* A deadline already passed expires through the ready queue, as
     * asyncio's reschedule() does with call_soon(on_timeout): the expiry
     * then comes before the task's own next step, so the first suspension
     * in the body returns -ECANCELED. Through the heap it would only be
     * moved to the ready queue on the next iteration, behind that step. */
    if (when <= cio__clock_ns()) {
        cio__loop_queue_timer(loop, &node->timer, when);
        return 0;
    }
    int rc = cio__timer_heap_reserve(&loop->timers, 1);
    if (rc < 0) return rc;
    cio__loop_arm_timer(loop, &node->timer, when);
    return 0;
}

/* Takes node off its task's list of entered scopes, disarms its timer and
 * gives it back to the pool. */
static void drop_node(cio__task *task, cio__node *node) {
    for (cio__node **p = &task->scopes; *p; p = &(*p)->free_next) {
        if (*p == node) {
            *p = node->free_next;
            break;
        }
    }
    cio__loop_disarm_timer(node->loop, &node->timer);
    cio__node_free(node->loop, node);
}

static int enter_at(cio_timeout *t, int64_t when, double when_seconds) {
    if (!t) return -EINVAL;
    int rc;
    cio__task *task = cio__current(&rc);
    if (!task) return rc;
    cio_loop *loop = task->fut.loop;
    scope *s = scope_of(t);
    /* asyncio: "Timeout has already been entered". */
    for (const cio__node *n = task->scopes; n; n = n->free_next)
        if (n->arg == (void *)s) return -CIO_EINVALSTATE;
    cio__node *node = cio__node_alloc(loop);
    if (!node) return -ENOMEM;
    node->state = CIO__NODE_SCOPE;
    node->future = &task->fut;
    node->arg = s;
    node->timer.fire = on_scope_expiry;
    rc = arm(s, node, when, when_seconds);
    if (rc < 0) {
        cio__node_free(loop, node);
        return rc;
    }
    s->magic = SCOPE_MAGIC ^ (uintptr_t)s;
    s->node = node;
    s->id = node->id;
    s->cancelling_at_entry = task->cancel_requests;
    s->state = ENTERED;
    node->free_next = task->scopes;
    task->scopes = node;
    return 0;
}

int cio_timeout_enter(cio_timeout *t, double delay) {
    if (!t || isnan(delay)) return -EINVAL;
    if (isinf(delay) && delay > 0) return enter_at(t, INT64_MAX, CIO_NO_TIMEOUT);
    /* asyncio.timeout(delay) is timeout_at(loop.time() + delay). */
    double when_seconds = (double)cio__clock_ns() / 1e9 + delay;
    return enter_at(t, cio__deadline_after(delay), when_seconds);
}

int cio_timeout_enter_until(cio_timeout *t, double when) {
    if (!t) return -EINVAL;
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    return enter_at(t, deadline, when);
}

int cio_timeout_reschedule(cio_timeout *t, double when) {
    if (!t) return -EINVAL;
    scope *s = scope_of(t);
    /* The thread is checked before the node's state is read: the loop's
     * own thread may be changing it. */
    if (has_magic(s) && s->state == ENTERED) {
        int rc = cio__loop_check_thread(s->node->loop);
        if (rc < 0) return rc;
    }
    cio__node *node = entered_node(s);
    /* asyncio: "Timeout has not been entered" / "Cannot change state of
     * expiring Timeout". */
    if (!node || node->state != CIO__NODE_SCOPE) return -CIO_EINVALSTATE;
    int64_t deadline;
    int rc = cio__deadline(when, &deadline);
    if (rc < 0) return rc;
    return arm(s, node, deadline, when);
}

double cio_timeout_when(const cio_timeout *t) {
    if (!t) return NAN;
    const scope *s = (const scope *)(const void *)t;
    if (!has_magic(s)) return NAN; /* never entered */
    return s->when == INT64_MAX ? CIO_NO_TIMEOUT : s->when_seconds;
}

int cio_timeout_expired(const cio_timeout *t) {
    if (!t) return 0;
    const scope *s = (const scope *)(const void *)t;
    if (!has_magic(s)) return 0;
    if (s->state == EXPIRED) return 1;
    const cio__node *node = entered_node(s);
    return node && node->state == CIO__NODE_SCOPE_EXPIRING;
}

int cio_timeout_exit(cio_timeout *t, int rc) {
    if (!t) return -EINVAL;
    scope *s = scope_of(t);
    cio__node *node = entered_node(s);
    if (!node) return -CIO_EINVALSTATE;
    if (cio_current_task() != node->future) return -CIO_EINVALSTATE;
    cio__task *task = task_of_node(node);
    bool expiring = node->state == CIO__NODE_SCOPE_EXPIRING;
    drop_node(task, node);
    s->node = NULL;
    if (expiring) {
        s->state = EXPIRED;
        int left = cio_task_uncancel(&task->fut);
        if (left <= s->cancelling_at_entry && rc == -ECANCELED) return -ETIMEDOUT;
    } else {
        s->state = EXITED;
    }
    return rc;
}
