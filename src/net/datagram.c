/*
 * Datagram endpoints: asyncio's loop.create_datagram_endpoint, with its
 * DatagramProtocol (a struct of callbacks) and DatagramTransport.
 *
 * A transport is one record the loop allocates: the socket, a copy of the
 * protocol, one readiness operation of its own, one job, and the send
 * buffer. The transport owns its socket, so the operation is the backend's
 * owned-descriptor watch (CIO__OP_POLL with CIO__OP_MULTISHOT and
 * CIO__OP_OWN): one edge-triggered registration for the socket's whole
 * life, every edge of either direction reported, no epoll_ctl per wait.
 * The backend's completions never call the program: they only note what
 * happened and queue the job (once), and the job, run by the loop among
 * the other callbacks of the iteration, does the work and calls the
 * protocol. So every callback runs from the loop, never from inside the
 * backend, and a callback may call any transport function.
 *
 * The job, each time it runs:
 *   1. calls connection_made the first time, then starts watching (as
 *      asyncio: connection_made, then the reader, both via call_soon),
 *      taking both directions as possibly ready;
 *   2. if readable, receives at most READ_BATCH datagrams, each through
 *      the loop's shared 64 KiB receive buffer (the one stream transports
 *      use: an idle endpoint holds none). Edges come only on a change,
 *      so a batch that ended before the socket said EAGAIN leaves the
 *      direction marked readable and queues the job again, at the back of
 *      the ready queue: one busy endpoint cannot starve the loop;
 *   3. if writable, sends the buffered datagrams in order until the kernel
 *      says "not now" (the next edge says when to go on);
 *   4. once connection_lost is due, ends the watch, calls connection_lost,
 *      closes the socket and frees the record.
 *
 * Lifetime. The record lives from the create call until connection_lost
 * has returned; the program must not use the pointer afterwards (asyncio
 * has no free; a C program needs one rule, the same as stream transports
 * follow). connection_lost runs exactly once per endpoint: after close
 * (once the buffer is sent), abort or a fatal error. When the loop closes
 * with the endpoint still open, cio_loop_close closes the socket and frees
 * the record without callbacks, as it does stream transports: either the
 * backend's drain gives the watch its final completion (on_ready releases
 * the record there, calling nothing), or, before the watch started, the
 * job waits in the ready queue, whose discard (cio__job_register_discard)
 * hands it to discard_endpoint. Invariant: while the record is alive,
 * either the job is queued or its watch is in flight, so loop close always
 * finds it.
 */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"

/* Datagrams received per readiness at most: fairness between endpoints. */
#define READ_BATCH 32
/* The largest datagram delivered: every UDP payload (65,507 bytes over
 * IPv4, 65,527 over IPv6 without jumbograms) fits. A longer one (a Unix
 * datagram) is dropped and reported as -EMSGSIZE. */
#define MAX_DATAGRAM 65536
/* asyncio counts each buffered datagram as its length plus a header of 8
 * bytes (gh-135444), so that empty datagrams also fill the buffer. */
#define HEADER_SIZE 8
/* asyncio's defaults: pause above 64 KiB, resume at or below a quarter. */
#define DEFAULT_HIGH ((size_t)64 * 1024)

typedef struct pending {
    cio__link link;
    size_t len;
    socklen_t addrlen;          /* 0: to the connected peer */
    struct sockaddr_storage addr;
    unsigned char data[];
} pending;

struct cio_datagram_transport {
    cio__op watch;              /* the owned descriptor's edges */
    cio__job job;
    cio_loop *loop;
    cio_datagram_protocol proto; /* the program's, copied */
    void *ctx;
    int fd;
    uint8_t made;               /* connection_made ran */
    uint8_t closing;            /* close or abort was called, or a fatal error came */
    uint8_t lost_due;           /* connection_lost is to run (once the watch ended) */
    uint8_t lost;               /* connection_lost ran (or runs right now) */
    uint8_t paused;             /* pause_writing was called, resume_writing not yet */
    uint8_t readable, writable; /* readiness seen, for the job */
    uint8_t fd_gone;            /* the socket was closed behind the transport's back */
    int fatal;                  /* the error that ended the watch, or 0 */
    int lost_error;
    cio__link queue;            /* of pending, oldest first */
    size_t buffered;            /* the write buffer size, asyncio's way */
    size_t high, low;
    socklen_t remote_len;       /* 0: not connected */
    struct sockaddr_storage remote;
};

static void run_endpoint(cio__job *job);
static void release(cio_datagram_transport *t);

static bool in_flight(const cio__op *op) {
    return op->state == CIO__OP_IN_FLIGHT;
}

static void schedule(cio_datagram_transport *t) {
    if (!cio__link_linked(&t->job.link)) cio__ready_push(t->loop, &t->job);
}

/* The backend's completion of the watch: note it, queue the job. */
static void on_ready(cio__op *op) {
    cio_datagram_transport *t = op->owner;
    if (op->state == CIO__OP_IN_FLIGHT) {
        if (op->result & CIO__POLL_IN) t->readable = 1;
        if (op->result & CIO__POLL_OUT) t->writable = 1;
    } else if (t->loop->closing) {
        /* The loop closes (the backend's drain): no callback runs now, and
         * the job, if queued, must not outlive the record. */
        release(t);
        return;
    } else if (op->result != -ECANCELED && !t->fatal) {
        /* Not ended by the transport itself: cio_close of its socket
         * (-EBADF) or a registration the backend could not keep. */
        t->fatal = (int)op->result;
        if (op->result == -EBADF) t->fd_gone = 1;
    }
    schedule(t);
}

/* Takes the socket over in the backend: 0 or the backend's error (-EBUSY
 * when a watcher of the program, cio_add_reader, has it). */
static int start_watch(cio_datagram_transport *t) {
    cio__op *op = &t->watch;
    cio__op_init(op, CIO__OP_POLL, t->fd);
    op->u.poll.events = CIO__POLL_IN;
    op->flags = CIO__OP_MULTISHOT | CIO__OP_OWN;
    op->owner = t;
    op->done = on_ready;
    cio__io_submit(&t->loop->io, op);
    return op->state == CIO__OP_DONE ? (int)op->result : 0;
}

static void drop_buffer(cio_datagram_transport *t) {
    cio__link *l;
    while ((l = cio__list_pop_front(&t->queue)) != NULL) cio__free(CIO__CONTAINER_OF(l, pending, link));
    t->buffered = 0;
}

/* asyncio's _force_close: drop the buffer, stop both directions, and have
 * connection_lost(err) called from the loop. */
static void force_close(cio_datagram_transport *t, int err) {
    if (t->lost_due) return;
    drop_buffer(t);
    t->closing = 1;
    t->lost_due = 1;
    t->lost_error = err;
    schedule(t);
}

static void error_received(cio_datagram_transport *t, int err) {
    if (t->proto.error_received) t->proto.error_received(t, err, t->ctx);
}

/* One datagram out, now or never: its length, or -errno (-EAGAIN when the
 * socket is full). MSG_NOSIGNAL: no SIGPIPE, whatever the socket. */
static ssize_t send_one(int fd, const void *data, size_t len, const struct sockaddr *addr,
                        socklen_t addrlen) {
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_name = (void *)addr,
                         .msg_namelen = addrlen};
    for (;;) {
        ssize_t n = cio__sys_sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static void maybe_pause(cio_datagram_transport *t) {
    if (t->buffered <= t->high || t->paused) return;
    t->paused = 1;
    if (t->proto.pause_writing) t->proto.pause_writing(t, t->ctx);
}

static void maybe_resume(cio_datagram_transport *t) {
    if (!t->paused || t->buffered > t->low) return;
    t->paused = 0;
    if (t->proto.resume_writing) t->proto.resume_writing(t, t->ctx);
}

/* Receives up to READ_BATCH datagrams; returns false once the socket said
 * EAGAIN (or the transport closes), true if it may hold more. The buffer
 * lives here, on the loop's stack, only while reading. A callback may
 * close the transport: reading stops then, as asyncio removes its reader. */
static bool read_datagrams(cio_datagram_transport *t) {
    unsigned char *buf = t->loop->read_buffer;
    for (int i = 0; i < READ_BATCH; i++) {
        /* A callback may also have closed the socket (cio_close: fatal is
         * set; close(2): the next receive says EBADF). */
        if (t->closing || t->fatal) return false;
        struct sockaddr_storage from;
        struct iovec iov = {.iov_base = buf, .iov_len = MAX_DATAGRAM};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_name = &from,
                             .msg_namelen = sizeof from};
        ssize_t n = cio__sys_recvmsg(t->fd, &msg, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
            if (errno == EBADF || errno == ENOTSOCK) {
                /* The socket was closed behind the transport's back (its
                 * number may even be another file's by now): the endpoint
                 * ends as for cio_close, and the number is never touched
                 * again. Reporting and reading on would spin for ever. */
                t->fd_gone = 1;
                force_close(t, -EBADF);
                return false;
            }
            /* An error of the socket (an ICMP port unreachable on a
             * connected socket: -ECONNREFUSED) is news for the protocol,
             * not the end of the endpoint. */
            error_received(t, -errno);
            continue;
        }
        if (msg.msg_flags & MSG_TRUNC) {
            error_received(t, -EMSGSIZE);
            continue;
        }
        if (t->proto.datagram_received)
            t->proto.datagram_received(t, buf, (size_t)n,
                                       msg.msg_namelen ? (struct sockaddr *)&from : NULL,
                                       msg.msg_namelen, t->ctx);
    }
    return true;
}

/* Sends the buffered datagrams in order until the socket is full. A
 * datagram the kernel refuses is dropped and its error reported, as
 * asyncio does; the callbacks may send more, close or abort meanwhile,
 * so the queue is read afresh each time. */
static void flush(cio_datagram_transport *t) {
    while (!cio__list_empty(&t->queue)) {
        pending *d = CIO__CONTAINER_OF(t->queue.next, pending, link);
        ssize_t n = send_one(t->fd, d->data, d->len,
                             d->addrlen ? (struct sockaddr *)&d->addr : NULL, d->addrlen);
        if (n == -EAGAIN) return;
        cio__list_unlink(&d->link);
        t->buffered -= d->len + HEADER_SIZE;
        cio__free(d);
        if (n < 0) error_received(t, (int)n);
    }
    maybe_resume(t);
    if (!cio__list_empty(&t->queue)) return; /* resume_writing sent more */
    if (t->closing && !t->lost_due) {
        t->lost_due = 1;
        t->lost_error = 0;
    }
}

static void free_transport(cio_datagram_transport *t) {
    drop_buffer(t);
    cio__free(t);
}

static void run_endpoint(cio__job *job) {
    cio_datagram_transport *t = CIO__CONTAINER_OF(job, cio_datagram_transport, job);
    if (t->fatal) force_close(t, t->fatal);
    if (!t->made) {
        t->made = 1;
        if (t->proto.connection_made) t->proto.connection_made(t, t->ctx);
        if (!t->lost_due) {
            int rc = start_watch(t);
            if (rc < 0) {
                /* A socket closed behind the transport's back: its number
                 * may be another file's by now, never to be closed here. */
                if (rc == -EBADF) t->fd_gone = 1;
                force_close(t, rc);
            } else {
                /* Nothing is known yet: datagrams may wait already, and
                 * sendto may have buffered some. */
                t->readable = t->writable = 1;
            }
        }
    }
    if (t->readable && !t->closing) {
        t->readable = read_datagrams(t);
        /* More may wait: go on after the other callbacks of the loop. */
        if (t->readable && !t->closing) schedule(t);
    }
    if (t->writable && !t->lost_due) {
        t->writable = 0;
        flush(t);
    }
    if (!t->lost_due) return;
    /* The end: the watch goes first (the backend lets go of the socket),
     * then, as asyncio, connection_lost with the socket still open (its
     * name can still be read), then the socket is closed. */
    cio__io_cancel(&t->loop->io, &t->watch, -ECANCELED);
    if (in_flight(&t->watch)) return; /* a backend that cancels later */
    t->lost = 1;
    if (t->proto.connection_lost) t->proto.connection_lost(t, t->lost_error, t->ctx);
    if (!t->fd_gone) cio_close(t->fd);
    /* Ending the watch queued this job again; after connection_lost every
     * transport call is a no-op, so nothing is left for it to do. */
    if (cio__link_linked(&t->job.link)) cio__list_unlink(&t->job.link);
    free_transport(t);
}

/* Loop close: closes the socket (unless the program did) and frees the
 * record, calling nothing: the loop is going away under the endpoint. */
static void release(cio_datagram_transport *t) {
    if (cio__link_linked(&t->job.link)) cio__list_unlink(&t->job.link);
    if (!t->fd_gone && t->fd >= 0) cio__sys_close(t->fd);
    free_transport(t);
}

/* Loop close before the watch started: the job will never run. */
static void discard_endpoint(cio__job *job) {
    release(CIO__CONTAINER_OF(job, cio_datagram_transport, job));
}

static pthread_once_t discard_registered = PTHREAD_ONCE_INIT;

static void register_discard(void) {
    cio__job_register_discard(run_endpoint, discard_endpoint);
}

/* ---- creation ------------------------------------------------------------ */

static bool bad_addr(const struct sockaddr *addr, unsigned int len) {
    if (!addr) return len != 0;
    return len < sizeof(sa_family_t) || len > sizeof(struct sockaddr_storage);
}

/* Takes fd (non-blocking already) into a new transport. */
static int make_transport(cio_loop *loop, const cio_datagram_protocol *proto, void *ctx, int fd,
                          cio_datagram_transport **transportp) {
    _Static_assert(CIO__READ_BUFFER_SIZE == MAX_DATAGRAM, "one datagram fits the shared buffer");
    if (!cio__read_buffer(loop)) return -ENOMEM;
    cio_datagram_transport *t = cio__calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    pthread_once(&discard_registered, register_discard);
    cio__op_init(&t->watch, CIO__OP_POLL, fd);
    t->job.run = run_endpoint;
    cio__list_init(&t->job.link);
    cio__list_init(&t->queue);
    t->loop = loop;
    t->proto = *proto;
    t->ctx = ctx;
    t->fd = fd;
    t->high = DEFAULT_HIGH;
    t->low = DEFAULT_HIGH / 4;
    socklen_t len = sizeof t->remote;
    if (getpeername(fd, (struct sockaddr *)&t->remote, &len) == 0 && len <= sizeof t->remote)
        t->remote_len = len;
    schedule(t);
    *transportp = t;
    return 0;
}

/* The path of a Unix socket address (not an abstract name), for
 * cio__remove_stale_socket. */
static void remove_stale_socket(const struct sockaddr *addr, unsigned int len) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
    size_t max = len - offsetof(struct sockaddr_un, sun_path);
    if (len <= offsetof(struct sockaddr_un, sun_path)) return;
    char path[sizeof un->sun_path + 1];
    size_t n = strnlen(un->sun_path, max < sizeof un->sun_path ? max : sizeof un->sun_path);
    memcpy(path, un->sun_path, n);
    path[n] = '\0';
    cio__remove_stale_socket(path);
}

static int set_flag(int fd, int name) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, name, &one, sizeof one) == 0 ? 0 : -errno;
}

int cio_create_datagram_endpoint(cio_loop *loop, const cio_datagram_protocol *proto, void *ctx,
                                 const struct sockaddr *local, unsigned int local_len,
                                 const struct sockaddr *remote, unsigned int remote_len,
                                 unsigned flags, cio_datagram_transport **transportp) {
    if (transportp) *transportp = NULL;
    if (!loop || !proto || !transportp || (!local && !remote) || bad_addr(local, local_len) ||
        bad_addr(remote, remote_len) ||
        (flags & ~(CIO_DATAGRAM_REUSE_PORT | CIO_DATAGRAM_ALLOW_BROADCAST)))
        return -EINVAL;
    int family = local ? local->sa_family : remote->sa_family;
    if (local && remote && local->sa_family != remote->sa_family) return -EINVAL;
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) return -EAFNOSUPPORT;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (flags & CIO_DATAGRAM_REUSE_PORT) rc = set_flag(fd, SO_REUSEPORT);
    if (rc == 0 && (flags & CIO_DATAGRAM_ALLOW_BROADCAST)) rc = set_flag(fd, SO_BROADCAST);
    if (rc == 0 && local) {
        if (family == AF_UNIX) remove_stale_socket(local, local_len);
        if (bind(fd, local, local_len) != 0) rc = -errno;
    }
    /* Connecting a datagram socket only records the peer: it completes at
     * once, or fails (a Unix path nobody bound: -ECONNREFUSED, -ENOENT). */
    if (rc == 0 && remote && cio__sys_connect(fd, remote, remote_len) != 0) rc = -errno;
    if (rc == 0) rc = make_transport(loop, proto, ctx, fd, transportp);
    if (rc < 0) close(fd);
    return rc;
}

int cio_create_datagram_endpoint_from_socket(cio_loop *loop, const cio_datagram_protocol *proto,
                                             void *ctx, int fd,
                                             cio_datagram_transport **transportp) {
    if (transportp) *transportp = NULL;
    if (!loop || !proto || !transportp) return -EINVAL;
    if (fd < 0) return -EBADF;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    int type = 0;
    unsigned int len = sizeof type;
    if (cio__sys_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return -errno;
    /* asyncio: "A UDP Socket was expected". */
    if (type != SOCK_DGRAM) return -EINVAL;
    int fl = cio__sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0 || (!(fl & O_NONBLOCK) && cio__sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    return make_transport(loop, proto, ctx, fd, transportp);
}

/* ---- the transport ------------------------------------------------------- */

/* Whether a and b name the same peer: family, port and address for IP
 * (and the scope of an IPv6 link-local address), the bytes otherwise. */
static bool same_peer(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *bs,
                      socklen_t blen) {
    const struct sockaddr *b = (const struct sockaddr *)bs;
    if (a->sa_family != b->sa_family) return false;
    if (a->sa_family == AF_INET && alen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6 && alen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

int cio_datagram_transport_sendto(cio_datagram_transport *t, const void *data, size_t len,
                                  const struct sockaddr *addr, unsigned int addrlen) {
    if (!t || (!data && len) || bad_addr(addr, addrlen)) return -EINVAL;
    int rc = cio__loop_check_thread(t->loop);
    if (rc < 0) return rc;
    if (t->closing) return -CIO_EINVALSTATE;
    if (t->remote_len) {
        /* asyncio: "Invalid address: must be None or <the peer>". */
        if (addr && !same_peer(addr, addrlen, &t->remote, t->remote_len)) return -EINVAL;
        addr = NULL;
        addrlen = 0;
    } else if (!addr) {
        return -EDESTADDRREQ;
    }
    if (len > INT_MAX) {
        /* No datagram is that long: the kernel refuses it (EMSGSIZE),
         * and the buffer's header and count must not wrap. */
        error_received(t, -EMSGSIZE);
        return 0;
    }
    if (cio__list_empty(&t->queue)) {
        /* Nothing waits: try at once, as asyncio does. */
        ssize_t n = send_one(t->fd, data, len, addr, addrlen);
        if (n >= 0) return 0;
        if (n != -EAGAIN) {
            error_received(t, (int)n);
            return 0;
        }
    }
    pending *d = cio__malloc(sizeof *d + len);
    if (!d) return -ENOMEM;
    d->len = len;
    d->addrlen = addrlen;
    if (addrlen) memcpy(&d->addr, addr, addrlen);
    if (len) memcpy(d->data, data, len);
    /* The watch reports the socket's next edge to writable. */
    cio__list_push_back(&t->queue, &d->link);
    t->buffered += len + HEADER_SIZE;
    maybe_pause(t);
    return 0;
}

int cio_datagram_transport_close(cio_datagram_transport *t) {
    if (!t) return -EINVAL;
    int rc = cio__loop_check_thread(t->loop);
    if (rc < 0) return rc;
    if (t->closing) return 0;
    /* Reading stops: the job reads no more once closing. */
    t->closing = 1;
    if (cio__list_empty(&t->queue)) {
        t->lost_due = 1;
        t->lost_error = 0;
        schedule(t);
    }
    return 0;
}

int cio_datagram_transport_abort(cio_datagram_transport *t) {
    if (!t) return -EINVAL;
    int rc = cio__loop_check_thread(t->loop);
    if (rc < 0) return rc;
    force_close(t, 0);
    return 0;
}

int cio_datagram_transport_is_closing(const cio_datagram_transport *t) {
    return t ? t->closing : 0;
}

size_t cio_datagram_transport_get_write_buffer_size(const cio_datagram_transport *t) {
    return t ? t->buffered : 0;
}

int cio_datagram_transport_set_write_buffer_limits(cio_datagram_transport *t, ssize_t high,
                                                   ssize_t low) {
    if (!t) return -EINVAL;
    int rc = cio__loop_check_thread(t->loop);
    if (rc < 0) return rc;
    size_t h, l;
    if ((rc = cio__write_limits(high, low, &h, &l)) < 0) return rc;
    t->high = h;
    t->low = l;
    if (!t->closing) maybe_pause(t);
    return 0;
}

int cio_datagram_transport_sockname(const cio_datagram_transport *t, struct sockaddr *addr,
                                    unsigned int *addrlen) {
    if (!t || !addr || !addrlen) return -EINVAL;
    if (t->fd < 0) return -EBADF;
    return getsockname(t->fd, addr, addrlen) == 0 ? 0 : -errno;
}

int cio_datagram_transport_peername(const cio_datagram_transport *t, struct sockaddr *addr,
                                    unsigned int *addrlen) {
    if (!t || !addr || !addrlen) return -EINVAL;
    if (!t->remote_len) return -ENOTCONN;
    /* As getpeername(2): at most *addrlen bytes, and the real length. */
    memcpy(addr, &t->remote, *addrlen < t->remote_len ? *addrlen : t->remote_len);
    *addrlen = t->remote_len;
    return 0;
}

int cio_datagram_transport_socket(const cio_datagram_transport *t) {
    if (!t) return -EINVAL;
    return t->fd >= 0 ? t->fd : -EBADF;
}

void *cio_datagram_transport_context(const cio_datagram_transport *t) {
    return t ? t->ctx : NULL;
}

int cio_datagram_transport_set_context(cio_datagram_transport *t, void *ctx) {
    if (!t) return -EINVAL;
    int rc = cio__loop_check_thread(t->loop);
    if (rc < 0) return rc;
    t->ctx = ctx;
    return 0;
}
