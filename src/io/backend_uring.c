/*
 * The io_uring backend: operations submitted to the kernel.
 *
 * Where the epoll backend tries a system call and waits for readiness when
 * the kernel says "not now", this one hands every operation to the kernel
 * as a submission queue entry (SQE) whose user_data is the operation record
 * itself, and completes the operation when its completion queue entry (CQE)
 * comes back. Nothing but connect() is tried at submit (see connect_now):
 * submit() only prepares the SQE,
 * and the loop's next poll() submits everything prepared during the
 * iteration and waits for completions in one io_uring_enter (io_uring_
 * submit_and_wait_timeout with the next timer's deadline).
 *
 * Per descriptor (src/base/fd_table.h) the backend keeps what epoll keeps:
 * a FIFO queue per direction, the persistent watchers and the owner.
 *  - Order. The kernel does not promise that two receives parked on one
 *    socket complete in the order they were submitted (io-uring.md §4.6),
 *    so only the head of each direction's queue is in the kernel; the next
 *    one is submitted when the head has had its final completion. That
 *    keeps the contract's FIFO per direction (and a CIO__OP_ALL send, which
 *    is resubmitted for its rest after a short send, keeps its place).
 *  - Readiness waits (CIO__OP_POLL) are IORING_OP_POLL_ADD. A one-shot wait
 *    is one poll. A persistent watcher (add_reader, level-triggered as in
 *    asyncio) is a one-shot poll that is prepared again after each report;
 *    it is submitted with the next poll(), after the watcher's callback
 *    ran, so a descriptor that is still ready reports again, as a level-
 *    triggered epoll registration does.
 *  - An owned descriptor (CIO__OP_OWN) gets one multishot poll for both
 *    directions and POLLRDHUP: the kernel posts a CQE at every wake-up of
 *    the socket, which are the edges epoll's EPOLLET gives. A multishot
 *    poll that the kernel ends on its own (no IORING_CQE_F_MORE, e.g. under
 *    CQ pressure) is submitted again.
 *  - Sends carry MSG_NOSIGNAL (a peer that went away is -EPIPE, never
 *    SIGPIPE); MSG_DONTWAIT is dropped from the caller's flags, because it
 *    would make the kernel answer -EAGAIN instead of waiting.
 *  - A CQE with -EAGAIN (older kernels, or a socket the kernel did not
 *    park) turns the operation into a readiness poll for its direction,
 *    after which the operation is submitted again. A connect that finds an
 *    attempt already in progress (-EALREADY, left by an earlier cancelled
 *    connect) waits for writability and reads SO_ERROR, as epoll does.
 *  - accept, connect, read and write refuse a descriptor in blocking mode
 *    with -EINVAL, and readiness waits refuse regular files and directories
 *    with -EPERM, exactly as the epoll backend does: the two backends give
 *    the same answers.
 *
 * Cancelling is two-phase (backend.h). An operation still waiting in its
 * queue (not in the kernel) completes at once with the reason. One in the
 * kernel is marked, its reason kept in its result field, and an
 * IORING_OP_ASYNC_CANCEL naming it is prepared; its own final CQE ends it:
 * -ECANCELED becomes the reason, anything else (bytes received, a
 * connection accepted) is the real result, so nothing is lost. If the
 * operation's SQE was not even submitted yet, it is turned into a NOP
 * instead (drop_unsubmitted): the call never happens, as on epoll.
 *
 * Closing (CIO__OP_CLOSE) is synchronous, as on epoll: the descriptor's
 * queued operations end with -EBADF at once, those in the kernel are
 * cancelled with -EBADF as the reason, and close waits (entering the kernel
 * as often as needed) until the descriptor has no request left in the
 * kernel; only then is the descriptor closed. So no request can ever run on
 * a later descriptor that reuses the number, and every operation has had
 * its final completion before the number is free. The descriptor's count of
 * requests in the kernel (in_kernel) makes that wait exact.
 *
 * Loop close (drain) does the same for every descriptor and waits until no
 * request is left. A request the kernel never completes is never freed nor
 * reported done: drain keeps waiting (and says so on stderr every second),
 * because the kernel may still write into the memory the request names.
 *
 * Thread binding. The ring is set up with SINGLE_ISSUER|DEFER_TASKRUN when
 * the kernel has them (and they are not switched off), which binds it to
 * the thread that set it up. A loop may be created in one thread and run
 * in another: when a different thread drives the loop while nothing of the
 * program's is in the kernel, the ring is set up again for that thread
 * (the wake-up poll is armed again, nothing else is lost); with requests in
 * the kernel that is refused (-EEXIST), which a loop that changes threads
 * while it has I/O in flight is not expected to do. Threads are told apart
 * by a number of cio's own (thread_id), never by pthread_t, which a new
 * thread inherits from one that ended.
 *
 * Cross-thread wake-up is an eventfd under a multishot poll (the kernel's
 * single-issuer rule forbids other threads to submit): wake() only writes
 * the eventfd, which is thread-safe.
 *
 * The kernel writes received bytes itself, so Valgrind cannot see those
 * writes: completed receives mark their bytes defined for it (a no-op
 * outside Valgrind).
 */
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)(addr), (void)(len))
#endif

#include "io.h"
#include "uring_probe.h"
#include "uring_remap.h"

enum { DIR_IN = 0, DIR_OUT = 1 };

/* user_data of the backend's own requests; operation records are aligned,
 * so these small values never name one. */
#define TAG_WAKE 1u
#define TAG_CANCEL 2u

/* op->stage bits while the operation is in flight. */
#define ST_KERNEL 0x01u   /* a request of the operation is in (or bound for) the kernel */
#define ST_CANCEL 0x02u   /* cancel asked; op->result holds the reason */
#define ST_WAIT 0x04u     /* the request is a readiness poll before the real call */
#define ST_CHECK 0x08u    /* connect: after the poll, read SO_ERROR */
#define ST_FAULT 0x10u    /* an injected failure rides a NOP (see issue) */
#define ST_RECV 0x20u     /* an owner's multishot receive is in the kernel (fast path) */
#define ST_RECV_FAULT 0x40u /* that receive is an injected failure riding a NOP */
#define ST_DROPPED 0x80u  /* cancelled before the kernel saw it: its SQE became a NOP */

/* The low bit of an owner's user_data tells its receive request from its
 * poll (operation records are aligned). */
#define TAG_RECV_BIT 1u
/* The provided-buffer ring's group id, and "no buffer" in a chain. */
#define BGID 1
#define NO_BUF UINT32_MAX

/* What the backend knows of each buffer of the ring. */
typedef struct buf_meta {
    uint32_t len;   /* bytes the kernel put in it */
    uint32_t next;  /* the next chunk of the same owner, or NO_BUF */
    uint8_t held;   /* out of the ring: in the kernel's hands or an owner's chain */
} buf_meta;

typedef struct fd_entry {
    cio__link queue[2];    /* operations for in / out, FIFO; only the head is in the kernel */
    cio__op *watch[2];     /* persistent readiness watchers */
    cio__op *owner;        /* the owner's edge watch, for an owned descriptor */
    size_t in_kernel;      /* requests of this descriptor in the kernel */
    uint8_t hung_up;       /* owned: the peer shut down (sticky until close) */
    uint8_t held;          /* adopted (cio_sock_adopt) until cio_close */
    uint64_t held_inode;   /* the adopted file's, to tell a number reused behind our back */
    uint8_t file_type;     /* file ops: FT_UNKNOWN, FT_RING or FT_POOL (until close) */
} fd_entry;

typedef struct uring_state {
    struct io_uring ring;
    struct io_uring_params params;
    cio__uring_config config;
    unsigned setup_flags;
    int wake_fd;
    uint64_t wake_count;
    cio__fd_table fds;
    /* An epoll instance made on first need, only to ask the kernel whether
     * a descriptor can be polled at all (see uring_pollable); -1 until. */
    int scratch_epoll_fd;
    size_t in_kernel;      /* the program's requests in the kernel, all descriptors */
    cio__io *io;           /* whose state this is (for get_sqe) */
    uint64_t issuer;       /* the thread that set the ring up (thread_id) */
    uint8_t ring_up;       /* ring set up (io_uring_queue_exit is due) */
    uint8_t wake_armed;
    /* The fast path (see "The fast path" below). */
    uint8_t overflowed;    /* the CQ overflowed: the next enter must not sleep */
    uint8_t ring_fd_registered;
    uint8_t bufs_registered;
    uint64_t registered_by; /* the thread whose io_uring table holds the ring fd */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *bufmem;
    buf_meta *bufs;
    cio__link files;       /* file operations in the kernel (see "Files") */
} uring_state;

static void init_entry(void *p) {
    fd_entry *e = p;
    memset(e, 0, sizeof *e);
    cio__list_init(&e->queue[DIR_IN]);
    cio__list_init(&e->queue[DIR_OUT]);
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

/* A number for the calling thread that no other thread of the process ever
 * had: a pthread_t (or a kernel tid) of a thread that ended is given to
 * the next one, and the kernel would then refuse the new thread's
 * submissions to a SINGLE_ISSUER ring. */
static uint64_t thread_id(void) {
    static _Atomic uint64_t next_id;
    static CIO__TLS uint64_t id;
    if (!id) id = atomic_fetch_add(&next_id, 1) + 1;
    return id;
}

static int setup_ring(uring_state *st) {
    memset(&st->params, 0, sizeof st->params);
    st->params.flags = st->setup_flags | IORING_SETUP_CQSIZE;
    st->params.cq_entries = st->config.cq_entries;
    int rc = io_uring_queue_init_params(st->config.sq_entries, &st->ring, &st->params);
    if (rc < 0) return rc;
    RING_MAPPED();
    st->ring_up = 1;
    st->issuer = thread_id();
    st->wake_armed = 0;
    st->ring_fd_registered = 0;
    st->bufs_registered = 0;
    return 0;
}

static int register_bufs(uring_state *st);

static void teardown_ring(uring_state *st) {
    if (st->ring_up && st->ring_fd_registered == 1) {
        /* The registration lives in the registering thread's own io_uring
         * table. From another thread, unregistering would remove whatever
         * that thread has at the same index (its own loop's ring), so the
         * entry is only forgotten here: the kernel drops it when that
         * thread exits. */
        if (st->registered_by == thread_id()) {
            io_uring_unregister_ring_fd(&st->ring);
        } else {
            st->ring.int_flags &= (__u8)~1u; /* liburing's INT_FLAG_REG_RING */
            st->ring.enter_ring_fd = st->ring.ring_fd;
        }
        st->ring_fd_registered = 0;
    }
    if (st->ring_up) {
        RING_UNMAPPING();
        io_uring_queue_exit(&st->ring);
    }
    st->ring_up = 0;
}

static struct io_uring_sqe *arm_wake(uring_state *st);

/* Makes the ring usable from the calling thread (see the opening comment).
 * Returns 0 or -errno. */
static int own_ring(uring_state *st) {
    if (!(st->setup_flags & IORING_SETUP_SINGLE_ISSUER) || st->issuer == thread_id())
        return 0;
    if (st->in_kernel) return -EEXIST;
    /* Nothing of the program's is in the kernel: a new ring for this
     * thread. Only the wake-up poll is lost, and it is armed again. */
    teardown_ring(st);
    int rc = setup_ring(st);
    if (rc < 0) return rc;
    if (st->bufs && register_bufs(st) < 0) {
        /* The owners that receive through the ring get -ENOBUFS when they
         * arm again, and recv() themselves (see recv_arm). */
    }
    arm_wake(st);
    return 0;
}

static int reap(cio__io *io);

/* An SQE for the next batch. A full submission queue is submitted first
 * (the only early submission). The kernel may refuse new submissions while
 * completions wait in its overflow list (a CQ far smaller than the load):
 * then the completions are handled first, here, which is why every
 * handler and every walk over a queue allows for completions handled
 * inside it (see cancel_all). */
static struct io_uring_sqe *get_sqe(uring_state *st) {
    for (;;) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
        if (sqe) return sqe;
        if (own_ring(st) < 0) {
            /* Cannot happen on a loop used from one thread; an SQE that
             * never comes would lose an operation, so say so loudly. */
            fprintf(stderr, "cio: io_uring: submission queue full on a foreign thread\n");
            abort();
        }
        int rc = io_uring_submit(&st->ring);
        st->io->counters.enters++;
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            fprintf(stderr, "cio: io_uring_submit: %s\n", strerror(-rc));
            abort();
        }
        if (io_uring_sq_space_left(&st->ring) == 0) {
            /* Refused while completions wait in the overflow list: they
             * are brought into the CQ and handled first. */
            if (IO_URING_READ_ONCE(*st->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) {
                io_uring_get_events(&st->ring);
                st->io->counters.enters++;
            }
            reap(st->io);
        }
    }
}

static struct io_uring_sqe *arm_wake(uring_state *st) {
    struct io_uring_sqe *sqe = get_sqe(st);
    if (st->config.no_multishot)
        io_uring_prep_poll_add(sqe, st->wake_fd, POLLIN);
    else
        io_uring_prep_poll_multishot(sqe, st->wake_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, TAG_WAKE);
    st->wake_armed = 1;
    return sqe;
}

static int setup_bufs(uring_state *st);
static void free_bufs(uring_state *st);

static int uring_init(cio__io *io) {
    uring_state *st = cio__calloc(1, sizeof *st);
    if (!st) return -ENOMEM;
    cio__uring_probe_result probe;
    int rc = cio__uring_probe(&probe);
    if (rc < 0) {
        snprintf(io->fallback_reason, sizeof io->fallback_reason, "%s", probe.reason);
        cio__free(st);
        return rc;
    }
    st->config = probe.config;
    st->io = io;
    st->setup_flags = probe.setup_flags;
    st->scratch_epoll_fd = -1;
    st->wake_fd = cio__sys_eventfd();
    if (st->wake_fd < 0) {
        rc = -errno;
        cio__free(st);
        return rc;
    }
    rc = setup_ring(st);
    if (rc < 0) {
        snprintf(io->fallback_reason, sizeof io->fallback_reason, "io_uring_setup: %s",
                 strerror(-rc));
        close(st->wake_fd);
        cio__free(st);
        return rc;
    }
    cio__fd_table_init(&st->fds, sizeof(fd_entry), init_entry);
    cio__list_init(&st->files);
    arm_wake(st);
    io->state = st;
    if (!st->config.no_mshot_accept) io->caps |= CIO__CAP_ACCEPT_MULTI;
    if (!st->config.no_mshot_recv && setup_bufs(st) == 0) io->caps |= CIO__CAP_RECV_RING;
    if (!st->config.no_ring_send) io->caps |= CIO__CAP_SEND_RING;
    io->file_ops = probe.file_ops;
    return 0;
}

static void uring_fini(cio__io *io) {
    uring_state *st = io->state;
    if (!st) return;
    if (st->in_kernel) {
        /* drain could not reap everything (see its comment): the kernel may
         * still write into what those requests name, so the ring and the
         * state are left as they are, never freed. */
        io->state = NULL;
        return;
    }
    teardown_ring(st);
    free_bufs(st);
    close(st->wake_fd);
    if (st->scratch_epoll_fd >= 0) close(st->scratch_epoll_fd);
    cio__fd_table_destroy(&st->fds);
    cio__free(st);
    io->state = NULL;
}

/* 1 if fd is in blocking mode, 0 if not, or -errno (as epoll's). */
static int is_blocking(int fd) {
    int fl = cio__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0) return -errno;
    return !(fl & O_NONBLOCK);
}

static bool refuses_blocking(uint8_t kind) {
    return kind == CIO__OP_READ || kind == CIO__OP_WRITE || kind == CIO__OP_ACCEPT ||
           kind == CIO__OP_CONNECT;
}

/* What epoll refuses to watch, refused here too: files that are always
 * "ready" (regular files, directories). 0 or -errno. */
static int check_pollable(int fd) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) return -errno;
    if (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)) return -EPERM;
    return 0;
}

static void complete_now(cio__op *op, ssize_t result) {
    op->result = result;
    op->state = CIO__OP_DONE;
}

static void finish(cio__io *io, cio__op *op, ssize_t result) {
    op->result = result;
    op->state = CIO__OP_DONE;
    op->stage = 0;
    io->in_flight--;
    op->done(op);
}

static int strip_flags(int flags) {
    return flags & ~MSG_DONTWAIT;
}

/* Prepares the operation's next request (see the opening comment for what
 * each kind becomes) and counts it on its descriptor. */
static void issue(uring_state *st, fd_entry *e, cio__op *op) {
    struct io_uring_sqe *sqe = get_sqe(st);
    int fd = op->fd;
    /* Fault injection (src/base/fault.h): the kernel's calls do not pass
     * through the wrappers, so the failure the wrapper would inject comes
     * back through the kernel as a NOP's completion, on the same path as a
     * real error. */
    if (cio__fault_hit()) {
        op->stage |= ST_FAULT;
        io_uring_prep_nop(sqe);
    } else if (op->stage & ST_WAIT) {
        io_uring_prep_poll_add(sqe, fd, direction(op) == DIR_OUT ? POLLOUT : POLLIN);
    } else if ((op->flags & CIO__OP_OWN) && op->kind == CIO__OP_ACCEPT) {
        io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } else if (op->flags & CIO__OP_OWN) {
        /* An owner that receives through the ring needs no POLLIN: its
         * receive request reports the data (and a poll would wake once
         * more per arrival). */
        unsigned mask = (op->flags & CIO__OP_RECV_RING) ? POLLRDHUP : POLLIN | POLLRDHUP;
        /* Nor does one that sends through the ring (its sends wait for
         * room themselves) need POLLOUT: a send that found the socket full
         * would wake the poll too when room comes. */
        if (!(op->flags & CIO__OP_SEND_RING)) mask |= POLLOUT;
        io_uring_prep_poll_multishot(sqe, fd, mask);
    } else {
        switch (op->kind) {
        case CIO__OP_POLL:
            io_uring_prep_poll_add(sqe, fd, direction(op) == DIR_OUT ? POLLOUT : POLLIN);
            break;
        case CIO__OP_RECV:
            io_uring_prep_recv(sqe, fd, op->u.rw.buf, cio__rw_chunk(op->u.rw.len),
                               strip_flags(op->u.rw.flags));
            break;
        case CIO__OP_SEND:
            io_uring_prep_send(sqe, fd, cio__op_send_at(op),
                               cio__rw_chunk(op->u.rw.len - op->progress),
                               strip_flags(op->u.rw.flags) | MSG_NOSIGNAL);
            break;
        case CIO__OP_RECVMSG:
            io_uring_prep_recvmsg(sqe, fd, op->u.msg.msg, (unsigned)strip_flags(op->u.msg.flags));
            break;
        case CIO__OP_SENDMSG:
            io_uring_prep_sendmsg(sqe, fd, op->u.msg.msg,
                                  (unsigned)(strip_flags(op->u.msg.flags) | MSG_NOSIGNAL));
            break;
        case CIO__OP_ACCEPT:
            io_uring_prep_accept(sqe, fd, op->u.accept.addr, op->u.accept.addrlen,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
            break;
        case CIO__OP_CONNECT:
            io_uring_prep_connect(sqe, fd, op->u.connect.addr, op->u.connect.addrlen);
            break;
        case CIO__OP_READ:
            io_uring_prep_read(sqe, fd, op->u.rw.buf, cio__rw_chunk(op->u.rw.len), (uint64_t)-1);
            break;
        case CIO__OP_WRITE:
            io_uring_prep_write(sqe, fd, op->u.rw.buf, cio__rw_chunk(op->u.rw.len), (uint64_t)-1);
            break;
        default: io_uring_prep_nop(sqe); break;
        }
    }
    io_uring_sqe_set_data(sqe, op);
    op->stage |= ST_KERNEL;
    e->in_kernel++;
    st->in_kernel++;
}

static void cancel_recv(uring_state *st, cio__op *op);
static void owner_finish(cio__io *io, uring_state *st, cio__op *op);
static void owner_recv_prepare(uring_state *st, cio__op *op);
static void issue_recv(uring_state *st, fd_entry *e, cio__op *op);

/*
 * An operation's request that is still in the submission queue, which the
 * kernel has not seen (the ring is entered only by poll, and by get_sqe
 * when the queue is full, and each entry submits everything prepared), is
 * turned into a NOP: the request never happens, and the NOP's completion
 * ends the operation with the cancel's reason. Without this the request
 * would still run before the ASYNC_CANCEL behind it, and a recv cancelled
 * in the step that issued it would take the data that arrived meanwhile
 * (lost to the program, whose next recv waits in vain), a connect would
 * still connect. The epoll backend never starts such a call at all.
 */
static bool drop_unsubmitted(uring_state *st, cio__op *op) {
    struct io_uring_sq *sq = &st->ring.sq;
    unsigned shift = (st->ring.flags & IORING_SETUP_SQE128) ? 1 : 0;
    for (unsigned i = sq->sqe_head; i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[(i & sq->ring_mask) << shift];
        if (sqe->user_data != (uint64_t)(uintptr_t)op) continue;
        io_uring_prep_nop(sqe); /* keeps user_data */
        return true;
    }
    return false;
}

static void request_cancel(uring_state *st, cio__op *op, int reason) {
    if (op->stage & ST_CANCEL) return;
    op->stage |= ST_CANCEL;
    op->result = reason;
    /* An owner that receives through the ring has a second request. */
    if (op->stage & ST_RECV) cancel_recv(st, op);
    if (!(op->stage & ST_KERNEL)) {
        /* Nothing (left) in the kernel: an owner ends here. */
        if ((op->flags & CIO__OP_OWN) && !(op->stage & ST_RECV) && op->state == CIO__OP_IN_FLIGHT)
            owner_finish(st->io, st, op);
        return;
    }
    if (!(op->flags & (CIO__OP_OWN | CIO__OP_MULTISHOT)) && !(op->stage & ST_FAULT) &&
        drop_unsubmitted(st, op)) {
        op->stage |= ST_DROPPED;
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(st);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(sqe, TAG_CANCEL);
}

/* ---- Files ------------------------------------------------------------------
 *
 * The file operations (op.h: FSYNC, STATX, OPENAT, FILE_READ, FILE_WRITE,
 * FILE_CLOSE) go to the kernel as they come, without the per-direction
 * queues of sockets: reads of one file at several offsets run at once, as
 * they do on the thread pool, where nothing orders them either. Each one
 * in the kernel is on st->files (its link is free: it is in no queue) and
 * counted in st->in_kernel; those on a descriptor (read, write, fsync) are
 * also counted in their descriptor's in_kernel, so a close of the
 * descriptor cancels them and waits for them like its other requests, and
 * no request can run on a later descriptor that reuses the number.
 *
 * Only regular files and block devices are read and written here. Anything
 * else (a pipe, a FIFO, a socket, a terminal) is refused with -EOPNOTSUPP,
 * and the caller runs the call on the thread pool as before: the kernel
 * would park such a read on a poll where the pool blocks in it, would not
 * answer -EAGAIN for a non-blocking one, and a cancel would end it where
 * the pool lets it run, so the answers would differ from the pool's. The
 * type is looked up once per descriptor (fstat) and kept until cio closes
 * or forgets the descriptor (CIO__OP_CLOSE).
 *
 * Cancel is two-phase, as for every operation: an ASYNC_CANCEL, then the
 * operation's own final CQE. A read the kernel already did returns its
 * bytes (a page-cache read is done inline, during the submission); one
 * still waiting (in io-wq, or for a page) ends with the reason, and so
 * does one whose io-wq worker the cancel interrupted (-EINTR, or the
 * kernel's internal ERESTARTSYS: nothing was done). FILE_CLOSE is never
 * cancelled: the loops forgot the descriptor already, and a close the
 * cancel stopped would leave it open behind the program's back; the call
 * waits for it and returns its result.
 */
enum { FT_UNKNOWN = 0, FT_RING, FT_POOL };
#define KERNEL_ERESTARTSYS 512

static bool is_file_op(const cio__op *op) {
    switch (op->kind) {
    case CIO__OP_FSYNC:
    case CIO__OP_STATX:
    case CIO__OP_OPENAT:
    case CIO__OP_FILE_READ:
    case CIO__OP_FILE_WRITE:
    case CIO__OP_FILE_CLOSE: return true;
    default: return false;
    }
}

/* Read, write and fsync work on op->fd and count on its entry; openat and
 * statx name a directory there, close a descriptor the loops forgot. */
static bool on_descriptor(uint8_t kind) {
    return kind == CIO__OP_FSYNC || kind == CIO__OP_FILE_READ || kind == CIO__OP_FILE_WRITE;
}

/* 0 if the ring reads and writes fd (see above), -EOPNOTSUPP if the pool
 * must, or fstat's -errno. */
static int ring_file(fd_entry *e, int fd) {
    if (e->file_type == FT_UNKNOWN) {
        struct stat sb;
        if (fstat(fd, &sb) != 0) return -errno;
        e->file_type = S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode) ? FT_RING : FT_POOL;
    }
    return e->file_type == FT_RING ? 0 : -EOPNOTSUPP;
}

static void file_submit(cio__io *io, cio__op *op) {
    uring_state *st = io->state;
    if (!(io->file_ops & CIO__FILE_OP_BIT(op->kind))) {
        complete_now(op, -EOPNOTSUPP);
        return;
    }
    bool own_fd = op->fd == st->ring.ring_fd || op->fd == st->wake_fd;
    if (own_fd && (on_descriptor(op->kind) || op->kind == CIO__OP_FILE_CLOSE)) {
        complete_now(op, -EBADF);
        return;
    }
    int rc = own_ring(st);
    if (rc < 0) {
        complete_now(op, rc);
        return;
    }
    fd_entry *e = NULL;
    if (on_descriptor(op->kind)) {
        e = cio__fd_table_get(&st->fds, op->fd, &rc);
        if (!e || (op->kind != CIO__OP_FSYNC && (rc = ring_file(e, op->fd)) < 0)) {
            complete_now(op, rc);
            return;
        }
    }
    struct io_uring_sqe *sqe = get_sqe(st);
    switch (op->kind) {
    case CIO__OP_FILE_READ:
    case CIO__OP_FILE_WRITE: {
        /* -1: the file position (IORING_FEAT_RW_CUR_POS, which the probe
         * requires). */
        uint64_t at = op->u.file.offset < 0 ? (uint64_t)-1 : (uint64_t)op->u.file.offset;
        if (op->kind == CIO__OP_FILE_READ)
            io_uring_prep_read(sqe, op->fd, op->u.file.buf, op->u.file.len, at);
        else
            io_uring_prep_write(sqe, op->fd, op->u.file.buf, op->u.file.len, at);
        break;
    }
    case CIO__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, op->u.file.datasync ? IORING_FSYNC_DATASYNC : 0);
        break;
    case CIO__OP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->u.path.path, op->u.path.flags, op->u.path.mode,
                            op->u.path.stx);
        break;
    case CIO__OP_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->u.path.path, op->u.path.flags,
                             (mode_t)op->u.path.mode);
        /* The kernel's first try of an open does not block, which for a
         * FIFO or a device means O_NONBLOCK: no wait for the other end, and
         * an end that a waiting peer already saw open. An open that did not
         * ask for O_NONBLOCK goes straight to an io-wq worker, where it
         * waits as open(2) does. */
        if (!(op->u.path.flags & O_NONBLOCK)) io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
        break;
    default: io_uring_prep_close(sqe, op->fd); break;
    }
    io_uring_sqe_set_data(sqe, op);
    op->stage = ST_KERNEL;
    if (e) e->in_kernel++;
    st->in_kernel++;
    cio__list_push_back(&st->files, &op->link);
    op->state = CIO__OP_IN_FLIGHT;
    io->in_flight++;
}

static void file_cancel(uring_state *st, cio__op *op, int reason) {
    if (op->kind != CIO__OP_FILE_CLOSE) request_cancel(st, op, reason);
}

static void file_cqe(cio__io *io, uring_state *st, cio__op *op, int res) {
    cio__list_unlink(&op->link);
    if (on_descriptor(op->kind)) {
        fd_entry *e = cio__fd_table_find(&st->fds, op->fd);
        if (e) e->in_kernel--;
    }
    st->in_kernel--;
    /* An io-wq worker interrupted in a wait (an open of a FIFO) may report
     * the kernel's internal "restart" code; it never reaches the program. */
    if (res == -KERNEL_ERESTARTSYS) res = -EINTR;
    if ((op->stage & ST_CANCEL) && (res == -ECANCELED || res == -EINTR)) {
        res = (int)op->result;
    } else if (res >= 0 && op->kind == CIO__OP_FILE_READ) {
        VALGRIND_MAKE_MEM_DEFINED(op->u.file.buf, (size_t)res);
    } else if (res == 0 && op->kind == CIO__OP_STATX) {
        VALGRIND_MAKE_MEM_DEFINED(op->u.path.stx, sizeof *op->u.path.stx);
    }
    finish(io, op, res);
}

/* Cancels the file operations on fd (all of them when all is set), but a
 * close. Preparing a cancel may handle completions (get_sqe), which take
 * operations off the list: the walk starts over after each. */
static void cancel_files(cio__io *io, int fd, bool all, int reason) {
    uring_state *st = io->state;
    cio__link *l = st->files.next;
    while (l != &st->files) {
        cio__op *op = CIO__CONTAINER_OF(l, cio__op, link);
        bool mine = all || (on_descriptor(op->kind) && op->fd == fd);
        if (!mine || (op->stage & ST_CANCEL) || op->kind == CIO__OP_FILE_CLOSE) {
            l = l->next;
            continue;
        }
        request_cancel(st, op, reason);
        l = st->files.next;
    }
}

static void close_fd(cio__io *io, cio__op *op);

/*
 * A connect calls connect() at once, in the step that asked for it, as
 * the epoll backend and asyncio's sock_connect do. A connect request left
 * in the submission queue would reach the kernel only at the loop's next
 * poll, so a peer in the same thread that accepts before that (a blocking
 * accept after sleep(0), as asyncio's own tests do) would wait for ever.
 * An attempt under way then goes on as before this call existed: the
 * prepared request meets it (-EALREADY at the next poll), and the poll for
 * writability and SO_ERROR follow (queued_cqe). So a connect cancelled in
 * its first step has made its attempt (its refusal stays on the socket for
 * the next connect, as in asyncio) but ends cancelled, since its request
 * is still unsubmitted (drop_unsubmitted), and the completions keep the
 * order they had. Returns false when the outcome is known now (the
 * operation is done), true when the request goes to the ring.
 */
static bool connect_now(cio__op *op) {
    if (cio__sys_connect(op->fd, op->u.connect.addr, op->u.connect.addrlen) == 0) {
        complete_now(op, 0);
        return false;
    }
    int err = errno;
    /* Under way, interrupted, or a Unix listener's backlog full: the
     * kernel's request waits for the outcome or tries again. */
    if (err == EINPROGRESS || err == EALREADY || err == EINTR || err == EAGAIN) return true;
    complete_now(op, -err);
    return false;
}

static void uring_submit(cio__io *io, cio__op *op) {
    uring_state *st = io->state;
    if (op->kind == CIO__OP_CLOSE) {
        close_fd(io, op);
        return;
    }
    if (is_file_op(op)) {
        file_submit(io, op);
        return;
    }
    if (op->fd < 0 || op->fd == st->ring.ring_fd || op->fd == st->wake_fd) {
        complete_now(op, -EBADF);
        return;
    }
    /* A loop that moved to another thread gets its new ring before
     * anything is prepared in the old one (see own_ring). */
    int rc = own_ring(st);
    if (rc < 0) {
        complete_now(op, rc);
        return;
    }
    if (refuses_blocking(op->kind)) {
        int blocking = is_blocking(op->fd);
        if (blocking != 0) {
            complete_now(op, blocking < 0 ? blocking : -EINVAL);
            return;
        }
    }
    if (op->kind == CIO__OP_POLL) {
        rc = check_pollable(op->fd);
        if (rc < 0) {
            complete_now(op, rc);
            return;
        }
    }
    int err = 0;
    fd_entry *e = cio__fd_table_get(&st->fds, op->fd, &err);
    if (!e) {
        complete_now(op, err);
        return;
    }
    int dir = direction(op);
    op->stage = 0;
    if (op->flags & CIO__OP_OWN) {
        if (e->owner || e->watch[DIR_IN] || e->watch[DIR_OUT]) {
            complete_now(op, -EBUSY);
            return;
        }
        if (op->kind == CIO__OP_ACCEPT && !(io->caps & CIO__CAP_ACCEPT_MULTI)) {
            complete_now(op, -EOPNOTSUPP);
            return;
        }
        e->owner = op;
        e->hung_up = 0;
        /* In flight before anything is prepared: preparing the receive may
         * submit the poll (a full SQ) and handle its first report at once. */
        op->state = CIO__OP_IN_FLIGHT;
        io->in_flight++;
        owner_recv_prepare(st, op);
        issue(st, e, op);
        if ((op->flags & CIO__OP_RECV_RING) && op->u.poll.recv_want) issue_recv(st, e, op);
        return;
    } else if (op->flags & CIO__OP_MULTISHOT) {
        if (e->watch[dir] || e->owner) {
            complete_now(op, -EBUSY);
            return;
        }
        e->watch[dir] = op;
        issue(st, e, op);
    } else {
        bool head = cio__list_empty(&e->queue[dir]);
        if (head && op->kind == CIO__OP_CONNECT && !connect_now(op)) return;
        cio__list_push_back(&e->queue[dir], &op->link);
        if (head) issue(st, e, op);
    }
    op->state = CIO__OP_IN_FLIGHT;
    io->in_flight++;
}

static void uring_cancel(cio__io *io, cio__op *op, int reason) {
    uring_state *st = io->state;
    if (op->state != CIO__OP_IN_FLIGHT) return;
    if (is_file_op(op)) {
        file_cancel(st, op, reason);
        return;
    }
    fd_entry *e = cio__fd_table_find(&st->fds, op->fd);
    int dir = direction(op);
    if (e && (op->flags & CIO__OP_OWN)) {
        if (e->owner == op) e->owner = NULL;
    } else if (e && (op->flags & CIO__OP_MULTISHOT)) {
        if (e->watch[dir] == op) e->watch[dir] = NULL;
    }
    if (op->stage & (ST_KERNEL | ST_RECV)) {
        request_cancel(st, op, reason);
        return;
    }
    /* Waiting behind the head of its queue: nothing of it is in the
     * kernel. */
    cio__list_unlink(&op->link);
    finish(io, op, reason);
}

/* Readiness as the upper layers read it (epoll's values). */
static uint32_t readiness(uint32_t revents) {
    return revents & (CIO__POLL_IN | CIO__POLL_OUT | POLLERR | POLLHUP);
}

/* Marks what the kernel wrote for a completed receive as defined for
 * Valgrind (see the opening comment). */
static void note_written(const cio__op *op, ssize_t res) {
    if (res < 0) return;
    switch (op->kind) {
    case CIO__OP_RECV:
    case CIO__OP_READ: VALGRIND_MAKE_MEM_DEFINED(op->u.rw.buf, (size_t)res); break;
    case CIO__OP_RECVMSG: {
        struct msghdr *m = op->u.msg.msg;
        size_t left = (size_t)res;
        for (size_t i = 0; i < (size_t)m->msg_iovlen && left; i++) {
            size_t n = m->msg_iov[i].iov_len < left ? m->msg_iov[i].iov_len : left;
            VALGRIND_MAKE_MEM_DEFINED(m->msg_iov[i].iov_base, n);
            left -= n;
        }
        if (m->msg_name && m->msg_namelen) VALGRIND_MAKE_MEM_DEFINED(m->msg_name, m->msg_namelen);
        if (m->msg_control && m->msg_controllen)
            VALGRIND_MAKE_MEM_DEFINED(m->msg_control, m->msg_controllen);
        VALGRIND_MAKE_MEM_DEFINED(&m->msg_flags, sizeof m->msg_flags);
        break;
    }
    case CIO__OP_ACCEPT:
        if (op->u.accept.addrlen) {
            VALGRIND_MAKE_MEM_DEFINED(op->u.accept.addrlen, sizeof *op->u.accept.addrlen);
            if (op->u.accept.addr)
                VALGRIND_MAKE_MEM_DEFINED(op->u.accept.addr, *op->u.accept.addrlen);
        }
        break;
    default: break;
    }
}

static void owner_fail(cio__io *io, uring_state *st, cio__op *op, int res);
static void recv_cqe(cio__io *io, uring_state *st, fd_entry *e, cio__op *op, int res,
                     unsigned flags);
static void accept_cqe(cio__io *io, uring_state *st, fd_entry *e, cio__op *op, int res, bool more);

/* The owner's multishot poll reported, or ended. */
static void owner_cqe(cio__io *io, uring_state *st, fd_entry *e, cio__op *op, int res, bool more) {
    if (!more) {
        op->stage &= (uint8_t)~ST_KERNEL;
        e->in_kernel--;
        st->in_kernel--;
    }
    if (op->stage & ST_CANCEL) {
        if (!more) owner_finish(io, st, op);
        return;
    }
    if (res >= 0) {
        uint32_t ev = (uint32_t)res;
        uint32_t failed = ev & (POLLERR | POLLHUP);
        uint32_t in = (ev & POLLIN) || failed ? CIO__POLL_IN | failed : 0;
        uint32_t out = (ev & POLLOUT) || failed ? CIO__POLL_OUT | failed : 0;
        if (ev & (POLLRDHUP | POLLHUP | POLLERR)) e->hung_up = 1;
        op->result = in | out | (e->hung_up ? CIO__POLL_RDHUP : 0);
        op->done(op);
        /* The callback may not cancel (op.h), so op is still the owner. */
        if (!more) issue(st, e, op);
        return;
    }
    if (more) return;
    if (res == -ECANCELED) {
        /* Not asked for: the kernel ended it (its issuing thread went
         * away). The owner still wants its edges. */
        issue(st, e, op);
        return;
    }
    if (e->owner == op) e->owner = NULL;
    owner_fail(io, st, op, res);
}

/* A persistent watcher's one-shot poll reported, or ended. */
static void watcher_cqe(cio__io *io, uring_state *st, fd_entry *e, cio__op *op, int res) {
    int dir = direction(op);
    if (op->stage & ST_CANCEL) {
        finish(io, op, op->result);
        return;
    }
    if (res >= 0 || res == -ECANCELED) {
        if (res >= 0) {
            uint32_t failed = (uint32_t)res & (POLLERR | POLLHUP);
            op->result = (dir == DIR_OUT ? CIO__POLL_OUT : CIO__POLL_IN) | failed;
            op->done(op);
        }
        /* Armed again for the next poll(), after the callback ran: level-
         * triggered, as asyncio's selector. */
        issue(st, e, op);
        return;
    }
    if (e->watch[dir] == op) e->watch[dir] = NULL;
    finish(io, op, res);
}

/* The final completion of a queued operation: it leaves its queue and the
 * next one goes to the kernel. */
static void queue_done(cio__io *io, uring_state *st, fd_entry *e, cio__op *op, ssize_t result) {
    int dir = direction(op);
    cio__list_unlink(&op->link);
    finish(io, op, result);
    cio__link *next = e->queue[dir].next;
    if (next != &e->queue[dir]) issue(st, e, CIO__CONTAINER_OF(next, cio__op, link));
}

/* Reads the outcome of a connect whose attempt was already under way. */
static ssize_t connect_outcome(int fd) {
    int err = 0;
    unsigned int len = sizeof err;
    if (cio__sys_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    return err ? -err : 0;
}

static void queued_cqe(cio__io *io, uring_state *st, fd_entry *e, cio__op *op, int res) {
    bool cancelling = (op->stage & ST_CANCEL) != 0;
    if (op->stage & ST_WAIT) {
        /* The readiness poll before a retry (or a connect's outcome). */
        if (res >= 0) {
            op->stage &= (uint8_t)~ST_WAIT;
            if (op->stage & ST_CHECK) {
                queue_done(io, st, e, op, connect_outcome(op->fd));
                return;
            }
            if (cancelling) {
                queue_done(io, st, e, op, op->result);
                return;
            }
            issue(st, e, op);
            return;
        }
        if (cancelling) {
            queue_done(io, st, e, op, op->result);
            return;
        }
        if (res == -ECANCELED) {
            issue(st, e, op);
            return;
        }
        queue_done(io, st, e, op, res);
        return;
    }
    note_written(op, res);
    if (res == -ECANCELED && cancelling) {
        queue_done(io, st, e, op, op->result);
        return;
    }
    /* The request did not happen; unless a cancel is waiting, it is made
     * again (after readiness, for "not now"). */
    if (res == -EAGAIN || res == -EINTR || res == -ECANCELED ||
        (op->kind == CIO__OP_ACCEPT && res == -ECONNABORTED) ||
        (op->kind == CIO__OP_CONNECT && (res == -EALREADY || res == -EINPROGRESS))) {
        if (cancelling) {
            queue_done(io, st, e, op, op->result);
            return;
        }
        if (res == -EAGAIN || op->kind == CIO__OP_CONNECT) op->stage |= ST_WAIT;
        if (op->kind == CIO__OP_CONNECT && res != -EAGAIN && res != -EINTR && res != -ECANCELED)
            op->stage |= ST_CHECK;
        issue(st, e, op);
        return;
    }
    if (op->kind == CIO__OP_POLL && res >= 0) res = (int)readiness((uint32_t)res);
    if (op->kind == CIO__OP_SEND && (op->flags & CIO__OP_ALL) && res >= 0) {
        op->progress += (size_t)res;
        if (op->progress < op->u.rw.len) {
            if (cancelling) {
                queue_done(io, st, e, op, op->result);
                return;
            }
            issue(st, e, op);
            return;
        }
        queue_done(io, st, e, op, (ssize_t)op->progress);
        return;
    }
    queue_done(io, st, e, op, res);
}

/* The error the fault wrapper of the same system call injects. */
static int injected_error(const cio__op *op) {
    if (op->kind == CIO__OP_POLL || (op->stage & ST_WAIT)) return -ENOMEM; /* as epoll_ctl */
    switch (op->kind) {
    case CIO__OP_RECV:
    case CIO__OP_RECVMSG: return -ENOMEM;
    case CIO__OP_READ:
    case CIO__OP_WRITE: return -EIO;
    case CIO__OP_ACCEPT: return -EMFILE;
    default: return -ENOBUFS;
    }
}

static void handle_cqe(cio__io *io, uint64_t data, int res, unsigned flags) {
    uring_state *st = io->state;
    if (data == TAG_CANCEL) return;
    if (data == TAG_WAKE) {
        uint64_t count;
        ssize_t ignored = read(st->wake_fd, &count, sizeof count);
        (void)ignored;
        if (!(flags & IORING_CQE_F_MORE)) arm_wake(st);
        return;
    }
    if (data & TAG_RECV_BIT) {
        cio__op *op = (cio__op *)(uintptr_t)(data & ~(uint64_t)TAG_RECV_BIT);
        recv_cqe(io, st, cio__fd_table_find(&st->fds, op->fd), op, res, flags);
        return;
    }
    cio__op *op = (cio__op *)(uintptr_t)data;
    if (op->stage & ST_DROPPED) {
        /* The NOP that took the place of a request cancelled unseen (a
         * file request too: as a queued call on the pool, it never ran). */
        res = -ECANCELED;
        op->stage &= (uint8_t)~(ST_DROPPED | ST_WAIT | ST_CHECK);
    }
    if (is_file_op(op)) {
        file_cqe(io, st, op, res);
        return;
    }
    fd_entry *e = cio__fd_table_find(&st->fds, op->fd);
    bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (op->stage & ST_FAULT) {
        res = injected_error(op);
        op->stage &= (uint8_t)~(ST_FAULT | ST_WAIT | ST_CHECK);
    }
    if ((op->flags & CIO__OP_OWN) && op->kind == CIO__OP_ACCEPT) {
        accept_cqe(io, st, e, op, res, more);
        return;
    }
    if (op->flags & CIO__OP_OWN) {
        owner_cqe(io, st, e, op, res, more);
        return;
    }
    op->stage &= (uint8_t)~ST_KERNEL;
    e->in_kernel--;
    st->in_kernel--;
    if (op->flags & CIO__OP_MULTISHOT)
        watcher_cqe(io, st, e, op, res);
    else
        queued_cqe(io, st, e, op, res);
}

/* Handles the CQEs that are there, at most a CQ's worth: with a CQ far
 * smaller than the load, handling completions makes more of them (an
 * owner's multishot poll that the kernel ended for want of CQ room is
 * submitted again and reports at once), and the loop must get on with its
 * callbacks meanwhile.
 *
 * Completions are taken in batches, in user space only: up to REAP_BATCH
 * CQEs are copied out (io_uring_for_each_cqe) and consumed with one
 * io_uring_cq_advance, then handled. Consuming before handling means a
 * handler that must submit (a full SQ, which may reap again) never sees a
 * CQE twice. liburing's peek would enter the kernel by itself whenever the
 * CQ is empty and the kernel holds overflowed completions; here no system
 * call is made: a CQ that overflowed (IORING_SQ_CQ_OVERFLOW, with NODROP
 * the completions wait in the kernel) is noted, and the next poll's enter
 * (GETEVENTS) flushes them without sleeping. */
enum { REAP_BATCH = 64 };

static int reap(cio__io *io) {
    uring_state *st = io->state;
    unsigned n = 0;
    while (n < st->params.cq_entries) {
        struct { uint64_t data; int res; unsigned flags; } batch[REAP_BATCH];
        unsigned head, got = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&st->ring, head, cqe) {
            batch[got].data = cqe->user_data;
            batch[got].res = cqe->res;
            batch[got].flags = cqe->flags;
            if (++got == REAP_BATCH) break;
        }
        if (!got) break;
        io_uring_cq_advance(&st->ring, got);
        for (unsigned i = 0; i < got; i++) handle_cqe(io, batch[i].data, batch[i].res, batch[i].flags);
        n += got;
    }
    io->counters.cqes += n;
    if (IO_URING_READ_ONCE(*st->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) {
        if (!st->overflowed) io->counters.overflows++;
        st->overflowed = 1;
    }
    return (int)n;
}

static void register_ring_fd(uring_state *st);

/* One trip to the kernel: submits what is prepared and waits for at least
 * one completion at most timeout_ns (-1: no limit, 0: do not wait). This is
 * the loop iteration's one io_uring_enter (uring_poll). */
static int enter(uring_state *st, int64_t timeout_ns) {
    /* Fault injection: the one failure of a wait a caller can see, as for
     * epoll_wait. */
    if (cio__fault_hit()) return -EINTR;
    int rc = own_ring(st);
    if (rc < 0) return rc;
    if (!st->ring_fd_registered) register_ring_fd(st);
    /* Overflowed completions are flushed by this enter (GETEVENTS); it must
     * not sleep while they wait. */
    if (st->overflowed) timeout_ns = 0;
    st->overflowed = 0;
    st->io->counters.enters++;
    if (timeout_ns == 0) {
        rc = io_uring_submit_and_get_events(&st->ring);
    } else if (timeout_ns < 0) {
        rc = io_uring_submit_and_wait(&st->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
                                       .tv_nsec = timeout_ns % 1000000000};
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &ts, NULL);
    }
    if (rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN) return 0;
    return rc < 0 ? rc : 0;
}

static int uring_poll(cio__io *io, int64_t timeout_ns) {
    uring_state *st = io->state;
    /* Completions that are already there (a close's wait may leave some)
     * are handled without waiting. */
    if (io_uring_cq_ready(&st->ring)) timeout_ns = 0;
    int rc = enter(st, timeout_ns);
    int n = reap(io);
    return n ? n : rc;
}

/* Waits until fd has nothing left in the kernel (see the opening
 * comment), handling whatever else completes meanwhile. */
static void wait_for_kernel(cio__io *io, const size_t *count, const char *what) {
    uring_state *st = io->state;
    int64_t started = 0;
    struct timespec now;
    while (*count) {
        int rc = enter(st, 1000000000);
        if (rc == -EINTR) continue;
        if (rc < 0 && rc != -EEXIST) {
            fprintf(stderr, "cio: io_uring: %s: io_uring_enter: %s\n", what, strerror(-rc));
            return;
        }
        if (rc == -EEXIST) {
            fprintf(stderr, "cio: io_uring: %s from a thread that is not the loop's: "
                            "%zu operations left in the kernel\n", what, *count);
            return;
        }
        if (!reap(io) && *count) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (!started) started = now.tv_sec;
            else if (now.tv_sec - started >= 1)
                fprintf(stderr, "cio: io_uring: %s waits for %zu operations the kernel has "
                                "not completed\n", what, *count);
        }
    }
}

/* Ends every operation of e: queued ones at once, those in the kernel by a
 * cancel whose final completion comes later. */
static void cancel_all(cio__io *io, fd_entry *e, int reason) {
    uring_state *st = io->state;
    for (int d = 0; d < 2; d++) {
        /* Preparing a cancel may handle completions (get_sqe), which take
         * operations off this queue: the walk starts over after each. */
        cio__link *l = e->queue[d].next;
        while (l != &e->queue[d]) {
            cio__op *op = CIO__CONTAINER_OF(l, cio__op, link);
            if (!(op->stage & ST_KERNEL)) {
                cio__list_unlink(&op->link);
                finish(io, op, reason);
                l = e->queue[d].next;
            } else if (!(op->stage & ST_CANCEL)) {
                request_cancel(st, op, reason);
                l = e->queue[d].next;
            } else {
                l = l->next;
            }
        }
        cio__op *w = e->watch[d];
        e->watch[d] = NULL;
        if (w) request_cancel(st, w, reason);
    }
    cio__op *owner = e->owner;
    e->owner = NULL;
    if (owner) request_cancel(st, owner, reason);
}

/* CIO__OP_CLOSE: see the opening comment. */
static void close_fd(cio__io *io, cio__op *op) {
    uring_state *st = io->state;
    fd_entry *e = op->fd < 0 || op->fd == st->ring.ring_fd || op->fd == st->wake_fd
                      ? NULL
                      : cio__fd_table_find(&st->fds, op->fd);
    if (e) {
        cancel_all(io, e, -EBADF);
        cancel_files(io, op->fd, false, -EBADF);
        wait_for_kernel(io, &e->in_kernel, "close");
        e->hung_up = 0;
        e->held = 0;
        e->file_type = FT_UNKNOWN;
    }
    if (op->u.close.keep_fd)
        complete_now(op, 0);
    else
        complete_now(op, op->fd < 0 ? -EBADF : cio__sys_close(op->fd) == 0 ? 0 : -errno);
}

static void uring_wake(cio__io *io) {
    uring_state *st = io->state;
    uint64_t one = 1;
    ssize_t ignored = write(st->wake_fd, &one, sizeof one);
    (void)ignored;
}

static void drain_entry(void *p, int fd, void *arg) {
    (void)fd;
    cancel_all(arg, p, -ECANCELED);
}

static void uring_drain(cio__io *io) {
    uring_state *st = io->state;
    cio__fd_table_each(&st->fds, drain_entry, io);
    cancel_files(io, -1, true, -ECANCELED);
    wait_for_kernel(io, &st->in_kernel, "loop close");
}

/* ---- The fast path for servers --------------------------------------------
 *
 * What makes a busy server cheaper on io_uring than on epoll: per loop
 * iteration one io_uring_enter (uring_poll), completions taken in batches
 * (reap), and for the sockets the loop owns no system call per message on
 * the receiving side:
 *
 *  - Multishot accept. A server's listening socket is submitted as an owned
 *    CIO__OP_ACCEPT: one IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT that
 *    reports every connection. Each accepted descriptor goes to the owner at
 *    once, through done() with the operation still in flight, even while a
 *    cancel of it is under way, so a connection the kernel accepted is always
 *    handed over (the owner queues it, or closes it when the server is
 *    closing): none is lost, no descriptor leaks. Errors stop a multishot
 *    accept; transient ones (ECONNABORTED, EINTR, EAGAIN) are submitted again
 *    here, others (EMFILE...) end the operation and the owner decides when
 *    to try again.
 *
 *  - Multishot receive into a provided-buffer ring. An owned stream socket
 *    submitted with CIO__OP_RECV_RING gets, beside its multishot poll (now
 *    for POLLOUT and POLLRDHUP only), one IORING_OP_RECV with
 *    IORING_RECV_MULTISHOT and IOSQE_BUFFER_SELECT: the kernel picks a buffer
 *    of the loop's ring (CIO_URING_BUFS, default 1024 x 4 KiB, registered
 *    once) for every chunk it receives. The backend chains the chunks per
 *    owner in arrival order (buf_meta.next) and tells the owner
 *    (CIO__POLL_DATA); the owner takes them in order (recv_peek, recv_pop),
 *    which hands each buffer straight back to the ring.
 *
 *    Running out of buffers. When every buffer is taken (many connections
 *    sending at once, or owners slow to take their chunks), the kernel ends
 *    the receive with -ENOBUFS and leaves the data in the socket. The policy
 *    is: the owner falls back to a plain recv() into its own buffer until
 *    the socket is empty, then arms the multishot receive again. The other
 *    policy (park the socket until buffers come back, as liburing's proxy
 *    does) was not taken because buffers come back only when their owners
 *    take them, and an owner may hold its chunks for as long as its reader
 *    is paused: a server with every buffer held by paused connections would
 *    stop receiving on all the others. With the fallback no connection ever
 *    waits for another one's buffers, nothing is lost (the data never left
 *    the socket), and order holds: the receive's chunks are all in the chain
 *    before its -ENOBUFS arrives, and the owner delivers the chain before it
 *    recv()s. A receive also ends with the end of stream (0) or an error,
 *    which the owner reads as recv_end once its chain is empty. A paused
 *    reader stops its receive (recv_arm(0): an ASYNC_CANCEL of the request;
 *    chunks that arrive meanwhile are kept) so it holds no more buffers.
 *
 *  - A registered ring fd (io_uring_register_ring_fd), so each enter skips
 *    the file lookup; only on rings bound to one thread (SINGLE_ISSUER),
 *    since the registration belongs to the registering thread.
 *
 *  - CQ overflow: with NODROP the kernel keeps completions the CQ had no
 *    room for and sets IORING_SQ_CQ_OVERFLOW; reap notes it and the next
 *    enter does not sleep, so they are flushed at once (counted in
 *    counters.overflows, which the tests read).
 *
 *  - Sends through the ring (CIO__CAP_SEND_RING). A transport hands its
 *    bytes to the backend as a CIO__OP_SEND with CIO__OP_ALL instead of
 *    calling send() per write: submit() only prepares the SQE, and the
 *    iteration's one io_uring_enter submits it with everything else, where
 *    the kernel sends at once when the socket has room (or parks the send
 *    until it has). So a message costs no system call of its own. The send
 *    is an ordinary queued operation (FIFO per direction, only the head in
 *    the kernel, the rest of a short send resubmitted, two-phase cancel,
 *    cancelled and waited for by a close); the transport keeps at most one
 *    in flight and gathers what is written meanwhile for the next
 *    (transport.c). Its owner's poll then leaves POLLOUT out
 *    (CIO__OP_SEND_RING).
 *
 * CIO_URING_DISABLE=mshot_accept, mshot_recv, ring_fd, ring_send (or
 * fast_path for the four) switch each off: servers then accept on
 * readiness, and transports recv() on readiness and send() per write, as
 * on epoll.
 */

static void register_ring_fd(uring_state *st) {
    st->ring_fd_registered = 2;
    if (st->config.no_ring_fd || !(st->setup_flags & IORING_SETUP_SINGLE_ISSUER)) return;
    if (io_uring_register_ring_fd(&st->ring) == 1) {
        st->ring_fd_registered = 1;
        st->registered_by = thread_id();
    }
}

/* Registers the buffer ring with the ring that is set up, offering every
 * buffer that no owner holds. 0 or -errno. */
static int register_bufs(uring_state *st) {
    unsigned n = st->config.buf_count;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)st->br;
    reg.ring_entries = n;
    reg.bgid = BGID;
    int rc = io_uring_register_buf_ring(&st->ring, &reg, 0);
    if (rc < 0) return rc;
    io_uring_buf_ring_init(st->br);
    int added = 0;
    for (unsigned i = 0; i < n; i++) {
        if (st->bufs[i].held) continue;
        io_uring_buf_ring_add(st->br, st->bufmem + (size_t)i * st->config.buf_size,
                              st->config.buf_size, (unsigned short)i,
                              io_uring_buf_ring_mask(n), added++);
    }
    io_uring_buf_ring_advance(st->br, added);
    st->bufs_registered = 1;
    return 0;
}

/* The buffer memory is mapped, not touched: a page is resident only once
 * the kernel has received into it. */
static int setup_bufs(uring_state *st) {
    unsigned n = st->config.buf_count;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    st->br_bytes = ((size_t)n * sizeof(struct io_uring_buf) + page - 1) / page * page;
    st->br = mmap(NULL, st->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    st->bufmem = mmap(NULL, (size_t)n * st->config.buf_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    st->bufs = cio__calloc(n, sizeof *st->bufs);
    int rc = -ENOMEM;
    if (st->br != MAP_FAILED && st->bufmem != MAP_FAILED && st->bufs) rc = register_bufs(st);
    if (rc < 0) free_bufs(st);
    return rc;
}

static void free_bufs(uring_state *st) {
    if (st->br && st->br != MAP_FAILED) munmap(st->br, st->br_bytes);
    if (st->bufmem && st->bufmem != MAP_FAILED)
        munmap(st->bufmem, (size_t)st->config.buf_count * st->config.buf_size);
    cio__free(st->bufs);
    st->br = NULL;
    st->bufmem = NULL;
    st->bufs = NULL;
}

/* Hands buffer bid back to the kernel. */
static void give_back(uring_state *st, uint32_t bid) {
    st->bufs[bid].held = 0;
    io_uring_buf_ring_add(st->br, st->bufmem + (size_t)bid * st->config.buf_size,
                          st->config.buf_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(st->config.buf_count), 0);
    io_uring_buf_ring_advance(st->br, 1);
}

static void report_data(fd_entry *e, cio__op *op) {
    op->result = CIO__POLL_DATA | (e->hung_up ? CIO__POLL_RDHUP : 0);
    op->done(op);
}

/* Prepares the owner's multishot receive. */
static void issue_recv(uring_state *st, fd_entry *e, cio__op *op) {
    struct io_uring_sqe *sqe = get_sqe(st);
    if (cio__fault_hit()) {
        /* As issue(): the failure the recv wrapper would inject. */
        op->stage |= ST_RECV_FAULT;
        io_uring_prep_nop(sqe);
    } else {
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID;
    }
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | TAG_RECV_BIT);
    op->stage |= ST_RECV;
    op->u.poll.recv_cancel = 0;
    e->in_kernel++;
    st->in_kernel++;
}

/* Asks the kernel to end the owner's receive (its final CQE still comes). */
static void cancel_recv(uring_state *st, cio__op *op) {
    if (op->u.poll.recv_cancel) return;
    struct io_uring_sqe *sqe = get_sqe(st);
    /* get_sqe may have handled the receive's final completion. */
    if (op->stage & ST_RECV) {
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | TAG_RECV_BIT, 0);
        op->u.poll.recv_cancel = 1;
    } else {
        io_uring_prep_nop(sqe);
    }
    io_uring_sqe_set_data64(sqe, TAG_CANCEL);
}

/* At submit: whether the owner receives through the ring (its receive is
 * issued right after its poll, whose mask depends on it). */
static void owner_recv_prepare(uring_state *st, cio__op *op) {
    if (op->kind != CIO__OP_POLL) {
        op->flags &= (uint8_t)~CIO__OP_RECV_RING;
        return;
    }
    op->u.poll.head = op->u.poll.tail = NO_BUF;
    op->u.poll.count = 0;
    op->u.poll.recv_end = 0;
    op->u.poll.recv_ended = op->u.poll.recv_cancel = op->u.poll.front_busy = 0;
    op->u.poll.recv_want = 0;
    if (!(op->flags & CIO__OP_RECV_RING)) return;
    if (!(st->io->caps & CIO__CAP_RECV_RING) || !st->bufs_registered) {
        /* Not for this backend state: the owner sees CIO__POLL_IN edges. */
        op->flags &= (uint8_t)~CIO__OP_RECV_RING;
        return;
    }
    op->u.poll.recv_want = 1;
}

/* The owner's chunks go back to the ring (its final completion), except the
 * one lent to it right now, which its pop returns. */
static void drop_chunks(uring_state *st, cio__op *op) {
    uint32_t bid = op->u.poll.head;
    if (bid != NO_BUF && op->u.poll.front_busy) {
        bid = st->bufs[bid].next;
        st->bufs[op->u.poll.head].next = NO_BUF;
        op->u.poll.tail = op->u.poll.head;
        op->u.poll.count = 1;
    } else {
        op->u.poll.head = op->u.poll.tail = NO_BUF;
        op->u.poll.count = 0;
    }
    while (bid != NO_BUF) {
        uint32_t next = st->bufs[bid].next;
        give_back(st, bid);
        bid = next;
    }
}

/* The final completion of an owner, once none of its requests is left in
 * the kernel. */
static void owner_finish(cio__io *io, uring_state *st, cio__op *op) {
    if (op->stage & (ST_KERNEL | ST_RECV)) return;
    if (op->flags & CIO__OP_RECV_RING) drop_chunks(st, op);
    finish(io, op, op->result);
}

/* An owner's request failed for good: it ends with res, after its other
 * request (if any) is out of the kernel. */
static void owner_fail(cio__io *io, uring_state *st, cio__op *op, int res) {
    op->stage |= ST_CANCEL;
    op->result = res;
    if (op->stage & ST_RECV) cancel_recv(st, op);
    owner_finish(io, st, op);
}

/* A CQE of an owner's multishot receive. */
static void recv_cqe(cio__io *io, uring_state *st, fd_entry *e, cio__op *op, int res,
                     unsigned flags) {
    bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (op->stage & ST_RECV_FAULT) {
        op->stage &= (uint8_t)~ST_RECV_FAULT;
        res = -ENOMEM; /* as the recv wrapper injects */
        more = false;
        flags = 0;
    }
    if (!more) {
        op->stage &= (uint8_t)~ST_RECV;
        op->u.poll.recv_cancel = 0;
        e->in_kernel--;
        st->in_kernel--;
    }
    bool report = false;
    if (flags & IORING_CQE_F_BUFFER) {
        uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && bid < st->config.buf_count) {
            char *p = st->bufmem + (size_t)bid * st->config.buf_size;
            VALGRIND_MAKE_MEM_DEFINED(p, (size_t)res);
            st->bufs[bid].held = 1;
            st->bufs[bid].len = (uint32_t)res;
            st->bufs[bid].next = NO_BUF;
            if (op->u.poll.tail == NO_BUF) op->u.poll.head = bid;
            else st->bufs[op->u.poll.tail].next = bid;
            op->u.poll.tail = bid;
            op->u.poll.count++;
            report = true;
        } else if (bid < st->config.buf_count) {
            give_back(st, bid);
        }
    }
    if (op->stage & ST_CANCEL) {
        /* Closing or loop close: the chunks go back at the final completion. */
        if (!more) owner_finish(io, st, op);
        return;
    }
    if (!more) {
        if (res > 0 || res == -ECANCELED || res == -EAGAIN || res == -EINTR) {
            /* Ended by the kernel (CQ pressure), by our own stop, or not
             * really: receive again if the owner still wants to. */
            if (op->u.poll.recv_want) issue_recv(st, e, op);
        } else {
            if (res == -ENOBUFS) io->counters.enobufs++;
            op->u.poll.recv_ended = 1;
            op->u.poll.recv_end = res;
            report = true;
        }
    }
    if (report) report_data(e, op);
}

/* A CQE of an owned multishot accept (see the section's comment). */
static void accept_cqe(cio__io *io, uring_state *st, fd_entry *e, cio__op *op, int res, bool more) {
    bool cancelling = (op->stage & ST_CANCEL) != 0;
    if (!more) {
        op->stage &= (uint8_t)~ST_KERNEL;
        e->in_kernel--;
        st->in_kernel--;
    }
    if (res >= 0) {
        /* The connection is the owner's from here on, whatever else
         * happens; a cancel's reason waits in result meanwhile. */
        ssize_t reason = op->result;
        io->counters.accepts++;
        op->result = res;
        op->done(op);
        if (cancelling) op->result = reason;
    }
    if (more) return;
    if (cancelling) {
        finish(io, op, op->result);
        return;
    }
    if (res >= 0 || res == -ECONNABORTED || res == -EINTR || res == -EAGAIN || res == -ECANCELED) {
        issue(st, e, op);
        return;
    }
    if (res == -EINVAL || res == -EOPNOTSUPP) io->caps &= ~CIO__CAP_ACCEPT_MULTI; /* an older kernel */
    if (e->owner == op) e->owner = NULL;
    finish(io, op, res);
}

static size_t uring_recv_peek(cio__io *io, cio__op *op, const void **data) {
    uring_state *st = io->state;
    uint32_t bid = op->u.poll.head;
    if (bid == NO_BUF) return 0;
    op->u.poll.front_busy = 1;
    *data = st->bufmem + (size_t)bid * st->config.buf_size;
    return st->bufs[bid].len;
}

static void uring_recv_pop(cio__io *io, cio__op *op) {
    uring_state *st = io->state;
    uint32_t bid = op->u.poll.head;
    op->u.poll.front_busy = 0;
    if (bid == NO_BUF) return;
    op->u.poll.head = st->bufs[bid].next;
    if (op->u.poll.head == NO_BUF) op->u.poll.tail = NO_BUF;
    op->u.poll.count--;
    give_back(st, bid);
}

static void uring_recv_arm(cio__io *io, cio__op *op, int on) {
    uring_state *st = io->state;
    if (op->state != CIO__OP_IN_FLIGHT || (op->stage & ST_CANCEL) ||
        !(op->flags & CIO__OP_RECV_RING))
        return;
    fd_entry *e = cio__fd_table_find(&st->fds, op->fd);
    if (!e) return;
    if (!on) {
        op->u.poll.recv_want = 0;
        if (op->stage & ST_RECV) cancel_recv(st, op);
        return;
    }
    op->u.poll.recv_want = 1;
    op->u.poll.recv_ended = 0;
    if (op->stage & ST_RECV) return; /* running, or its cancel's CQE re-arms it */
    if (!st->bufs_registered) {
        /* The ring could not take the buffers again (own_ring): the owner
         * receives by itself. */
        op->u.poll.recv_ended = 1;
        op->u.poll.recv_end = -ENOBUFS;
        report_data(e, op);
        return;
    }
    issue_recv(st, e, op);
}

/*
 * Whether fd can be polled at all. A poll request on a descriptor whose
 * file has no poll method (a regular file, /dev/null) completes at once as
 * ready, where epoll refuses to register it (-EPERM); the calls that
 * promise epoll's answer (adopt, add_reader, pipe transports) ask the
 * kernel the same question through a scratch epoll instance: one add and
 * one delete, on those calls only, never per operation.
 */
static int uring_pollable(cio__io *io, int fd) {
    uring_state *st = io->state;
    if (st->scratch_epoll_fd < 0) {
        st->scratch_epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (st->scratch_epoll_fd < 0) return -errno;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    if (epoll_ctl(st->scratch_epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        /* Already there is impossible: every add is deleted at once. */
        return -errno;
    }
    (void)epoll_ctl(st->scratch_epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    return 0;
}

/* cio_sock_adopt: the ring keeps no registration, so holding only checks
 * what epoll's hold checks (open, pollable, not adopted twice, no watcher
 * or owner) and remembers the adoption until cio_close. */
static int uring_hold(cio__io *io, int fd) {
    uring_state *st = io->state;
    if (fd == st->wake_fd || fd == st->ring.ring_fd || fd == st->scratch_epoll_fd) return -EBADF;
    struct stat sb;
    if (fstat(fd, &sb) != 0) return -errno;
    int rc = uring_pollable(io, fd);
    if (rc < 0) return rc;
    fd_entry *e = cio__fd_table_get(&st->fds, fd, &rc);
    if (!e) return rc;
    /* Adopted twice, unless the first adoption's file was closed with
     * close(2) and the number now names another file. */
    if (e->held && e->held_inode == (uint64_t)sb.st_ino) return -EBUSY;
    if (e->owner || e->watch[DIR_IN] || e->watch[DIR_OUT]) return -EBUSY;
    e->held = 1;
    e->held_inode = (uint64_t)sb.st_ino;
    return 0;
}

/* The kernel gave out fd's number again (an accept): an adoption of the
 * number's earlier file, closed behind the loop's back, is over. */
static void uring_fresh(cio__io *io, int fd) {
    uring_state *st = io->state;
    fd_entry *e = cio__fd_table_find(&st->fds, fd);
    if (e) e->held = 0;
}

const cio__backend cio__backend_uring = {
    .name = "io_uring",
    .init = uring_init,
    .fini = uring_fini,
    .submit = uring_submit,
    .cancel = uring_cancel,
    .poll = uring_poll,
    .wake = uring_wake,
    .drain = uring_drain,
    .recv_peek = uring_recv_peek,
    .recv_pop = uring_recv_pop,
    .recv_arm = uring_recv_arm,
    .hold = uring_hold,
    .fresh = uring_fresh,
    .pollable = uring_pollable,
};
