/*
 * The epoll backend: completion emulated on readiness.
 *
 * An operation is first tried at once (unless others of its direction
 * already wait on the descriptor, which would be overtaken, or the
 * descriptor is known to have nothing for it). If the kernel says EAGAIN,
 * the operation joins its descriptor's FIFO queue for that direction and
 * the descriptor is armed in epoll. When readiness arrives, the queue is
 * served in order: each operation retries its system call, and the first
 * that meets EAGAIN again stops the round. So the operation completes
 * inside the backend, and the loop above sees only completions.
 *
 * Registrations come in three kinds.
 *  - A descriptor that only has operations waiting is armed one-shot
 *    (EPOLLONESHOT, level-triggered), for the directions that have
 *    waiters: a descriptor closed behind the loop's back can never leave a
 *    stale registration that swallows the events of a new descriptor with
 *    the same number (re-arming a registration that the kernel dropped
 *    fails with ENOENT and is added afresh).
 *  - A descriptor with a persistent watcher (loop.add_reader / add_writer)
 *    is registered level-triggered for as long as the watcher lives, as
 *    asyncio's selector does.
 *  - A descriptor the loop owns (a transport's or a server's socket, which
 *    the program never sees, so nobody closes it behind the loop's back) is
 *    registered once, edge-triggered for both directions, and stays so
 *    until it is closed through the loop: no epoll_ctl per wait. Its owner
 *    gets every edge (a multishot CIO__OP_POLL with CIO__OP_OWN). Because
 *    an edge comes only when something changes, the entry remembers which
 *    directions are known to have nothing (`quiet`: set by a short read or
 *    an EAGAIN, cleared by an edge): an operation is tried only while its
 *    direction is not quiet, so the common "read, answer, wait" costs no
 *    read that is bound to fail.
 *  - A socket the program handed over (cio_sock_adopt: it promised to
 *    close it only through cio_close) is held: registered once, edge-
 *    triggered, as an owned one, but with no owner op: the tasks' own
 *    operations wait in its queues, are served by the edges, and heed
 *    `quiet` alike. So a task's "recv, sendall, recv" costs the two calls
 *    that move data and no epoll_ctl. A readiness wait on it that is not
 *    quiet asks poll(2), as an edge may have passed unseen. Since the
 *    promise can be broken (close(2) behind the loop's back), a sweep
 *    finds held registrations that the kernel dropped (see check_held).
 * Registration changes of waiting operations are not made at once: the
 * entry is marked and the changes are made just before the next
 * epoll_wait, so an operation that completes or is cancelled within the
 * iteration costs none, and several changes to one descriptor cost one.
 * EPOLLRDHUP is asked for only on owned descriptors, where it fires once
 * (an edge) and tells that a short read did not reach the end of stream.
 * Elsewhere a peer's half-close shows up as readable (recv returns 0), and
 * a task that only writes is not woken, again and again, by a hang-up of
 * the other direction.
 *
 * The same `quiet` mark serves one-shot descriptors: a recv on one whose
 * input is quiet (its last recv was short, or said EAGAIN) is not tried
 * but armed at once (a level-triggered arm reports data that is already
 * there, so nothing is missed), which saves the failing recv before each
 * wait.
 *
 * Cancellation is immediate: an operation waiting in a queue has no system
 * call in progress, so it is unlinked and completed with the reason at once.
 *
 * The descriptor table (src/base/fd_table.h) never moves its entries. An
 * event's data is the descriptor number plus one (so 0 can mean the loop's
 * own wake-up eventfd) and, in the upper half, the entry's generation,
 * which a close through the loop advances: an event of a descriptor that
 * a callback closed earlier in the same batch is ignored, even if the
 * number was already reused.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

enum { DIR_IN = 0, DIR_OUT = 1 };

typedef struct fd_entry {
    cio__link queue[2];    /* operations waiting for in / out, FIFO */
    cio__op *watch[2];     /* persistent (multishot) readiness watchers */
    cio__op *owner;        /* the owner's edge watch, for an owned descriptor */
    cio__link dirty;       /* in the state's list while its registration is due */
    int fd;
    uint32_t registered;   /* the events last given to epoll_ctl */
    uint32_t generation;   /* advanced by a close through the loop */
    uint8_t in_epoll;      /* the descriptor is in the epoll set */
    uint8_t armed;         /* ... and its registration can still fire */
    uint8_t quiet;         /* the directions (1 << DIR_x) known to have nothing */
    uint8_t hung_up;       /* owned: the peer shut down (sticky until close) */
    uint8_t held;          /* the program handed it over (cio_sock_adopt) */
    uint8_t records;       /* held: a datagram or seqpacket socket (see note_result) */
    uint8_t check_shift;   /* held: log2 of the sweeps between two checks */
    uint32_t check_at;     /* held: the sweep that checks it next, if it waits */
} fd_entry;

typedef struct epoll_state {
    int epoll_fd;
    int wake_fd;
    cio__fd_table fds;
    cio__link dirty;       /* entries whose registration is due before the next wait */
    size_t held;           /* entries held for the program (see the sweep) */
    uint32_t sweeps;       /* sweeps done so far */
    int64_t next_sweep;    /* CLOCK_MONOTONIC ns of the next sweep */
} epoll_state;

static void init_entry(void *p) {
    fd_entry *e = p;
    memset(e, 0, sizeof *e);
    cio__list_init(&e->queue[DIR_IN]);
    cio__list_init(&e->queue[DIR_OUT]);
    cio__list_init(&e->dirty);
    e->fd = -1;
}

static int epoll_init(cio__io *io) {
    epoll_state *st = cio__calloc(1, sizeof *st);
    if (!st) return -ENOMEM;
    st->epoll_fd = cio__sys_epoll_create();
    if (st->epoll_fd < 0) {
        int err = -errno;
        cio__free(st);
        return err;
    }
    st->wake_fd = cio__sys_eventfd();
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (st->wake_fd < 0 || cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_ADD, st->wake_fd, &ev) != 0) {
        int err = -errno;
        if (st->wake_fd >= 0) close(st->wake_fd);
        close(st->epoll_fd);
        cio__free(st);
        return err;
    }
    cio__fd_table_init(&st->fds, sizeof(fd_entry), init_entry);
    cio__list_init(&st->dirty);
    io->state = st;
    return 0;
}

static void epoll_fini(cio__io *io) {
    epoll_state *st = io->state;
    if (!st) return;
    close(st->wake_fd);
    close(st->epoll_fd);
    cio__fd_table_destroy(&st->fds);
    cio__free(st);
    io->state = NULL;
}

static int direction(const cio__op *op) {
    switch (op->kind) {
    case CIO__OP_POLL: return (op->u.poll.events & CIO__POLL_OUT) ? DIR_OUT : DIR_IN;
    case CIO__OP_SEND:
    case CIO__OP_SENDMSG:
    case CIO__OP_CONNECT:
    case CIO__OP_WRITE: return DIR_OUT;
    default: return DIR_IN;
    }
}

/* 1 if fd is in blocking mode, 0 if not, or -errno if that cannot be
 * told (then the operation fails with it rather than risk a stall). */
static int is_blocking(int fd) {
    int fl = cio__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0) return -errno;
    return !(fl & O_NONBLOCK);
}

/*
 * One attempt at an operation's system call. Returns false if the kernel
 * said "not now" (the operation keeps waiting), true with op->result set
 * otherwise. Socket calls pass MSG_DONTWAIT, so a descriptor left in
 * blocking mode cannot stall the loop; accept, connect, read and write have
 * no such flag, and refuse a blocking descriptor with -EINVAL (asyncio
 * refuses one in debug mode; here it would stall the whole loop).
 */
static bool refuses_blocking(uint8_t kind) {
    return kind == CIO__OP_READ || kind == CIO__OP_WRITE || kind == CIO__OP_ACCEPT ||
           kind == CIO__OP_CONNECT;
}

static bool attempt(cio__op *op, uint32_t revents) {
    ssize_t n;
    /* Stage 0: not tried yet. The blocking check runs once per operation;
     * stage 1 means it passed (and, for connect, that connect() is due). */
    if (op->stage == 0 && refuses_blocking(op->kind)) {
        int blocking = is_blocking(op->fd);
        if (blocking != 0) {
            op->result = blocking < 0 ? blocking : -EINVAL;
            return true;
        }
        op->stage = 1;
    }
    for (;;) {
        switch (op->kind) {
        case CIO__OP_POLL:
            if (!revents) return false;
            op->result = (ssize_t)(revents & (CIO__POLL_IN | CIO__POLL_OUT | EPOLLERR | EPOLLHUP));
            return true;
        case CIO__OP_RECV:
            n = cio__sys_recv(op->fd, op->u.rw.buf, op->u.rw.len, op->u.rw.flags | MSG_DONTWAIT);
            break;
        case CIO__OP_SEND:
            n = cio__sys_send(op->fd, cio__op_send_at(op),
                              op->u.rw.len - op->progress,
                              op->u.rw.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
            /* A sendall goes on until the whole buffer is out; a partial
             * send means the socket is full, and the next try will say so. */
            if (n >= 0 && (op->flags & CIO__OP_ALL)) {
                op->progress += (size_t)n;
                if (op->progress < op->u.rw.len) continue;
                n = (ssize_t)op->progress;
            }
            break;
        case CIO__OP_RECVMSG:
            n = cio__sys_recvmsg(op->fd, op->u.msg.msg, op->u.msg.flags | MSG_DONTWAIT);
            break;
        case CIO__OP_SENDMSG:
            n = cio__sys_sendmsg(op->fd, op->u.msg.msg, op->u.msg.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
            break;
        case CIO__OP_READ:
            n = cio__sys_read(op->fd, op->u.rw.buf, op->u.rw.len);
            break;
        case CIO__OP_WRITE:
            n = cio__sys_write(op->fd, op->u.rw.buf, op->u.rw.len);
            break;
        case CIO__OP_ACCEPT:
            n = cio__sys_accept4(op->fd, op->u.accept.addr, op->u.accept.addrlen,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
            /* A connection that went away before it was accepted is not
             * the listener's failure: take the next one. */
            if (n < 0 && errno == ECONNABORTED) continue;
            break;
        case CIO__OP_CONNECT:
            if (op->stage == 1) {
                n = cio__sys_connect(op->fd, op->u.connect.addr, op->u.connect.addrlen);
                /* In progress: the outcome is known once writable. That
                 * includes an attempt an earlier, cancelled or timed-out
                 * connect left going in the kernel (EALREADY): connecting
                 * again waits for its outcome, so a timed-out connect can
                 * simply be retried. */
                if (n < 0 && (errno == EINPROGRESS || errno == EINTR || errno == EALREADY)) {
                    op->stage = 2;
                    return false;
                }
                /* A Unix socket whose listener's backlog is full: try the
                 * connect again once writable. */
                if (n < 0 && errno == EAGAIN) return false;
            } else {
                if (!revents) return false;
                int err = 0;
                unsigned int len = sizeof err;
                n = cio__sys_getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (n == 0 && err) {
                    errno = err;
                    n = -1;
                }
            }
            break;
        default: op->result = -EOPNOTSUPP; return true;
        }
        if (n >= 0) {
            op->result = n;
            return true;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        op->result = -errno;
        return true;
    }
}

/* Completes an operation inside submit: no done() call, the caller reads
 * the result on return. */
static void complete_now(cio__op *op, ssize_t result) {
    op->result = result;
    op->state = CIO__OP_DONE;
}

static void finish(cio__io *io, cio__op *op, ssize_t result) {
    op->result = result;
    op->state = CIO__OP_DONE;
    io->in_flight--;
    op->done(op);
}

/*
 * Brings the kernel's registration of fd in line with what waits on it (see
 * the opening comment). Returns 0 or the error of epoll_ctl.
 */
static uint64_t event_key(int fd, const fd_entry *e) {
    return (uint64_t)e->generation << 32 | (uint64_t)(fd + 1);
}

static int sync_registration(epoll_state *st, int fd, fd_entry *e) {
    /* An owned or held descriptor keeps the registration it got when it
     * was adopted; nothing that waits on it changes that. */
    if (e->owner || e->held) return 0;
    bool persistent = e->watch[DIR_IN] || e->watch[DIR_OUT];
    uint32_t want = 0;
    if (e->watch[DIR_IN] || !cio__list_empty(&e->queue[DIR_IN])) want |= EPOLLIN;
    if (e->watch[DIR_OUT] || !cio__list_empty(&e->queue[DIR_OUT])) want |= EPOLLOUT;
    if (want && !persistent) want |= EPOLLONESHOT;
    if (!want) {
        /* A one-shot registration left armed fires once at most, finds
         * nothing waiting and disarms itself; a persistent one would fire
         * on every poll, so it goes. Either way the next wait arms afresh:
         * while nothing waits, the program may close the descriptor behind
         * the loop's back and get the number again for another file, whose
         * registration the kernel does not have. */
        if (e->in_epoll && e->armed && !(e->registered & EPOLLONESHOT)) {
            /* If the removal fails (other than for a registration that is
             * gone already), the next event of fd comes back here and it
             * is tried again, rather than left to fire for ever. */
            if (cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_DEL, fd, NULL) != 0 && errno != ENOENT &&
                errno != EBADF)
                return 0;
            e->in_epoll = 0;
        }
        e->armed = 0;
        return 0;
    }
    if (e->in_epoll && e->armed && e->registered == want) return 0;
    struct epoll_event ev = {.events = want, .data.u64 = event_key(fd, e)};
    int rc = cio__sys_epoll_ctl(st->epoll_fd, e->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    if (rc != 0 && errno == ENOENT)
        rc = cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    else if (rc != 0 && errno == EEXIST)
        rc = cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_MOD, fd, &ev);
    if (rc != 0) {
        /* Regular files cannot be polled: asyncio refuses them the same way. */
        int err = errno == EPERM ? -EPERM : -errno;
        e->in_epoll = errno == ENOENT || errno == EPERM || errno == EBADF ? 0 : e->in_epoll;
        return err;
    }
    e->registered = want;
    e->in_epoll = e->armed = 1;
    return 0;
}

/* Ends every operation of fd that waits for readiness with err, and drops
 * its watchers, when the descriptor cannot be armed. */
static void fail_all(cio__io *io, fd_entry *e, int err) {
    for (int d = 0; d < 2; d++) {
        cio__link *l;
        while ((l = cio__list_pop_front(&e->queue[d])) != NULL)
            finish(io, CIO__CONTAINER_OF(l, cio__op, link), err);
        cio__op *w = e->watch[d];
        e->watch[d] = NULL;
        if (w) finish(io, w, err);
    }
    cio__op *owner = e->owner;
    e->owner = NULL;
    if (owner) finish(io, owner, err);
}

/* Registration changes wait for the next poll (see the opening comment). */
static void mark_due(epoll_state *st, int fd, fd_entry *e) {
    e->fd = fd;
    if (!cio__link_linked(&e->dirty)) cio__list_push_back(&st->dirty, &e->dirty);
}

/* Returns how many descriptors failed to arm: their operations completed
 * with the error, so the wait that follows must not block. */
static int flush_registrations(cio__io *io) {
    epoll_state *st = io->state;
    cio__link *l;
    int failed = 0;
    while ((l = cio__list_pop_front(&st->dirty)) != NULL) {
        fd_entry *e = CIO__CONTAINER_OF(l, fd_entry, dirty);
        int rc = sync_registration(st, e->fd, e);
        if (rc < 0) {
            fail_all(io, e, rc);
            failed++;
        }
    }
    return failed;
}

/* What a finished attempt says about the descriptor: a recv that got less
 * than it asked for has probably emptied it. */
static void note_result(epoll_state *st, fd_entry *e, const cio__op *op) {
    if (op->kind == CIO__OP_CONNECT && op->result == 0 && e->held && e->hung_up) {
        /* A socket that is not connected polls as hung up (EPOLLHUP), and
         * the edge of its adoption said so. Connected now, it asks afresh:
         * the MOD polls the socket and reports its state as a new edge, so
         * a real hang-up is seen again. */
        struct epoll_event ev = {.events = e->registered, .data.u64 = event_key(op->fd, e)};
        if (cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_MOD, op->fd, &ev) == 0) e->hung_up = 0;
        return;
    }
    /* Once the peer shut down, the end of stream is still to be read, and
     * no further edge will say so. */
    if (e->hung_up) return;
    /* On a held socket that keeps record boundaries, a short read took one
     * datagram and more may wait, with no edge to come for them. (A
     * one-shot arm is level-triggered: it would report them.) */
    if (e->held && e->records) return;
    if (op->kind == CIO__OP_RECV && op->result >= 0 && (size_t)op->result < op->u.rw.len)
        e->quiet |= 1u << DIR_IN;
}

/* Serves fd's queue for one direction in order, until an operation meets
 * EAGAIN again. */
static void serve(cio__io *io, fd_entry *e, int dir, uint32_t revents) {
    cio__link *l;
    while ((l = e->queue[dir].next) != &e->queue[dir]) {
        cio__op *op = CIO__CONTAINER_OF(l, cio__op, link);
        if (!attempt(op, revents)) {
            e->quiet |= (uint8_t)(1u << dir);
            break;
        }
        cio__list_unlink(l);
        note_result(io->state, e, op);
        finish(io, op, op->result);
    }
}

/* Whether a new operation should try its call before waiting: not if it
 * would overtake others, and not if the descriptor is known to have
 * nothing for it (see the opening comment). On a one-shot descriptor a
 * readiness wait never tries and only a recv heeds `quiet`; on an owned one
 * a readiness wait completes at once unless its direction is quiet. */
static bool worth_trying(const fd_entry *e, const cio__op *op, int dir) {
    if (!cio__list_empty(&e->queue[dir])) return false;
    bool quiet = (e->quiet >> dir) & 1u;
    if (e->owner) return !quiet;
    /* A connect that has not called connect() yet must call it: no edge
     * would come for a socket that is not connecting. */
    if (e->held) return !quiet || (op->kind == CIO__OP_CONNECT && op->stage < 2);
    if (op->kind == CIO__OP_POLL) return false;
    return !(op->kind == CIO__OP_RECV && quiet);
}

static void close_fd(cio__io *io, cio__op *op);

static int adopt(epoll_state *st, int fd, fd_entry *e, cio__op *op);
static int check_held(cio__io *io, int fd, fd_entry *e);
static bool ready_now(cio__op *op, int dir);

static void epoll_submit(cio__io *io, cio__op *op) {
    epoll_state *st = io->state;
    if (op->kind == CIO__OP_CLOSE) {
        close_fd(io, op);
        return;
    }
    if (op->kind >= CIO__OP_FSYNC) {
        complete_now(op, -EOPNOTSUPP);
        return;
    }
    /* The loop's own descriptors are not the program's to wait on. */
    if (op->fd < 0 || op->fd == st->epoll_fd || op->fd == st->wake_fd) {
        complete_now(op, -EBADF);
        return;
    }
    int err = 0;
    fd_entry *e = cio__fd_table_get(&st->fds, op->fd, &err);
    if (!e) {
        complete_now(op, err);
        return;
    }
    int dir = direction(op);
    if (op->flags & CIO__OP_OWN) {
        int rc = adopt(st, op->fd, e, op);
        if (rc < 0) {
            complete_now(op, rc);
            return;
        }
    } else if (op->flags & CIO__OP_MULTISHOT) {
        /* A level-triggered watcher cannot share an owned descriptor's
         * edge registration (asyncio: "File descriptor is used by
         * transport"), nor a held one's, unless that registration turns
         * out to be stale (check_held). */
        if (e->watch[dir] || e->owner || (e->held && check_held(io, op->fd, e) == 0)) {
            complete_now(op, -EBUSY);
            return;
        }
        e->watch[dir] = op;
        /* Registered at once, so that a descriptor epoll refuses (a
         * regular file) is refused to the caller of add_reader. */
        int rc = sync_registration(st, op->fd, e);
        if (rc < 0) {
            e->watch[dir] = NULL;
            sync_registration(st, op->fd, e);
            complete_now(op, rc);
            return;
        }
    } else {
        if (worth_trying(e, op, dir)) {
            bool now;
            if (op->kind != CIO__OP_POLL) {
                now = attempt(op, 0);
            } else if (e->held) {
                now = ready_now(op, dir);
            } else {
                /* A readiness wait on an owned descriptor whose direction
                 * is not quiet answers with the direction (its owner
                 * reads until EAGAIN, which sets quiet). */
                op->result = dir == DIR_OUT ? CIO__POLL_OUT : CIO__POLL_IN;
                now = true;
            }
            if (now) {
                note_result(st, e, op);
                complete_now(op, op->result);
                return;
            }
            e->quiet |= (uint8_t)(1u << dir);
        }
        if (e->held && cio__list_empty(&e->queue[DIR_IN]) && cio__list_empty(&e->queue[DIR_OUT])) {
            /* A new wait on a held descriptor: the sweep checks it once
             * it has waited a whole sweep period without an edge. */
            e->check_shift = 0;
            e->check_at = st->sweeps + 2;
        }
        cio__list_push_back(&e->queue[dir], &op->link);
        if (!e->owner && !e->held) mark_due(st, op->fd, e);
    }
    op->state = CIO__OP_IN_FLIGHT;
    io->in_flight++;
}

/*
 * Makes fd an owned descriptor (see the opening comment): one edge-
 * triggered registration for both directions, the owner's watch op told of
 * every edge. Operations already waiting on fd stay queued and are served
 * by the edges from now on. Returns 0, -EBUSY if fd already has an owner or
 * a level-triggered watcher, or the error of epoll_ctl.
 */
static int register_edges(epoll_state *st, int fd, fd_entry *e) {
    /* EPOLLRDHUP: a short read cannot tell that the peer's end of stream
     * came with the data (see note_result). With edges it fires once, so
     * the level-triggered spin it causes elsewhere cannot happen. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
                             .data.u64 = event_key(fd, e)};
    int rc = cio__sys_epoll_ctl(st->epoll_fd, e->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    if (rc != 0 && errno == ENOENT)
        rc = cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    else if (rc != 0 && errno == EEXIST)
        rc = cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_MOD, fd, &ev);
    if (rc != 0) return errno == EPERM ? -EPERM : -errno;
    if (cio__link_linked(&e->dirty)) cio__list_unlink(&e->dirty);
    e->fd = fd;
    e->registered = ev.events;
    e->in_epoll = e->armed = 1;
    /* Nothing is known yet: no direction is quiet. */
    e->quiet = 0;
    e->hung_up = 0;
    return 0;
}

static int adopt(epoll_state *st, int fd, fd_entry *e, cio__op *op) {
    if (e->owner || e->watch[DIR_IN] || e->watch[DIR_OUT]) return -EBUSY;
    /* A held socket may become a transport's (or its number, closed
     * behind the loop's back, came back from an accept): the transport
     * takes the registration over. */
    if (e->held) {
        e->held = 0;
        st->held--;
        e->generation++;
    }
    int rc = register_edges(st, fd, e);
    if (rc < 0) return rc;
    e->owner = op;
    return 0;
}

/*
 * Held descriptors (cio_sock_adopt). The program promised to close a held
 * descriptor only through cio_close, so its edge-triggered registration is
 * kept for its whole life, as an owned one's. A promise can be broken: if
 * the program closes it with close(2) anyway, the kernel drops the
 * registration silently, and the number may come back for another file
 * that epoll does not watch. A wait on it would then never see an edge.
 * Three things bound the damage:
 *  - a number the kernel gives out through the loop (cio_sock_accept:
 *    fresh) or that is adopted again is known to be new: the stale entry is
 *    dropped at once (its waiters, which waited on a closed file, get
 *    -EBADF);
 *  - a watcher added to a held number checks the registration first;
 *  - the sweep: about once a second (the wait is cut short for it while
 *    anything is held) every held descriptor that has had a wait pending
 *    for a whole period without an edge is checked with one EPOLL_CTL_MOD.
 *    ENOENT means the number names another file now: the entry goes back
 *    to registrations made per wait, and its waiters are armed for the new
 *    file. EBADF means it is closed: its waiters end with -EBADF. A check
 *    that passes doubles the time to the next one (up to 64 periods), so
 *    100,000 idle connections cost about 1,600 checks a second. So a wait
 *    that the broken promise would have left hanging for ever ends, or
 *    goes on properly, within two periods.
 */
#define SWEEP_PERIOD_NS INT64_C(1000000000)
#define CHECK_SHIFT_MAX 6

/* Forgets that e is held, and its registration (which the kernel dropped
 * with the file, or which belongs to an older file). */
static void drop_held(epoll_state *st, fd_entry *e) {
    e->held = 0;
    st->held--;
    e->in_epoll = e->armed = 0;
    e->registered = 0;
    e->quiet = e->hung_up = 0;
    e->generation++;
}

/* Checks a held entry's registration: 0 if it is live (or cannot be told:
 * out of memory), -EBADF if fd is closed (dropped, its waiters ended), or
 * -ENOENT if fd is another file now (ENOENT; EPERM for a file that cannot
 * be polled): dropped, its waiters armed afresh, which for a file epoll
 * refuses ends them with -EPERM as for any plain wait on one. */
static int check_held(cio__io *io, int fd, fd_entry *e) {
    epoll_state *st = io->state;
    struct epoll_event ev = {.events = e->registered, .data.u64 = event_key(fd, e)};
    if (cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_MOD, fd, &ev) == 0 || errno == ENOMEM)
        return 0;
    drop_held(st, e);
    if (errno == EBADF) {
        fail_all(io, e, -EBADF);
        return -EBADF;
    }
    mark_due(st, fd, e);
    return -ENOENT;
}

static int epoll_hold(cio__io *io, int fd) {
    epoll_state *st = io->state;
    if (fd == st->epoll_fd || fd == st->wake_fd) return -EBADF;
    int err = 0;
    fd_entry *e = cio__fd_table_get(&st->fds, fd, &err);
    if (!e) return err;
    if (e->held) {
        /* Adopted twice, unless the first adoption's file is gone. */
        int rc = check_held(io, fd, e);
        if (rc == 0) return -EBUSY;
        if (rc == -EBADF) return rc;
    }
    if (e->owner || e->watch[DIR_IN] || e->watch[DIR_OUT]) return -EBUSY;
    /* Operations already waiting stay queued and are served by the edges
     * from now on (the first edge comes at once if fd is ready). */
    int type = 0;
    unsigned int len = sizeof type;
    bool records = cio__sys_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
                   type != SOCK_STREAM;
    int rc = register_edges(st, fd, e);
    if (rc < 0) return rc;
    e->records = records;
    e->held = 1;
    st->held++;
    e->check_shift = 0;
    e->check_at = st->sweeps + 2;
    if (st->held == 1) st->next_sweep = cio__clock_real_ns() + SWEEP_PERIOD_NS;
    return 0;
}

static void epoll_fresh(cio__io *io, int fd) {
    epoll_state *st = io->state;
    fd_entry *e = cio__fd_table_find(&st->fds, fd);
    if (!e || !e->held) return;
    drop_held(st, e);
    if (cio__link_linked(&e->dirty)) cio__list_unlink(&e->dirty);
    fail_all(io, e, -EBADF);
}

static void sweep_entry(void *p, int fd, void *arg) {
    cio__io *io = arg;
    epoll_state *st = io->state;
    fd_entry *e = p;
    if (!e->held || (cio__list_empty(&e->queue[DIR_IN]) && cio__list_empty(&e->queue[DIR_OUT])))
        return;
    if ((int32_t)(st->sweeps - e->check_at) < 0) return;
    if (check_held(io, fd, e) == 0) {
        e->check_at = st->sweeps + (1u << e->check_shift);
        if (e->check_shift < CHECK_SHIFT_MAX) e->check_shift++;
    }
}

/* Runs the sweep when it is due, and returns the timeout the wait may
 * have: cut to the next sweep while anything is held. */
static int64_t sweep(cio__io *io, int64_t timeout_ns) {
    epoll_state *st = io->state;
    if (!st->held) return timeout_ns;
    int64_t now = cio__clock_real_ns();
    if (now >= st->next_sweep) {
        st->sweeps++;
        st->next_sweep = now + SWEEP_PERIOD_NS;
        size_t before = io->in_flight;
        cio__fd_table_each(&st->fds, sweep_entry, io);
        /* Waits that ended (closed descriptors) must not wait for the
         * poll to time out. */
        if (io->in_flight < before) return 0;
    }
    int64_t left = st->next_sweep - now;
    return timeout_ns < 0 || timeout_ns > left ? left : timeout_ns;
}

/* A readiness wait on a held descriptor that is not known to be quiet:
 * edges only tell of changes, so whether fd is ready now takes a poll(2).
 * Returns true with the result set if it is (or poll failed). */
static bool ready_now(cio__op *op, int dir) {
    struct pollfd p = {.fd = op->fd, .events = dir == DIR_OUT ? POLLOUT : POLLIN};
    int n;
    do n = poll(&p, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        op->result = -errno;
        return true;
    }
    if (n == 0) return false;
    if (p.revents & POLLNVAL) {
        op->result = -EBADF;
        return true;
    }
    op->result = (ssize_t)(p.revents & (CIO__POLL_IN | CIO__POLL_OUT | POLLERR | POLLHUP));
    return true;
}

static void epoll_cancel(cio__io *io, cio__op *op, int reason) {
    epoll_state *st = io->state;
    if (op->state != CIO__OP_IN_FLIGHT) return;
    fd_entry *e = cio__fd_table_find(&st->fds, op->fd);
    int dir = direction(op);
    bool disowned = false;
    if (op->flags & CIO__OP_OWN) {
        /* The owner lets go: the descriptor goes back to registrations
         * made per wait (one-shot), which nothing has asked for yet. */
        if (e && e->owner == op) {
            e->owner = NULL;
            e->quiet = 0;
            disowned = true;
        }
    } else if (op->flags & CIO__OP_MULTISHOT) {
        if (e && e->watch[dir] == op) e->watch[dir] = NULL;
    } else {
        cio__list_unlink(&op->link);
        /* Nothing may wait on the descriptor until the next poll, and in
         * that gap the program may close it behind the loop's back: a
         * later wait must arm afresh (see sync_registration). */
        if (e && !e->owner && !e->held && cio__list_empty(&e->queue[DIR_IN]) &&
            cio__list_empty(&e->queue[DIR_OUT]) && !e->watch[DIR_IN] && !e->watch[DIR_OUT])
            e->armed = 0;
    }
    int fd = op->fd; /* the record may be gone once finished */
    finish(io, op, reason);
    if (!e) return;
    if (disowned) {
        if (cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_DEL, fd, NULL) == 0 || errno == ENOENT ||
            errno == EBADF)
            e->in_epoll = e->armed = 0;
        e->registered = 0;
    }
    if (!e->owner && !e->held) mark_due(st, fd, e);
}

/* CIO__OP_CLOSE: every operation of the descriptor ends with -EBADF, its
 * registration goes, and then (unless keep_fd) the descriptor is closed. */
static void close_fd(cio__io *io, cio__op *op) {
    epoll_state *st = io->state;
    /* The loop's own descriptors have no entry to forget; closing them
     * breaks the loop, as closing any descriptor one does not own would. */
    fd_entry *e = op->fd == st->epoll_fd || op->fd == st->wake_fd
                      ? NULL
                      : cio__fd_table_find(&st->fds, op->fd);
    if (e) {
        if (e->held) {
            e->held = 0;
            st->held--;
        }
        fail_all(io, e, -EBADF);
        if (e->in_epoll) cio__sys_epoll_ctl(st->epoll_fd, EPOLL_CTL_DEL, op->fd, NULL);
        e->in_epoll = e->armed = 0;
        e->registered = 0;
        e->quiet = e->hung_up = 0;
        /* Events of this descriptor still in the current batch are now
         * stale (see the opening comment). */
        e->generation++;
        if (cio__link_linked(&e->dirty)) cio__list_unlink(&e->dirty);
    }
    if (op->u.close.keep_fd)
        complete_now(op, 0);
    else
        complete_now(op, op->fd < 0 ? -EBADF : cio__sys_close(op->fd) == 0 ? 0 : -errno);
}

static void handle_event(cio__io *io, int fd, uint32_t generation, uint32_t events) {
    epoll_state *st = io->state;
    fd_entry *e = cio__fd_table_find(&st->fds, fd);
    if (!e || e->generation != generation) return;
    if (e->registered & EPOLLONESHOT) e->armed = 0;
    /* Errors and hang-ups concern both directions: the retried calls
     * report them. */
    uint32_t failed = events & (EPOLLERR | EPOLLHUP);
    uint32_t in = (events & EPOLLIN) || failed ? CIO__POLL_IN | failed : 0;
    uint32_t out = (events & EPOLLOUT) || failed ? CIO__POLL_OUT | failed : 0;
    uint32_t ready[2] = {in, out};
    if ((e->owner || e->held) && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) e->hung_up = 1;
    for (int d = 0; d < 2; d++) {
        if (!ready[d]) continue;
        e->quiet &= (uint8_t)~(1u << d);
        serve(io, e, d, ready[d]);
        /* A watcher completes once per readiness and stays in flight. */
        if (e->watch[d]) {
            e->watch[d]->result = ready[d];
            e->watch[d]->done(e->watch[d]);
        }
    }
    /* The owner hears of every edge, with both directions at once. */
    if (e->owner) {
        e->owner->result = in | out | (e->hung_up ? CIO__POLL_RDHUP : 0);
        e->owner->done(e->owner);
        return;
    }
    if (!e->held) mark_due(st, fd, e);
}

static int epoll_poll(cio__io *io, int64_t timeout_ns) {
    epoll_state *st = io->state;
    struct epoll_event events[64];
    timeout_ns = sweep(io, timeout_ns);
    int failed = flush_registrations(io);
    if (failed) timeout_ns = 0;
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
    int n = cio__sys_epoll_wait(st->epoll_fd, events, 64, timeout_ns < 0 ? NULL : &ts);
    if (n < 0) return failed ? failed : -errno;
    for (int i = 0; i < n; i++) {
        uint64_t key = events[i].data.u64;
        if (key == 0) {
            uint64_t count;
            ssize_t ignored = read(st->wake_fd, &count, sizeof count);
            (void)ignored;
            continue;
        }
        handle_event(io, (int)(uint32_t)(key - 1), (uint32_t)(key >> 32), events[i].events);
    }
    return n + failed;
}

static void epoll_wake(cio__io *io) {
    epoll_state *st = io->state;
    uint64_t one = 1;
    ssize_t ignored = write(st->wake_fd, &one, sizeof one);
    (void)ignored;
}

static void drain_entry(void *p, int fd, void *arg) {
    (void)fd;
    fail_all(arg, p, -ECANCELED);
}

static void epoll_drain(cio__io *io) {
    epoll_state *st = io->state;
    cio__fd_table_each(&st->fds, drain_entry, io);
}

const cio__backend cio__backend_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .fini = epoll_fini,
    .submit = epoll_submit,
    .cancel = epoll_cancel,
    .poll = epoll_poll,
    .wake = epoll_wake,
    .drain = epoll_drain,
    .hold = epoll_hold,
    .fresh = epoll_fresh,
};
