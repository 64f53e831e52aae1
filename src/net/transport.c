/*
 * Stream transports: asyncio's _SelectorSocketTransport, on an owned
 * descriptor.
 *
 * A transport owns its socket, which only the loop sees, so the backend
 * keeps one edge-triggered registration for it (CIO__OP_OWN) and tells the
 * transport of every edge through `watch`. An edge only marks a direction
 * ready and queues a job; the jobs run among the loop's other callbacks,
 * where the protocol may do anything (write, close, pause).
 *
 * Reading. The read job receives into the loop's shared buffer (a
 * transport that is idle holds no receive buffer at all) and hands each
 * chunk to data_received. Because the registration is edge-triggered, the
 * transport must read until the socket is empty, or remember that it is
 * not: a read that returns less than the buffer's size has emptied it (the
 * next edge says when more comes); one that fills the buffer leaves
 * `readable` set, and after a few such reads the job queues itself again
 * so that one busy connection cannot hold the loop.
 *
 * Writing. A write to an empty buffer is sent at once; whatever the socket
 * does not take is copied into the transport's buffer, which is sent by the
 * write job on the next writable edge. Over the high-water mark the
 * protocol's pause_writing is called, and resume_writing once the buffer
 * drains to the low-water mark, as asyncio does. An emptied buffer is
 * freed, so an idle connection keeps none. When the backend takes sends
 * cheaply (io_uring), a socket transport sends through it instead: see
 * "Sending through the backend" below.
 *
 * Receiving through the backend. When the backend can receive for an owned
 * socket (io_uring's multishot receive into the loop's buffer ring,
 * CIO__CAP_RECV_RING), a socket transport asks it to (CIO__OP_RECV_RING):
 * no recv() per message, the chunks wait in the backend in order and the
 * read job hands each to data_received straight from its buffer, then gives
 * the buffer back. When the ring ran out of buffers the receive stops with
 * -ENOBUFS and the data stays in the socket: the transport then reads it
 * with recv() as above (ring_fallback) until the socket is empty, and asks
 * the backend to receive again (the policy and why: backend_uring.c, "The
 * fast path"). Pausing the reader stops the backend's receive, so a paused
 * transport holds no more buffers than it had.
 *
 * Closing. close() stops reading and waits for the buffer to drain; abort()
 * drops it. Either way the lost job calls connection_lost once and then
 * closes the descriptor through the backend, whose final completion of the
 * watch frees the transport. When the loop closes first, the backend's
 * drain gives that final completion, and the transport closes its
 * descriptor and frees itself without callbacks.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/uio.h>
#include <limits.h>
#include <unistd.h>

#include "net.h"

/* Reads per job run before the job yields to the rest of the loop. */
enum { READS_PER_RUN = 4 };

static void schedule(cio_transport *t, cio__job *job) {
    if (!cio__link_linked(&job->link)) cio__ready_push(t->loop, job);
}

static void unschedule(cio__job *job) {
    if (cio__link_linked(&job->link)) cio__list_unlink(&job->link);
}

/* Ends the connection with error (0: a clean close): nothing more is read
 * or written, and connection_lost is scheduled. */
static void lose(cio_transport *t, int error) {
    if (t->state == CIO__T_LOST) return;
    t->state = CIO__T_LOST;
    t->error = error;
    unschedule(&t->read_job);
    unschedule(&t->write_job);
    schedule(t, &t->lost_job);
}

/* Drops the unsent bytes. A send the backend still holds keeps its record
 * until its final completion, which then frees it (ring_sent); cancelling it
 * is the caller's business (abort), since this also runs from the watch's
 * final completion, where nothing may be cancelled. */
static void free_buffer(cio_transport *t) {
    if (!t->ring_send) {
        cio__free(t->wbuf);
        t->wbuf = NULL;
        return;
    }
    struct cio__wsend *w = t->wsend;
    t->wsend = NULL;
    if (!w) return;
    cio__free(w->next); /* gathering: never in flight */
    w->next = NULL;
    if (w->op.state == CIO__OP_IN_FLIGHT) w->t = NULL;
    else cio__free(w);
}

/* The unsent bytes. Through the backend, a send's bytes count until its
 * final completion. */
static size_t buffered(const cio_transport *t) {
    if (t->ring_send) {
        size_t n = 0;
        for (const struct cio__wsend *w = t->wsend; w; w = w->next) n += w->len;
        return n;
    }
    return t->wbuf ? t->wbuf->len - t->wbuf->off : 0;
}

static void maybe_pause_writing(cio_transport *t) {
    if (!t->write_paused && buffered(t) > t->high && t->state != CIO__T_LOST) {
        t->write_paused = 1;
        if (t->proto->pause_writing) t->proto->pause_writing(t, t->ctx);
    }
}

static void maybe_resume_writing(cio_transport *t) {
    if (t->write_paused && buffered(t) <= t->low) {
        t->write_paused = 0;
        if (t->proto->resume_writing && t->state != CIO__T_LOST)
            t->proto->resume_writing(t, t->ctx);
    }
}

/* The buffer is empty: a pending write_eof or close can now happen. */
static void flushed(cio_transport *t) {
    free_buffer(t);
    if (t->eof_pending && !t->eof_written) {
        t->eof_written = 1;
        /* A pipe's end of stream is its close (asyncio's write_eof). */
        if (t->kind == CIO__T_WRITE_PIPE) t->state = CIO__T_CLOSING;
        else if (shutdown(t->fd, SHUT_WR) != 0 && errno != ENOTCONN) {
            lose(t, -errno);
            return;
        }
    }
    if (t->state == CIO__T_CLOSING) lose(t, 0);
}

/* Sends what the kernel takes of iov at once: the count, or -1 with errno.
 * A socket is sent to with MSG_NOSIGNAL; a pipe is written with SIGPIPE
 * held off (cio__pipe_writev). */
static ssize_t send_iov(cio_transport *t, const struct iovec *iov, int iovcnt) {
    if (t->kind != CIO__T_SOCKET) return cio__pipe_writev(t->fd, iov, iovcnt);
    if (iovcnt == 1)
        return cio__sys_send(t->fd, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return cio__sys_sendmsg(t->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ---- Sending through the backend ----------------------------------------
 *
 * With io_uring (CIO__CAP_SEND_RING) a socket transport makes no send() per
 * small write: the bytes are copied into a send record (struct cio__wsend) whose
 * CIO__OP_SEND goes to the backend, which only prepares an SQE; the loop's
 * next io_uring_enter, the one it makes anyway to wait for completions,
 * submits it with the iteration's other requests, and the kernel sends at
 * once when the socket has room (or parks the send until it has).
 *
 * A write larger than RING_WRITE_MAX with nothing in flight is sent at once
 * instead, as on epoll (see RING_WRITE_MAX for why), and only its rest, if
 * the socket took less, goes to the ring.
 *
 * One send is in flight at a time (the head of the chain t->wsend); what is
 * written meanwhile gathers in one record behind it (head->next), which is
 * sent as one when the head completes. That keeps the order of the writes
 * without relying on the kernel to order two sends, and a burst of writes
 * costs two sends, not one per write. The send carries CIO__OP_ALL: after a
 * short send the backend sends the rest itself, keeping its place, so a
 * send completes with its whole length or an error (or its cancel's
 * reason).
 *
 * The final completion (ring_sent, inside the backend's poll, where
 * nothing may be submitted) frees the record at once in the common case:
 * all of it went out and nothing else waits. Otherwise (a gathered record
 * to send, an error, writing paused, a write_eof or close waiting for the
 * flush) it leaves the record done and schedules the write job, which does
 * the rest among the loop's callbacks. The record belongs to the backend
 * until that completion: when the transport goes first (its watch's final
 * completion can come before the send's, on a close or the loop's close),
 * the record is orphaned (t = NULL) and frees itself.
 *
 * Write buffer accounting is as before: buffered() counts every byte not
 * yet completed, pause_writing fires over the high-water mark and
 * resume_writing at the low one, close and write_eof wait for the flush,
 * and abort cancels the send in flight.
 */

/* The largest write that goes to the ring when nothing is in flight, and
 * the smallest record's room: such a record (with its header) is one the
 * allocator serves from its per-thread cache. A larger write with nothing
 * in flight is sent at once, as on epoll, and only what the socket does
 * not take goes to the ring: copying kilobytes into a fresh record per
 * message costs more than the send() it saves: at 512 connections x 4 KiB
 * it tripled the CPU per message, the profile showing malloc's slow path
 * (records that size are past its per-thread cache), the kernel's copy
 * out of records a whole batch of which no longer fits the caches, and
 * page-fault handling. */
enum { RING_WRITE_MAX = 512 };

static void write_job(cio__job *job);

static void ring_sent(cio__op *op) {
    struct cio__wsend *w = op->owner;
    cio_transport *t = w->t;
    if (!t) {
        cio__free(w);
        return;
    }
    if (op->result == (ssize_t)w->len && !w->next && t->state == CIO__T_OPEN &&
        !t->write_paused && !t->eof_pending) {
        t->wsend = NULL;
        cio__free(w);
        return;
    }
    schedule(t, &t->write_job);
}

/* Hands the head of the chain to the backend. */
static void ring_send_start(cio_transport *t) {
    struct cio__wsend *w = t->wsend;
    cio__op_init(&w->op, CIO__OP_SEND, t->fd);
    w->op.flags = CIO__OP_ALL;
    w->op.u.rw.buf = w->data;
    w->op.u.rw.len = w->len;
    w->op.u.rw.flags = 0;
    w->op.owner = w;
    w->op.done = ring_sent;
    w->t = t;
    cio__io_submit(&t->loop->io, &w->op);
    /* Refused at once (the backend gives no done() then): the write job
     * reports it. */
    if (w->op.state == CIO__OP_DONE) schedule(t, &t->write_job);
}

/* Copies a write into the record that gathers (a new head when nothing is
 * in flight, which is then sent at once). 0 or -ENOMEM. */
static int ring_write(cio_transport *t, const struct iovec *iov, int iovcnt, size_t total) {
    struct cio__wsend *head = t->wsend;
    size_t skip = 0; /* bytes of the write already sent */
    if (!head && total > RING_WRITE_MAX && iovcnt <= IOV_MAX) {
        for (;;) {
            ssize_t n = send_iov(t, iov, iovcnt);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                int rc = -errno;
                lose(t, rc);
                return rc;
            }
            if (n > 0) skip = (size_t)n;
            break;
        }
        if (skip == total) return 0;
        total -= skip;
    }
    struct cio__wsend **slot = head ? &head->next : &t->wsend;
    struct cio__wsend *w = *slot;
    size_t used = w ? w->len : 0;
    if (!w || w->cap - used < total) {
        size_t need = used + total;
        if (need < used || need > SIZE_MAX / 2 - sizeof *w) return -ENOMEM;
        size_t ncap = w ? w->cap * 2 : RING_WRITE_MAX;
        while (ncap < need) ncap *= 2;
        struct cio__wsend *nw = cio__realloc(w, sizeof *nw + ncap);
        if (!nw) return -ENOMEM;
        if (!w) {
            nw->len = 0;
            nw->next = NULL;
            nw->t = t;
        }
        nw->cap = ncap;
        *slot = w = nw;
    }
    for (int i = 0; i < iovcnt; i++) {
        const char *from = iov[i].iov_base;
        size_t n = iov[i].iov_len;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        from += skip;
        n -= skip;
        skip = 0;
        memcpy(w->data + w->len, from, n);
        w->len += n;
    }
    if (!head) ring_send_start(t);
    maybe_pause_writing(t);
    return 0;
}

/* The write job of a transport that sends through the backend: the head's
 * completion (when ring_sent left it), then the gathered record's send, the
 * resume and the flush. */
static void ring_write_job(cio_transport *t) {
    struct cio__wsend *w = t->wsend;
    if (w && w->op.state == CIO__OP_DONE) {
        ssize_t res = w->op.result;
        t->wsend = w->next;
        cio__free(w);
        if (res < 0) {
            lose(t, (int)res);
            return;
        }
        if (t->wsend && t->state != CIO__T_LOST) ring_send_start(t);
    }
    if (t->state == CIO__T_LOST) return;
    maybe_resume_writing(t);
    if (t->state != CIO__T_LOST && buffered(t) == 0) flushed(t);
}

/* Sends from the buffer until it is empty or the socket is full. */
static void write_job(cio__job *job) {
    cio_transport *t = CIO__CONTAINER_OF(job, cio_transport, write_job);
    if (t->ring_send) {
        ring_write_job(t);
        return;
    }
    while (buffered(t) > 0) {
        struct iovec iov = {t->wbuf->data + t->wbuf->off, buffered(t)};
        ssize_t n = send_iov(t, &iov, 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                t->writable = 0;
                return;
            }
            lose(t, -errno);
            return;
        }
        t->wbuf->off += (size_t)n;
    }
    maybe_resume_writing(t);
    if (t->state != CIO__T_LOST && buffered(t) == 0) flushed(t);
}

/* End of stream: asyncio stops reading and asks the protocol whether to
 * keep the writing side open. */
static void at_eof(cio_transport *t) {
    t->readable = 0;
    t->reading = 0;
    t->ring_fallback = 0;
    int keep = t->proto->eof_received ? t->proto->eof_received(t, t->ctx) : 0;
    /* A read pipe has no other side to keep: it closes (asyncio). */
    if ((!keep || t->kind != CIO__T_SOCKET) && t->state == CIO__T_OPEN) cio_transport_close(t);
}

/* The socket is empty. After a fall-back to recv(), the backend receives
 * again. */
static void drained(cio_transport *t) {
    t->readable = 0;
    if (t->ring_fallback) {
        t->ring_fallback = 0;
        /* A reader paused meanwhile arms it when it resumes. */
        if (t->reading) cio__io_recv_arm(&t->loop->io, &t->watch, 1);
    }
}

/* Chunks handed to data_received per job run before the job yields. */
enum { CHUNKS_PER_RUN = 16 };

/* The read job of a transport the backend receives for: the chunks in
 * order, then how the receive ended. Returns true when the job must go on
 * with recv() (the ring ran out of buffers). */
static bool ring_read(cio_transport *t) {
    cio__io *io = &t->loop->io;
    for (int i = 0; i < CHUNKS_PER_RUN; i++) {
        if (!t->reading || t->state != CIO__T_OPEN) return false;
        const void *data;
        size_t n = cio__io_recv_peek(io, &t->watch, &data);
        if (!n) break;
        t->proto->data_received(t, data, n, t->ctx);
        cio__io_recv_pop(io, &t->watch);
    }
    if (!t->reading || t->state != CIO__T_OPEN || t->watch.state != CIO__OP_IN_FLIGHT)
        return false;
    const void *data;
    if (cio__io_recv_peek(io, &t->watch, &data)) {
        /* More chunks than a run: the rest waits its turn. */
        schedule(t, &t->read_job);
        return false;
    }
    if (!t->watch.u.poll.recv_ended) return false;
    int end = t->watch.u.poll.recv_end;
    if (end == -ENOBUFS) {
        t->ring_fallback = 1;
        t->readable = 1;
        return true;
    }
    if (end == 0) at_eof(t);
    else lose(t, end);
    return false;
}

static void read_job(cio__job *job) {
    cio_transport *t = CIO__CONTAINER_OF(job, cio_transport, read_job);
    if (t->ring && !t->ring_fallback && !ring_read(t)) return;
    char *buf = t->loop->read_buffer;
    for (int i = 0; i < READS_PER_RUN; i++) {
        if (!t->reading || t->state != CIO__T_OPEN || !t->readable) return;
        ssize_t n = t->kind == CIO__T_SOCKET
                        ? cio__sys_recv(t->fd, buf, CIO__READ_BUFFER_SIZE, MSG_DONTWAIT)
                        : cio__sys_read(t->fd, buf, CIO__READ_BUFFER_SIZE);
        if (n > 0) {
            /* A short read emptied the socket, unless the peer's end of
             * stream came with it: that must still be read. */
            bool empty = (size_t)n < CIO__READ_BUFFER_SIZE && !t->peer_closed;
            if (empty) t->readable = 0;
            t->proto->data_received(t, buf, (size_t)n, t->ctx);
            if (empty && t->state == CIO__T_OPEN) drained(t);
            continue;
        }
        if (n == 0) {
            at_eof(t);
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            drained(t);
            return;
        }
        lose(t, -errno);
        return;
    }
    /* Still readable after a full round: the rest waits its turn. */
    if (t->reading && t->state == CIO__T_OPEN && t->readable) schedule(t, &t->read_job);
}

static void release(cio_transport *t);

static void lost_job(cio__job *job) {
    cio_transport *t = CIO__CONTAINER_OF(job, cio_transport, lost_job);
    if (t->proto->connection_lost) t->proto->connection_lost(t, t->error, t->ctx);
    if (t->fd_gone) {
        release(t);
        return;
    }
    /* Closing through the backend ends the watch, whose final completion
     * (on_edge) frees t: nothing may touch t after this. */
    t->closing_fd = 1;
    cio__op close_op;
    cio__op_init(&close_op, CIO__OP_CLOSE, t->fd);
    close_op.u.close.keep_fd = 0;
    cio__io_submit(&t->loop->io, &close_op);
}

/* The backend reports an edge (the watch stays in flight), or the final
 * completion of the watch. That comes from the lost job's own close, from
 * the loop's close (drain: -ECANCELED, the descriptor still open), or from
 * a cio_close() of the descriptor by the program (-EBADF): then the number
 * is no longer the transport's, and connection_lost reports -EBADF. */
static void on_edge(cio__op *op) {
    cio_transport *t = op->owner;
    if (op->state == CIO__OP_IN_FLIGHT) {
        uint32_t ev = (uint32_t)op->result;
        if (ev & CIO__POLL_RDHUP) t->peer_closed = 1;
        /* A write pipe is never readable: a hang-up says its reader went
         * away. As asyncio: an error only if data is left unsent. */
        if (t->kind == CIO__T_WRITE_PIPE && (ev & CIO__POLL_RDHUP)) {
            lose(t, buffered(t) > 0 ? -EPIPE : 0);
            return;
        }
        if (ev & CIO__POLL_DATA) {
            if (t->reading && t->state == CIO__T_OPEN) schedule(t, &t->read_job);
        }
        /* A transport the backend receives for learns of data and errors
         * from the receive (an error or hang-up also shows here). */
        if ((ev & CIO__POLL_IN) && !t->ring) {
            t->readable = 1;
            if (t->reading && t->state == CIO__T_OPEN) schedule(t, &t->read_job);
        }
        /* A transport that sends through the backend waits for no edge:
         * its sends wait for room themselves. */
        if ((ev & CIO__POLL_OUT) && !t->ring_send) {
            t->writable = 1;
            if (buffered(t) > 0 && t->state != CIO__T_LOST) schedule(t, &t->write_job);
        }
        return;
    }
    if (t->closing_fd) {
        release(t);
    } else if (op->result == -ECANCELED) {
        cio__sys_close(t->fd);
        if (t->on_release) t->on_release(t, t->ctx);
        release(t);
    } else {
        t->fd_gone = 1;
        t->state = CIO__T_OPEN; /* so that lose() records the error */
        lose(t, -EBADF);
    }
}

static void release(cio_transport *t) {
    unschedule(&t->read_job);
    unschedule(&t->write_job);
    unschedule(&t->lost_job);
    free_buffer(t);
    if (t->on_gone) t->on_gone(t);
    if (t->embedded_released) {
        /* Not ours to free: its stream server's handler task holds it in
         * its frame and may return now (stream.c). */
        t->embedded_released(t);
        return;
    }
    /* Counted so that the loop's idle trim hands malloc's free pages back
     * once many connections have gone (stack.h). */
    cio__stack_pool_note_freed(&t->loop->stacks, sizeof *t);
    cio__free(t);
}

/* Sets up the transport record t (zeroed first) of the given kind on fd
 * and starts its watch: 0, or the watch's error (fd left open). */
static int init(cio_transport *t, cio_loop *loop, int fd, uint8_t kind,
                const cio_protocol *proto, void *ctx) {
    memset(t, 0, sizeof *t);
    t->loop = loop;
    t->proto = proto;
    t->ctx = ctx;
    t->fd = fd;
    t->kind = kind;
    t->high = CIO__WRITE_HIGH_DEFAULT;
    t->low = CIO__WRITE_HIGH_DEFAULT / 4;
    t->reading = kind != CIO__T_WRITE_PIPE;
    t->writable = 1;
    t->read_job.run = read_job;
    t->write_job.run = write_job;
    t->lost_job.run = lost_job;
    cio__list_init(&t->read_job.link);
    cio__list_init(&t->write_job.link);
    cio__list_init(&t->lost_job.link);
    cio__list_init(&t->server_link);
    cio__op_init(&t->watch, CIO__OP_POLL, fd);
    t->watch.u.poll.events = CIO__POLL_IN | CIO__POLL_OUT;
    t->watch.flags = CIO__OP_MULTISHOT | CIO__OP_OWN;
    t->watch.owner = t;
    t->watch.done = on_edge;
    if (kind == CIO__T_SOCKET && (loop->io.caps & CIO__CAP_RECV_RING))
        t->watch.flags |= CIO__OP_RECV_RING;
    if (kind == CIO__T_SOCKET && (loop->io.caps & CIO__CAP_SEND_RING)) {
        t->watch.flags |= CIO__OP_SEND_RING;
        t->ring_send = 1;
    }
    cio__io_submit(&loop->io, &t->watch);
    if (t->watch.state == CIO__OP_DONE) return (int)t->watch.result;
    /* The backend may have declined (a socket that is not a stream). */
    t->ring = (t->watch.flags & CIO__OP_RECV_RING) != 0;
    if (kind == CIO__T_SOCKET) {
        /* As asyncio, TCP transports send small writes at once (no
         * Nagle); on other sockets the call fails harmlessly. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    /* Nothing is known of the descriptor yet: the first read is tried
     * (unless the backend receives: its receive is already armed). */
    t->readable = kind != CIO__T_WRITE_PIPE && !t->ring;
    return 0;
}

/* Makes a transport of the given kind on fd; leaves fd open on failure. */
static int make(cio_loop *loop, int fd, uint8_t kind, const cio_protocol *proto, void *ctx,
                cio_transport **out) {
    if (kind != CIO__T_WRITE_PIPE && !cio__read_buffer(loop)) return -ENOMEM;
    cio_transport *t = cio__malloc(sizeof *t);
    if (!t) return -ENOMEM;
    int rc = init(t, loop, fd, kind, proto, ctx);
    if (rc < 0) {
        cio__free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int cio__transport_init_embedded(cio_transport *t, cio_loop *loop, int fd,
                                 const cio_protocol *proto, void *ctx,
                                 void (*released)(cio_transport *t)) {
    int rc = cio__read_buffer(loop) ? init(t, loop, fd, CIO__T_SOCKET, proto, ctx) : -ENOMEM;
    if (rc < 0) {
        cio__sys_close(fd);
        return rc;
    }
    t->embedded_released = released;
    return 0;
}

int cio__transport_new(cio_loop *loop, int fd, const cio_protocol *proto, void *ctx,
                       cio_transport **out) {
    int rc = make(loop, fd, CIO__T_SOCKET, proto, ctx, out);
    if (rc < 0) cio__sys_close(fd);
    return rc;
}

int cio__transport_new_pipe(cio_loop *loop, int fd, int writing, const cio_protocol *proto,
                            void *ctx, cio_transport **out) {
    return make(loop, fd, writing ? CIO__T_WRITE_PIPE : CIO__T_READ_PIPE, proto, ctx, out);
}

void cio__transport_start(cio_transport *t) {
    if (t->proto->connection_made) t->proto->connection_made(t, t->ctx);
    if (t->reading && t->state == CIO__T_OPEN && t->readable) schedule(t, &t->read_job);
}

/* ---- the program's calls ------------------------------------------------ */

/* Checks common to the calls that change a transport. */
static int check(cio_transport *t) {
    if (!t) return -EINVAL;
    return cio__loop_check_thread(t->loop);
}

/* Appends len bytes to the buffer, growing it geometrically; an emptied
 * prefix is reclaimed first. */
static int buffer_append(cio_transport *t, const void *data, size_t len) {
    struct cio__wbuf *w = t->wbuf;
    if (w && w->off > 0 && w->cap - w->len < len) {
        memmove(w->data, w->data + w->off, w->len - w->off);
        w->len -= w->off;
        w->off = 0;
    }
    size_t used = w ? w->len : 0;
    size_t cap = w ? w->cap : 0;
    if (cap - used < len) {
        size_t need = used + len;
        if (need < used || need > SIZE_MAX / 2 - sizeof *w) return -ENOMEM;
        size_t ncap = cap ? cap : 4096 - sizeof *w;
        while (ncap < need) ncap *= 2;
        struct cio__wbuf *nw = cio__realloc(w, sizeof *w + ncap);
        if (!nw) return -ENOMEM;
        if (!w) nw->off = nw->len = 0;
        nw->cap = ncap;
        t->wbuf = w = nw;
    }
    memcpy(w->data + w->len, data, len);
    w->len += len;
    return 0;
}

/* Whether connection_lost has been called (or is running): the transport
 * is lost and its lost job has left the ready queue. */
static bool lost_reported(const cio_transport *t) {
    return t->state == CIO__T_LOST && !cio__link_linked(&t->lost_job.link);
}

static int write_state(cio_transport *t) {
    /* After the program's own close, and until connection_lost tells it
     * the connection is gone, the answer does not depend on how far the
     * close got (a close with nothing buffered is a loss at once on epoll,
     * and waits for the kernel's last completion on io_uring). */
    /* The same after write_eof, which on a pipe is its close. */
    if ((t->closed_by_program || t->eof_pending) && !lost_reported(t)) return -CIO_EINVALSTATE;
    if (t->state == CIO__T_LOST) return -EPIPE;
    if (t->state == CIO__T_CLOSING || t->eof_pending) return -CIO_EINVALSTATE;
    return 0;
}

int cio_transport_writelines(cio_transport *t, const struct iovec *iov, int iovcnt) {
    int rc = check(t);
    if (rc < 0) return rc;
    if (iovcnt < 0 || (iovcnt > 0 && !iov)) return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len) return -EINVAL;
        if (total + iov[i].iov_len < total) return -EINVAL; /* more than memory holds */
        total += iov[i].iov_len;
    }
    if ((rc = write_state(t)) < 0) return rc;
    if (t->kind == CIO__T_READ_PIPE) return -ENOTSUP;
    if (total == 0) return 0;
    if (t->ring_send) return ring_write(t, iov, iovcnt, total);
    int first = 0;
    size_t skip = 0;
    /* Nothing buffered and the socket may take it: send at once, as
     * asyncio does, and buffer only what is left. */
    /* More pieces than one sendmsg takes: all of it goes through the
     * buffer instead. */
    if (buffered(t) == 0 && t->writable && iovcnt <= IOV_MAX) {
        for (;;) {
            ssize_t n = send_iov(t, iov, iovcnt);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                rc = -errno;
                lose(t, rc);
                return rc;
            }
            if (n < 0) {
                t->writable = 0;
                break;
            }
            if ((size_t)n == total) return 0;
            /* Partial: find where the unsent part starts. */
            size_t left = (size_t)n;
            while (first < iovcnt && left >= iov[first].iov_len) left -= iov[first++].iov_len;
            skip = left;
            t->writable = 0;
            break;
        }
    }
    for (int i = first; i < iovcnt; i++) {
        size_t off = i == first ? skip : 0;
        if ((rc = buffer_append(t, (const char *)iov[i].iov_base + off, iov[i].iov_len - off)) < 0)
            return rc;
    }
    if (t->writable) schedule(t, &t->write_job);
    maybe_pause_writing(t);
    return 0;
}

int cio_transport_write(cio_transport *t, const void *data, size_t len) {
    if (!data && len) return -EINVAL;
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return cio_transport_writelines(t, &iov, 1);
}

int cio_transport_can_write_eof(cio_transport *t) {
    if (!t) return -EINVAL;
    return t->kind != CIO__T_READ_PIPE;
}

int cio_transport_write_eof(cio_transport *t) {
    int rc = check(t);
    if (rc < 0) return rc;
    if (t->kind == CIO__T_READ_PIPE) return -ENOTSUP;
    /* As asyncio: nothing to do once closing (whatever the backend), nor
     * once the end was written, even if that end already finished a
     * write pipe (its connection is lost as soon as the end is out). */
    if (t->eof_pending || (t->closed_by_program && !lost_reported(t))) return 0;
    if (t->state == CIO__T_LOST) return -EPIPE;
    if (t->state == CIO__T_CLOSING) return 0;
    t->eof_pending = 1;
    if (buffered(t) == 0) flushed(t);
    return 0;
}

int cio_transport_close(cio_transport *t) {
    int rc = check(t);
    if (rc < 0) return rc;
    if (t->state != CIO__T_OPEN) return 0;
    t->closed_by_program = 1;
    t->state = CIO__T_CLOSING;
    unschedule(&t->read_job);
    if (buffered(t) == 0) lose(t, 0);
    return 0;
}

int cio_transport_abort(cio_transport *t) {
    int rc = check(t);
    if (rc < 0) return rc;
    if (t->state == CIO__T_LOST) return 0;
    t->closed_by_program = 1;
    /* The send in flight is dropped too; its record waits for the final
     * completion (free_buffer). */
    if (t->ring_send && t->wsend && t->wsend->op.state == CIO__OP_IN_FLIGHT)
        cio__io_cancel(&t->loop->io, &t->wsend->op, -ECANCELED);
    free_buffer(t);
    lose(t, 0);
    return 0;
}

int cio_transport_is_closing(cio_transport *t) {
    if (!t) return -EINVAL;
    /* A write pipe's end closes it (asyncio's write pipe sets _closing in
     * write_eof), even while the buffer still drains; a socket's does not. */
    return t->state != CIO__T_OPEN || (t->kind == CIO__T_WRITE_PIPE && t->eof_pending);
}

int cio_transport_pause_reading(cio_transport *t) {
    int rc = check(t);
    if (rc < 0) return rc;
    if (t->kind == CIO__T_WRITE_PIPE) return -ENOTSUP;
    t->reading = 0;
    unschedule(&t->read_job);
    if (t->ring && !t->ring_fallback) cio__io_recv_arm(&t->loop->io, &t->watch, 0);
    return 0;
}

int cio_transport_resume_reading(cio_transport *t) {
    int rc = check(t);
    if (rc < 0) return rc;
    if (t->kind == CIO__T_WRITE_PIPE) return -ENOTSUP;
    if (t->state != CIO__T_OPEN || t->reading) return 0;
    t->reading = 1;
    /* Edges that came while paused were only remembered: the socket may
     * hold data no new edge will announce. */
    if (t->readable) schedule(t, &t->read_job);
    if (t->ring && !t->ring_fallback) {
        /* Chunks (or the receive's end) kept while paused are delivered
         * first; the receive starts again behind them. */
        const void *data;
        if (cio__io_recv_peek(&t->loop->io, &t->watch, &data) || t->watch.u.poll.recv_ended)
            schedule(t, &t->read_job);
        cio__io_recv_arm(&t->loop->io, &t->watch, 1);
    }
    return 0;
}

int cio_transport_is_reading(cio_transport *t) {
    if (!t) return -EINVAL;
    return t->reading && t->state == CIO__T_OPEN;
}

int cio_transport_set_write_buffer_limits(cio_transport *t, ssize_t high, ssize_t low) {
    int rc = check(t);
    if (rc < 0) return rc;
    /* high 0 pauses whenever anything is buffered, as asyncio's. */
    size_t h, l;
    if ((rc = cio__write_limits(high, low, &h, &l)) < 0) return rc;
    t->high = h;
    t->low = l;
    /* As asyncio's: new limits may pause the protocol at once, but only a
     * drain resumes it (no resume_writing inside this call). */
    maybe_pause_writing(t);
    return 0;
}

int cio_transport_get_write_buffer_limits(cio_transport *t, size_t *low, size_t *high) {
    if (!t) return -EINVAL;
    if (low) *low = t->low;
    if (high) *high = t->high;
    return 0;
}

size_t cio_transport_get_write_buffer_size(cio_transport *t) {
    return t ? buffered(t) : 0;
}

int cio_transport_sockname(cio_transport *t, struct sockaddr *addr, unsigned int *len) {
    if (!t || !addr || !len) return -EINVAL;
    socklen_t l = *len;
    if (getsockname(t->fd, addr, &l) != 0) return -errno;
    *len = l;
    return 0;
}

int cio_transport_peername(cio_transport *t, struct sockaddr *addr, unsigned int *len) {
    if (!t || !addr || !len) return -EINVAL;
    socklen_t l = *len;
    if (getpeername(t->fd, addr, &l) != 0) return -errno;
    *len = l;
    return 0;
}

int cio_transport_socket(cio_transport *t) {
    return t ? t->fd : -EINVAL;
}

void *cio_transport_context(cio_transport *t) {
    return t ? t->ctx : NULL;
}

int cio_transport_set_context(cio_transport *t, void *ctx) {
    int rc = check(t);
    if (rc < 0) return rc;
    t->ctx = ctx;
    return 0;
}

cio_loop *cio_transport_loop(cio_transport *t) {
    return t ? t->loop : NULL;
}
