/*
 * Signals in the loop (asyncio's loop.add_signal_handler and
 * remove_signal_handler), and the SIGINT hold of cio_run (flow/runner.c).
 *
 * A signal is process-wide, a loop is not: Linux hands a process-directed
 * signal to one thread, whichever it picks, while any number of loops in
 * any number of threads may have asked for it. So one handler, installed
 * with sigaction for each signal some loop holds, does the minimum and
 * does it for every loop that asked: it marks the signal pending in each
 * such loop's slot and wakes that loop; the loop, in its own thread, runs
 * the callbacks as ordinary jobs. No callback ever runs inside the handler.
 *
 * The handler must not touch memory that may be freed under it, so it
 * never follows a pointer it found in a list that changes. It reads a
 * fixed table of slots (one per loop holding signals) whose fields are
 * atomics:
 *
 *   state     FREE, ACTIVE or RETIRING;
 *   busy      how many handlers are inside the slot right now;
 *   interest  one bit per signal the loop holds (bit sig - 1);
 *   pending   one bit per signal that arrived and the loop has not taken;
 *   loop      the loop, valid while the slot is ACTIVE.
 *
 * The handler enters a slot (busy + 1), and only if the slot is then still
 * ACTIVE sets the pending bit and wakes the loop; then it leaves (busy - 1).
 * A loop gives its slot up (last handler removed, or close) by marking it
 * RETIRING and waiting until busy is 0. Both sides use sequentially
 * consistent operations, so either the handler sees RETIRING and touches
 * nothing, or the retiring thread sees the handler inside and waits for it
 * (a few instructions: the handler never blocks, and a handler running on
 * the retiring thread itself finishes before that thread resumes). After
 * that no handler can reach the loop, which may be closed and freed.
 *
 * Waking reuses the loop's inbox protocol (inbox.c) without a job: the
 * handler sets inbox_posted and, if the loop sleeps, calls the backend's
 * wake(), which the backend contract requires to be async-signal-safe (an
 * eventfd write on epoll). A busy loop notices inbox_posted with the
 * relaxed load it makes every iteration anyway, so holding a signal costs
 * a loop nothing until the signal comes, and no descriptor of its own.
 * The loop's iteration, after draining the inbox, calls cio__signal_drain,
 * which exchanges the pending bits for 0 and queues one job per signal
 * taken. Coalescing follows: any number of arrivals between two drains
 * make one callback. The guarantee kept is asyncio's "at least once after the last signal": the pending bit
 * of the last arrival is set after that arrival, so the exchange that
 * takes it, and the callback it queues, come after it too.
 *
 * The handler also keeps errno, calls only async-signal-safe functions,
 * and runs on the alternate signal stack when the thread has one (a task's
 * stack may be nearly full when the signal comes; not under Valgrind, see
 * ON_VALGRIND).
 *
 * Fork: the child is not the process the table belongs to. A pthread_atfork
 * child handler puts back, in the child, every disposition cio had
 * replaced and forgets the slots (the parent's loops are not usable there
 * anyway, see loop.c); until it runs, and in a child made by clone or vfork
 * that shares this memory, the handler compares getpid() with the table's
 * owner and, in any other process, passes the signal on to the disposition
 * cio found (the default action included) instead of waking loops whose
 * descriptors the child shares with its parent.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core.h"

/* Valgrind (3.19 at least) keeps delivering SA_ONSTACK signals on an
 * alternate stack that was disabled (SS_DISABLE) as long as it had a size,
 * and cio disables and unmaps the one it gives each running loop when the
 * run ends: under Valgrind the handler runs on the current stack instead
 * (CIO__ON_VALGRIND, base.h). */

#define SLOTS 128

/* The pending and interest masks hold one bit per signal: Linux has 64. */
_Static_assert(NSIG - 1 <= 64, "signal masks are 64 bits");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2 &&
                   ATOMIC_POINTER_LOCK_FREE == 2,
               "a signal handler may use only lock-free atomics");

enum { SLOT_FREE = 0, SLOT_ACTIVE, SLOT_RETIRING };

typedef struct slot {
    _Atomic int state;
    _Atomic int busy;
    _Atomic uint64_t interest;
    _Atomic uint64_t pending;
    _Atomic(cio_loop *) loop;
} slot;

static slot slots[SLOTS];
/* The handler looks at slots [0, slots_used): a high-water mark. */
static _Atomic unsigned slots_used;
/* The process the table belongs to (see fork above). */
static _Atomic pid_t owner_pid;

/* Everything below is changed under table_lock, never by the handler
 * (which only reads saved[] in a forked child). */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int users[NSIG];               /* loops holding each signal */
static struct sigaction saved[NSIG];  /* what cio's handler replaced */

/* cio_run's hold of SIGINT: armed while cio_run owns SIGINT; counts the
 * SIGINTs the handler saw while armed, so that the second one ends the
 * process at once (see flow/runner.c). */
static _Atomic int sigint_armed;
static _Atomic int sigint_seen;

/* One signal of one loop: the callback as a job. */
typedef struct entry {
    cio__job job;
    cio_loop *loop;
    cio_callback_fn fn;     /* NULL: not held */
    void *arg;
} entry;

struct cio__signals {
    int slot;               /* index in slots[], or -1 */
    uint64_t held;          /* bit sig - 1 for each signal with an entry */
    entry e[NSIG];
};

static inline uint64_t bit_of(int sig) {
    return (uint64_t)1 << (sig - 1);
}

/* ---- the handler -------------------------------------------------------- */

static void on_signal(int sig, siginfo_t *info, void *uc);

static int is_ours(const struct sigaction *sa) {
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_signal;
}

/* In a process the table does not belong to: the signal goes where it
 * would have gone without cio. */
static void pass_on(int sig, siginfo_t *info, void *uc) {
    const struct sigaction *p = &saved[sig];
    if (p->sa_flags & SA_SIGINFO) {
        if (p->sa_sigaction && p->sa_sigaction != on_signal) p->sa_sigaction(sig, info, uc);
        return;
    }
    if (p->sa_handler == SIG_IGN) return;
    if (p->sa_handler == SIG_DFL) {
        /* Put the default back and send the signal again: it is blocked
         * while this handler runs and acts as soon as the handler returns. */
        sigaction(sig, p, NULL);
        raise(sig);
        return;
    }
    p->sa_handler(sig);
}

/* The second SIGINT while cio_run holds it: the usual end of a process on
 * Ctrl-C, by the default action of SIGINT. */
static void die_by_sigint(void) {
    struct sigaction dfl = {0};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGINT, &dfl, NULL);
    raise(SIGINT);
}

static void post(int sig) {
    uint64_t bit = bit_of(sig);
    unsigned n = atomic_load(&slots_used);
    for (unsigned i = 0; i < n; i++) {
        slot *s = &slots[i];
        if (!(atomic_load(&s->interest) & bit)) continue;
        atomic_fetch_add(&s->busy, 1);
        if (atomic_load(&s->state) == SLOT_ACTIVE) {
            cio_loop *loop = atomic_load(&s->loop);
            atomic_fetch_or(&s->pending, bit);
            atomic_store(&loop->inbox_posted, 1);
            if (atomic_exchange(&loop->inbox_sleeping, 0)) loop->io.backend->wake(&loop->io);
        }
        atomic_fetch_sub(&s->busy, 1);
    }
}

static void on_signal(int sig, siginfo_t *info, void *uc) {
    int saved_errno = errno;
    if (getpid() != atomic_load(&owner_pid)) {
        pass_on(sig, info, uc);
    } else {
        if (sig == SIGINT && atomic_load(&sigint_armed) && atomic_fetch_add(&sigint_seen, 1) > 0)
            die_by_sigint();
        post(sig);
    }
    errno = saved_errno;
}

/* ---- dispositions (under table_lock) ------------------------------------ */

/* Installs cio's handler for sig, keeping what it replaces unless that is
 * cio's own. Called for every add, as asyncio calls signal.signal each
 * time: a program that took the signal over since gets cio's handler
 * back, and its own is what a later restore puts back. */
static int install(int sig) {
    struct sigaction sa = {0}, old;
    sa.sa_sigaction = on_signal;
    /* SA_RESTART as asyncio (siginterrupt(sig, False)): the program's
     * blocking calls in other threads are not cut short. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | (CIO__ON_VALGRIND() ? 0 : SA_ONSTACK);
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &old) != 0) return -errno;
    if (!is_ours(&old)) saved[sig] = old;
    return 0;
}

/* Puts back the disposition cio found, unless the program has replaced
 * cio's handler meanwhile (then the program's stays, as asyncio's Runner
 * leaves a SIGINT handler that is no longer its own). */
static void restore(int sig) {
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) == 0 && is_ours(&cur)) sigaction(sig, &saved[sig], NULL);
}

/* ---- slots (under table_lock) ------------------------------------------- */

static int take_slot(cio_loop *loop) {
    for (int i = 0; i < SLOTS; i++) {
        slot *s = &slots[i];
        if (atomic_load(&s->state) != SLOT_FREE) continue;
        atomic_store(&s->interest, 0);
        atomic_store(&s->pending, 0);
        atomic_store(&s->loop, loop);
        atomic_store(&s->state, SLOT_ACTIVE);
        if ((unsigned)i >= atomic_load(&slots_used)) atomic_store(&slots_used, (unsigned)i + 1);
        return i;
    }
    return -ENOSPC;
}

/* After this returns, no handler reads or writes the loop (see above). */
static void retire_slot(int i) {
    slot *s = &slots[i];
    atomic_store(&s->interest, 0);
    atomic_store(&s->state, SLOT_RETIRING);
    while (atomic_load(&s->busy) != 0) sched_yield();
    atomic_store(&s->pending, 0);
    atomic_store(&s->loop, NULL);
    atomic_store(&s->state, SLOT_FREE);
}

/* ---- fork --------------------------------------------------------------- */

/* The child owns no loop of the parent's (loop.c), so it holds no signal:
 * every disposition cio replaced is put back and the table starts empty.
 * The child has one thread, so the lock (which another thread of the
 * parent may have held at the fork) is simply made anew. */
static void in_forked_child(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    table_lock = fresh;
    for (int sig = 1; sig < NSIG; sig++) {
        if (users[sig] > 0) restore(sig);
        users[sig] = 0;
    }
    for (int i = 0; i < SLOTS; i++) {
        atomic_store(&slots[i].state, SLOT_FREE);
        atomic_store(&slots[i].busy, 0);
        atomic_store(&slots[i].interest, 0);
        atomic_store(&slots[i].pending, 0);
        atomic_store(&slots[i].loop, NULL);
    }
    atomic_store(&slots_used, 0);
    atomic_store(&sigint_armed, 0);
    atomic_store(&sigint_seen, 0);
    atomic_store(&owner_pid, getpid());
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void register_atfork(void) {
    (void)pthread_atfork(NULL, NULL, in_forked_child);
}

/* ---- the loop's side ---------------------------------------------------- */

static void run_entry(cio__job *job) {
    entry *e = CIO__CONTAINER_OF(job, entry, job);
    e->fn(e->loop, e->arg);
}

void cio__signal_drain(cio_loop *loop) {
    struct cio__signals *sg = loop->signals;
    if (!sg || sg->slot < 0) return;
    uint64_t taken = atomic_exchange(&slots[sg->slot].pending, 0);
    while (taken) {
        int sig = __builtin_ctzll(taken) + 1;
        taken &= taken - 1;
        entry *e = &sg->e[sig];
        /* Once queued, more arrivals change nothing until it has run. */
        if (!e->fn || cio__link_linked(&e->job.link)) continue;
        /* cio_run's SIGINT goes first: asyncio.Runner's handler is a
         * Python signal handler, which runs as soon as the signal arrives,
         * before any callback already queued (a main task woken by a
         * cancel is still pending for it, and gets a second request), where
         * add_signal_handler's callbacks queue behind the others. */
        if (sig == SIGINT && atomic_load(&sigint_armed))
            cio__list_push_front(&loop->ready, &e->job.link);
        else
            cio__ready_push(loop, &e->job);
    }
}

/* Drops sig from the loop (under table_lock): a call already queued does
 * not happen, and the last loop to let a signal go puts its disposition
 * back. */
static void let_go(struct cio__signals *sg, int sig) {
    entry *e = &sg->e[sig];
    if (cio__link_linked(&e->job.link)) cio__list_unlink(&e->job.link);
    e->fn = NULL;
    e->arg = NULL;
    sg->held &= ~bit_of(sig);
    atomic_fetch_and(&slots[sg->slot].interest, ~bit_of(sig));
    if (--users[sig] == 0) restore(sig);
}

/* The record goes once the loop holds no signal: its slot is given up,
 * so a process may make and drop any number of loops with handlers. */
static void drop_record_if_empty(cio_loop *loop) {
    struct cio__signals *sg = loop->signals;
    if (!sg || sg->held) return;
    if (sg->slot >= 0) retire_slot(sg->slot);
    loop->signals = NULL;
    loop->signal_drain = NULL;
    cio__free(sg);
}

/* A signal number a program may name: 1..SIGRTMAX less the two that
 * glibc keeps for its threads (32 and 33, below SIGRTMIN), as Python's
 * signal.valid_signals() lists them. */
static bool valid_number(int sig) {
    return sig >= 1 && sig <= SIGRTMAX && (sig < 32 || sig >= SIGRTMIN);
}

static int check_signal(int sig) {
    if (!valid_number(sig)) return -EINVAL;
    switch (sig) {
    case SIGKILL:
    case SIGSTOP:
        /* Linux lets nobody catch them (asyncio: RuntimeError). */
        return -EINVAL;
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
        /* A fault's handler that returns runs the faulting instruction
         * again, for ever: a callback deferred to the loop cannot handle
         * it. (SIGSEGV is also cio's stack-overflow report.) */
        return -EINVAL;
    default:
        return 0;
    }
}

/* Adds or replaces sig's callback; runner marks cio_run's own hold of
 * SIGINT. Under table_lock. */
static int add_locked(cio_loop *loop, int sig, cio_callback_fn fn, void *arg, int runner) {
    struct cio__signals *sg = loop->signals;
    int made = 0;
    if (!sg) {
        sg = cio__calloc(1, sizeof *sg);
        if (!sg) return -ENOMEM;
        sg->slot = -1;
        for (int i = 0; i < NSIG; i++) {
            sg->e[i].job.run = run_entry;
            cio__list_init(&sg->e[i].job.link);
            sg->e[i].loop = loop;
        }
        made = 1;
    }
    int rc = 0;
    if (sg->slot < 0 && (rc = take_slot(loop)) >= 0) sg->slot = rc;
    if (rc >= 0) {
        atomic_store(&owner_pid, getpid());
        rc = install(sig);
    }
    if (rc < 0) {
        if (made) {
            if (sg->slot >= 0) retire_slot(sg->slot);
            cio__free(sg);
        }
        return rc;
    }
    loop->signals = sg;
    loop->signal_drain = cio__signal_drain;
    if (!(sg->held & bit_of(sig))) {
        sg->held |= bit_of(sig);
        users[sig]++;
        atomic_fetch_or(&slots[sg->slot].interest, bit_of(sig));
    }
    /* asyncio: a new handler replaces the old one. A call already queued
     * stays queued and runs the new callback: the signal is not lost, and
     * the old argument is never used after the replacement. */
    sg->e[sig].fn = fn;
    sg->e[sig].arg = arg;
    /* The program taking SIGINT over from cio_run ends cio_run's hold. */
    if (sig == SIGINT && !runner) atomic_store(&sigint_armed, 0);
    return 0;
}

int cio_add_signal_handler(cio_loop *loop, int sig, cio_callback_fn fn, void *arg) {
    if (!loop || !fn) return -EINVAL;
    int rc = check_signal(sig);
    if (rc < 0) return rc;
    rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&table_lock);
    rc = add_locked(loop, sig, fn, arg, 0);
    pthread_mutex_unlock(&table_lock);
    return rc;
}

int cio_remove_signal_handler(cio_loop *loop, int sig) {
    if (!loop || !valid_number(sig)) return -EINVAL;
    int rc = cio__loop_check_thread(loop);
    if (rc < 0) return rc;
    struct cio__signals *sg = loop->signals;
    if (!sg || !(sg->held & bit_of(sig))) return 0;
    pthread_mutex_lock(&table_lock);
    let_go(sg, sig);
    drop_record_if_empty(loop);
    pthread_mutex_unlock(&table_lock);
    return 1;
}

void cio__signal_loop_close(cio_loop *loop) {
    struct cio__signals *sg = loop->signals;
    if (!sg) return;
    pthread_mutex_lock(&table_lock);
    for (int sig = 1; sig < NSIG; sig++)
        if (sg->held & bit_of(sig)) let_go(sg, sig);
    drop_record_if_empty(loop);
    pthread_mutex_unlock(&table_lock);
}

/* ---- cio_run's SIGINT --------------------------------------------------- */

int cio__signal_hold_sigint(cio_loop *loop, cio_callback_fn fn, void *arg) {
    /* asyncio.Runner: only in the main thread, and only if SIGINT is at its
     * default (Python's default_int_handler; C's SIG_DFL). */
    if (gettid() != getpid()) return 0;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&table_lock);
    struct sigaction cur;
    int rc = sigaction(SIGINT, NULL, &cur) == 0 ? 0 : -errno;
    int is_default = rc == 0 && !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
    if (is_default) {
        atomic_store(&sigint_seen, 0);
        rc = add_locked(loop, SIGINT, fn, arg, 1);
        if (rc == 0) {
            atomic_store(&sigint_armed, 1);
            rc = 1;
        }
    }
    pthread_mutex_unlock(&table_lock);
    return rc;
}

int cio__signal_release_sigint(cio_loop *loop, cio_callback_fn fn) {
    pthread_mutex_lock(&table_lock);
    struct cio__signals *sg = loop->signals;
    /* Only cio_run's own hold is let go: a handler the program added for
     * SIGINT meanwhile stays until it removes it or the loop closes. The
     * disposition comes back before the count is read and the hold
     * disarmed, so a SIGINT arriving in between is counted (and raised
     * again by cio_run), never lost. */
    if (sg && (sg->held & bit_of(SIGINT)) && sg->e[SIGINT].fn == fn) {
        let_go(sg, SIGINT);
        drop_record_if_empty(loop);
    }
    int armed = atomic_exchange(&sigint_armed, 0);
    int seen = armed ? atomic_load(&sigint_seen) : 0;
    pthread_mutex_unlock(&table_lock);
    return seen;
}
