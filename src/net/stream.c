/*
 * Streams: asyncio's StreamReader and StreamWriter in one object, on a
 * transport, as asyncio builds them (StreamReaderProtocol).
 *
 * The stream is the transport's protocol. Arriving data is appended to the
 * stream's buffer and wakes the reading task; the reading calls take from
 * the buffer and wait (cio__waitq) only when it cannot satisfy them. The
 * buffer is freed whenever it is emptied, so an idle connection holds no
 * receive memory. Reading pauses the transport while more than twice the
 * limit waits unread, and resumes once the reader takes it down to the
 * limit (asyncio's _maybe_resume_transport) or whenever a reader waits for
 * more (asyncio's _wait_for_data: readexactly(n) with n over twice the
 * limit needs more than the pause lets in).
 *
 * Writing goes straight to the transport, which sends at once or buffers;
 * drain waits while the transport has paused writing (over its high-water
 * mark) and wakes at resume_writing, or with the error once the connection
 * is lost.
 *
 * A task that waits in read with nothing buffered lends its buffer: the
 * data goes straight there, with no copy through the stream's buffer and
 * no allocation per message (a 4 KiB echo otherwise allocates and frees a
 * buffer per message, and glibc's trimming turns that into page faults).
 *
 * Nothing is dropped on the way: data that came before an error or an end
 * of stream is returned first, and the readers that cannot complete
 * (readexactly, readuntil) leave what they saw in the buffer.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

#define DEFAULT_LIMIT 65536u

struct cio_stream {
    cio_transport *t;        /* NULL once the connection is gone (lost, or the loop closed) */
    cio_loop *loop;
    char *buf;               /* unread data: buf[off, len) */
    size_t off, len, cap;
    size_t limit;
    int error;               /* the connection's error, once lost */
    /* Tasks inside a read, drain or wait_closed: a server's stream
     * outlives its handler until they have left. */
    uint32_t inside;
    uint8_t eof;             /* no more data will come */
    uint8_t eof_received;    /* ... because the peer ended it (not an error) */
    uint8_t closed;          /* this program closed the stream */
    uint8_t eof_sent;        /* this program wrote the end (write_eof) */
    uint8_t paused;          /* we paused the transport's reading */
    uint8_t write_paused;    /* the transport asked us to stop writing */
    uint8_t reading;         /* a task is inside a reading call */
    uint8_t from_server;     /* handed to a handler: the server frees it */
    uint8_t kind;            /* its transport's: a socket, or a pipe's end */
    uint8_t owned;           /* a child process's pipe: the process frees it */
    uint8_t embedded;        /* a server's: lives in its handler task's frame */
    uint8_t released;        /* embedded: its transport is done with its record */
    uint8_t ended;           /* embedded: its handler returned */
    /* A task waiting in cio_stream_read with nothing buffered: data that
     * arrives goes straight into its buffer (see on_data). */
    char *direct;
    size_t direct_cap, direct_len;
    cio__waitq readers;
    cio__waitq drainers;
    cio__waitq closers;
};

typedef struct stream_server {
    cio_stream_handler_fn handler;
    void *arg;
} stream_server;

static size_t avail(const cio_stream *s) {
    return s->len - s->off;
}

static void resume_reading(cio_stream *s) {
    if (s->paused && s->t) {
        s->paused = 0;
        cio_transport_resume_reading(s->t);
    }
}

static void maybe_resume(cio_stream *s) {
    if (avail(s) <= s->limit) resume_reading(s);
}

static void consume(cio_stream *s, size_t n) {
    s->off += n;
    if (s->off == s->len) {
        cio__free(s->buf);
        s->buf = NULL;
        s->off = s->len = s->cap = 0;
    }
    maybe_resume(s);
}

/* ---- the protocol ------------------------------------------------------- */

static void on_data(cio_transport *t, const void *data, size_t n, void *ctx) {
    cio_stream *s = ctx;
    if (!s) return;
    if (s->direct && s->direct_len == 0 && avail(s) == 0) {
        size_t k = n < s->direct_cap ? n : s->direct_cap;
        memcpy(s->direct, data, k);
        s->direct_len = k;
        data = (const char *)data + k;
        n -= k;
        if (n == 0) {
            cio__waitq_wake_all(&s->readers, NULL);
            return;
        }
    }
    if (s->cap - s->len < n) {
        if (s->off > 0) {
            memmove(s->buf, s->buf + s->off, avail(s));
            s->len -= s->off;
            s->off = 0;
        }
        if (s->cap - s->len < n) {
            size_t cap = s->cap ? s->cap : 1024;
            while (cap - s->len < n) cap *= 2;
            char *nb = cio__realloc(s->buf, cap);
            if (!nb) {
                /* Nothing can be dropped silently: the connection fails. */
                s->error = -ENOMEM;
                cio_transport_abort(t);
                return;
            }
            s->buf = nb;
            s->cap = cap;
        }
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    if (!s->paused && avail(s) > s->limit && avail(s) - s->limit > s->limit) {
        s->paused = 1;
        cio_transport_pause_reading(t);
    }
    cio__waitq_wake_all(&s->readers, NULL);
}

static int on_eof(cio_transport *t, void *ctx) {
    (void)t;
    cio_stream *s = ctx;
    if (!s) return 0;
    s->eof = 1;
    s->eof_received = 1;
    cio__waitq_wake_all(&s->readers, NULL);
    /* Keep the transport open: the program may still write (half-close). */
    return 1;
}

static void stream_free_now(cio_stream *s) {
    cio__free(s->buf);
    s->buf = NULL;
    if (s->embedded) return; /* its handler's frame holds it */
    /* Not counted for the idle trim (cio__stack_pool_note_freed): a stream
     * may be freed after its loop, which it would then touch. Its
     * transport, freed while the loop lives, is counted. */
    cio__free(s);
}

static void on_lost(cio_transport *t, int error, void *ctx) {
    (void)t;
    cio_stream *s = ctx;
    if (!s) return;
    s->t = NULL;
    s->eof = 1;
    /* As asyncio's StreamReaderProtocol: a clean loss is the end of
     * stream, a failure is the reader's error, not an end of stream. */
    if (error == 0) s->eof_received = 1;
    if (!s->error) s->error = error;
    cio__waitq_wake_all(&s->readers, NULL);
    cio__waitq_wake_all(&s->drainers, NULL);
    cio__waitq_wake_all(&s->closers, NULL);
}

/* The loop closed under the transport: no more callbacks will come. */
static void on_release(cio_transport *t, void *ctx) {
    (void)t;
    cio_stream *s = ctx;
    if (!s) return;
    s->t = NULL;
    s->eof = 1;
    /* A server's stream would have been freed by its handler's task,
     * which the closing loop will never resume. */
    if (s->from_server) {
        cio__waitq_forget_all(&s->readers);
        cio__waitq_forget_all(&s->drainers);
        cio__waitq_forget_all(&s->closers);
        stream_free_now(s);
    }
}

static void on_pause(cio_transport *t, void *ctx) {
    (void)t;
    cio_stream *s = ctx;
    if (s) s->write_paused = 1;
}

static void on_resume(cio_transport *t, void *ctx) {
    (void)t;
    cio_stream *s = ctx;
    if (!s) return;
    s->write_paused = 0;
    cio__waitq_wake_all(&s->drainers, NULL);
}

static const cio_protocol stream_protocol = {
    .data_received = on_data,
    .eof_received = on_eof,
    .connection_lost = on_lost,
    .pause_writing = on_pause,
    .resume_writing = on_resume,
};

static void stream_init(cio_stream *s, cio_loop *loop) {
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->limit = DEFAULT_LIMIT;
    cio__waitq_init(&s->readers);
    cio__waitq_init(&s->drainers);
    cio__waitq_init(&s->closers);
    /* Bound from the start: only this loop's transport ever wakes them,
     * so a task of another loop must be refused (-CIO_EWRONGLOOP), not
     * bound to the queue by its first wait and left there for ever. */
    cio__waitq_bind(&s->readers, loop);
    cio__waitq_bind(&s->drainers, loop);
    cio__waitq_bind(&s->closers, loop);
}

static cio_stream *stream_new(cio_loop *loop) {
    cio_stream *s = cio__malloc(sizeof *s);
    if (s) stream_init(s, loop);
    return s;
}

static void attach(cio_stream *s, cio_transport *t) {
    s->t = t;
    s->kind = t->kind;
    t->on_release = on_release;
}

/* ---- servers ------------------------------------------------------------ */

/*
 * A connection of a stream server costs one stack page. Its handler task
 * is started for each accepted descriptor, eagerly (cio_spawn's
 * eager_start), from the server's accept job, and keeps the connection's
 * two records, transport and stream, in its own frame (server_conn): the
 * top page of its stack, which the task touches anyway, so an idle
 * connection holds no heap record of its own but the task's. The task
 * makes the transport and calls connection_made before its first
 * suspension, so no data can arrive before the stream exists.
 *
 * The records must outlive every use the loop makes of them. When the
 * handler returns, the stream ends with it (as before: the handler owns
 * it): the transport is closed, its buffered writes still going out, and
 * the task waits until the transport has had its final completion and is
 * done with the record (embedded_released); only then does
 * the frame go. A cancellation during that wait aborts the connection
 * instead of flushing it, and the task still waits for the release, which
 * then comes within the next iterations. If the loop closes while the task
 * is suspended, the loop's drain releases the transport first (its
 * on_release takes the task's waits out of the stream's queues) and the
 * task's stack goes back to the pool after, never the other way round.
 */
typedef struct server_conn {
    cio_transport t;
    cio_stream s;
    cio__job gone; /* on the handler's own task, for a close that destroys it */
} server_conn;

/* What the accept job hands the handler task; read before the task first
 * suspends, since it lives in the accept job's frame. */
typedef struct conn_start {
    const stream_server *srv;
    cio_server *server;
    int fd;
    int ran;
    int rc;
} conn_start;

static cio_stream *conn_stream(cio_transport *t) {
    return &CIO__CONTAINER_OF(t, server_conn, t)->s;
}

/* The loop closes under a suspended handler: its task never runs again. */
static void on_release_embedded(cio_transport *t, void *ctx) {
    (void)ctx;
    cio_stream *s = conn_stream(t);
    s->t = NULL;
    s->eof = 1;
    cio__waitq_forget_all(&s->readers);
    cio__waitq_forget_all(&s->drainers);
    cio__waitq_forget_all(&s->closers);
    stream_free_now(s);
}

/*
 * The loop closes under a handler suspended outside any stream call (in a
 * sleep, on a lock) after its connection was already released (the peer
 * went away), or while end_connection waits for the release: its task is
 * destroyed and never finishes end_connection, and on_release_embedded
 * does not run (the release came, or comes, by the other path). A job
 * waits on the handler's own task for that case; it is taken off once
 * end_connection is done, so it never runs, and only a close that
 * discards it frees what the stream holds.
 */
static void handler_gone_run(cio__job *job) {
    (void)job;
}

static void handler_gone_discard(cio__job *job) {
    stream_free_now(&CIO__CONTAINER_OF(job, server_conn, gone)->s);
}

static pthread_once_t handler_gone_once = PTHREAD_ONCE_INIT;

static void register_handler_gone(void) {
    cio__job_register_discard(handler_gone_run, handler_gone_discard);
}

/* The transport is done with the record in the handler's frame. */
static void embedded_released(cio_transport *t) {
    cio_stream *s = conn_stream(t);
    s->t = NULL;
    s->released = 1;
    cio__waitq_wake_all(&s->closers, NULL);
}

/* The handler returned: the connection closes and the task waits until
 * the transport is done with the record in its frame (see above), and
 * until every other task that was inside a call on the stream (a reader or
 * a drainer the handler left behind, a wait_closed) has left it: they are
 * woken with -CIO_ECLOSED and still touch the stream on their way out. */
static void end_connection(cio_stream *s, cio_transport *t) {
    /* Data that arrives from now on is dropped; no callback reaches s. */
    cio_transport_set_context(t, NULL);
    if (s->t) cio_transport_close(t);
    s->ended = 1;
    s->closed = 1;
    cio__waitq_wake_all(&s->readers, NULL);
    cio__waitq_wake_all(&s->drainers, NULL);
    bool aborted = false;
    while (!s->released || s->inside) {
        cio__waiter w;
        int rc = cio__waitq_wait_on(&s->closers, &w, CIO__WAIT_STREAM, s, NULL,
                                    "stream handler's connection end", INT64_MAX);
        if (rc < 0 && !aborted) {
            cio_transport_abort(t);
            aborted = true;
        }
    }
    stream_free_now(s);
}

static void *run_handler(void *arg) {
    conn_start *start = arg;
    cio_stream_handler_fn handler = start->srv->handler;
    void *handler_arg = start->srv->arg;
    cio_loop *loop = cio_running_loop();
    server_conn c;
    stream_init(&c.s, loop);
    c.s.from_server = 1;
    c.s.embedded = 1;
    start->ran = 1;
    start->rc = cio__transport_init_embedded(&c.t, loop, start->fd, &stream_protocol, &c.s,
                                             embedded_released);
    if (start->rc < 0) return NULL;
    cio__server_add_connection(start->server, &c.t);
    attach(&c.s, &c.t);
    c.t.on_release = on_release_embedded;
    cio__transport_start(&c.t);
    cio__task *self = cio__running_task;
    pthread_once(&handler_gone_once, register_handler_gone);
    c.gone.run = handler_gone_run;
    cio__list_init(&c.gone.link);
    cio__future_add_waiter(&self->fut, &c.gone);
    /* start is gone once this task suspends. */
    void *result = handler(&c.s, handler_arg);
    /* A handler that failed is reported as asyncio reports a failed
     * client_connected_cb (its task's done callback calls the exception
     * handler), and its task ends without the error: nobody awaits it, so
     * it would be reported again as never retrieved. */
    if (self->has_raised && self->raised != -ECANCELED) {
        cio__report(loop, "Unhandled exception in client_connected_cb", self->raised, NULL);
        self->has_raised = 0;
        result = NULL;
    }
    end_connection(&c.s, &c.t);
    /* Off only now: the close may also come while end_connection waits
     * for the transport's release. */
    cio__future_remove_waiter(&self->fut, &c.gone);
    return result;
}

/* The server's accept job hands over each accepted descriptor. */
static void adopt(cio_server *server, cio_loop *loop, int fd, void *ctx) {
    conn_start start = {.srv = ctx, .server = server, .fd = fd, .rc = -ENOMEM};
    cio_task_options opts = {.eager_start = 1};
    cio_task *task = NULL;
    int rc = cio_spawn_with(loop, run_handler, &start, &opts, &task);
    if (rc == 0 && !start.ran) {
        /* Not started at once (the accept job runs in the running loop, so
         * this cannot happen): cancelled before its first step, it never
         * reads start. */
        cio_task_cancel(task, NULL);
        rc = -EAGAIN;
    }
    if (task) cio_future_unref(task);
    if (rc < 0 || !start.ran) cio__sys_close(fd);
    else rc = start.rc; /* the task closed fd if that failed */
    if (rc < 0)
        cio__report(loop, "a connection was dropped: its handler could not start", rc, NULL);
}

/* The handler and its argument live as long as the server: they are kept
 * in a record freed with it (cio__server_set_cleanup). */
static int start(cio_loop *loop, cio_stream_handler_fn handler, void *arg, const char *host,
                 const char *port, const char *path, const cio_server_options *opts,
                 cio_server **out) {
    if (out) *out = NULL;
    if (!handler) return -EINVAL;
    stream_server *srv = cio__malloc(sizeof *srv);
    if (!srv) return -ENOMEM;
    srv->handler = handler;
    srv->arg = arg;
    int rc = path ? cio_create_unix_server(loop, &stream_protocol, srv, path, opts, out)
                  : cio_create_server(loop, &stream_protocol, srv, host, port, opts, out);
    if (rc < 0) {
        cio__free(srv);
        return rc;
    }
    cio__server_set_cleanup(*out, cio__free, srv);
    cio__server_set_adopt(*out, adopt);
    return 0;
}

int cio_start_server(cio_loop *loop, cio_stream_handler_fn handler, void *arg, const char *host,
                     const char *port, const cio_server_options *opts, cio_server **out) {
    return start(loop, handler, arg, host, port, NULL, opts, out);
}

int cio_start_unix_server(cio_loop *loop, cio_stream_handler_fn handler, void *arg,
                          const char *path, const cio_server_options *opts, cio_server **out) {
    if (!path) {
        if (out) *out = NULL;
        return -EINVAL;
    }
    return start(loop, handler, arg, NULL, NULL, path, opts, out);
}

/* ---- opening connections ------------------------------------------------ */

static void release_stream(void *arg) {
    stream_free_now(arg);
}

static int open_stream(const char *host, const char *port, const char *path, double when,
                       cio_stream **out) {
    if (out) *out = NULL;
    if (!out) return -EINVAL;
    cio_loop *loop = cio_running_loop();
    if (!loop) return (path ? !*path : !host || !port) ? -EINVAL : -EPERM;
    cio_stream *s = stream_new(loop);
    if (!s) return -ENOMEM;
    /* Loop close frees the stream if it ends the task inside the connect. */
    cio__holding stream_held;
    cio__loop_hold(loop, &stream_held, release_stream, s);
    cio_transport *t;
    int rc = path ? cio_create_unix_connection(loop, &stream_protocol, s, path, &t)
                  : cio_create_connection_until(loop, &stream_protocol, s, host, port, when, &t);
    cio__loop_unhold(&stream_held);
    if (rc < 0) {
        stream_free_now(s);
        return rc;
    }
    attach(s, t);
    *out = s;
    return 0;
}

int cio_open_connection_until(const char *host, const char *port, double when,
                              cio_stream **out) {
    return open_stream(host, port, NULL, when, out);
}

int cio_open_connection(const char *host, const char *port, cio_stream **out) {
    return open_stream(host, port, NULL, CIO_NO_TIMEOUT, out);
}

int cio_open_unix_connection(const char *path, cio_stream **out) {
    return open_stream(NULL, NULL, path ? path : "", CIO_NO_TIMEOUT, out);
}

/* ---- pipes -------------------------------------------------------------- */

int cio__stream_open_pipe(cio_loop *loop, int fd, int writing, cio_stream **out) {
    if (out) *out = NULL;
    if (!out) return -EINVAL;
    int rc = cio__pipe_adopt(loop, fd);
    if (rc < 0) return rc;
    cio_stream *s = stream_new(loop);
    if (!s) return -ENOMEM;
    cio_transport *t;
    if ((rc = cio__transport_new_pipe(loop, fd, writing, &stream_protocol, s, &t)) < 0) {
        stream_free_now(s);
        return rc;
    }
    attach(s, t);
    cio__transport_start(t);
    *out = s;
    return 0;
}

int cio_open_read_pipe(cio_loop *loop, int fd, cio_stream **out) {
    return cio__stream_open_pipe(loop, fd, 0, out);
}

int cio_open_write_pipe(cio_loop *loop, int fd, cio_stream **out) {
    return cio__stream_open_pipe(loop, fd, 1, out);
}

/* ---- reading ------------------------------------------------------------ */

/* What a read that needs more data gets when none can come. */
static int no_more(const cio_stream *s) {
    if (s->closed) return -CIO_ECLOSED;
    if (s->error < 0) return s->error;
    return 0;
}

/* Waits for more data, the end of stream, or the stream's closing. */
static int wait_more(cio_stream *s) {
    resume_reading(s);
    cio__waiter w;
    return cio__waitq_wait_on(&s->readers, &w, CIO__WAIT_STREAM, s, NULL, "stream read", INT64_MAX);
}

/* Opens a reading call: checks, and claims the stream for this task. */
static int begin_read(cio_stream *s) {
    if (!s) return -EINVAL;
    int rc = cio__waitq_check(&s->readers);
    if (rc < 0) return rc;
    if (s->kind == CIO__T_WRITE_PIPE) return -ENOTSUP;
    if (s->reading) return -EBUSY;
    s->reading = 1;
    s->inside++;
    return 0;
}

/* A task leaves a read, drain or wait_closed; the last one out of a
 * stream whose handler returned lets the handler's frame go. */
static int leave_call(cio_stream *s, int rc) {
    if (--s->inside == 0 && s->ended) cio__waitq_wake_all(&s->closers, NULL);
    return rc;
}

static ssize_t end_read(cio_stream *s, ssize_t rc) {
    s->reading = 0;
    leave_call(s, 0);
    return rc;
}

/*
 * Waits for data with buf lent to on_data. Returns how many bytes landed
 * in buf (> 0), 0 if none did (look at the stream again), or the wait's
 * error. Bytes that landed are never lost: if the task was cancelled after
 * they came, they are returned and the cancellation is kept for the next
 * suspension, as the I/O calls do (src/flow/await_op.c).
 */
static ssize_t wait_direct(cio_stream *s, void *buf, size_t n) {
    s->direct = buf;
    s->direct_cap = n;
    s->direct_len = 0;
    int rc = wait_more(s);
    size_t got = s->direct_len;
    s->direct = NULL;
    s->direct_len = 0;
    if (got > 0) {
        cio__task *t = cio__current(&(int){0});
        if (rc == -ECANCELED && t) cio__task_defer_cancel(t);
        return (ssize_t)got;
    }
    return rc;
}

ssize_t cio_stream_read(cio_stream *s, void *buf, size_t n) {
    if (s && !buf && n) return -EINVAL;
    int rc = begin_read(s);
    if (rc < 0) return rc;
    if (n == 0) return end_read(s, 0);
    for (;;) {
        if (avail(s) > 0) {
            size_t k = avail(s) < n ? avail(s) : n;
            memcpy(buf, s->buf + s->off, k);
            consume(s, k);
            return end_read(s, (ssize_t)k);
        }
        if (s->closed || s->eof) return end_read(s, no_more(s));
        ssize_t got = wait_direct(s, buf, n);
        if (got != 0) return end_read(s, got);
    }
}

ssize_t cio_stream_readexactly(cio_stream *s, void *buf, size_t n) {
    if (s && !buf && n) return -EINVAL;
    int rc = begin_read(s);
    if (rc < 0) return rc;
    for (;;) {
        if (avail(s) >= n) {
            if (n) memcpy(buf, s->buf + s->off, n);
            if (n) consume(s, n);
            return end_read(s, (ssize_t)n);
        }
        if (s->closed || s->eof) {
            rc = no_more(s);
            return end_read(s, rc < 0 ? rc : -CIO_EINCOMPLETE);
        }
        if ((rc = wait_more(s)) < 0) return end_read(s, rc);
    }
}

/* Where sep starts in the unread data at or after from, or -1. */
static ssize_t find(const cio_stream *s, const void *sep, size_t seplen, size_t from) {
    if (avail(s) < seplen) return -1;
    const char *base = s->buf + s->off;
    for (size_t i = from; i + seplen <= avail(s); i++)
        if (base[i] == *(const char *)sep && memcmp(base + i, sep, seplen) == 0) return (ssize_t)i;
    return -1;
}

/*
 * readuntil's search, shared with readline. Returns the length up to and
 * including a separator once one is found, and leaves the data in the
 * buffer; or an outcome < 0. With several separators (asyncio 3.13's tuple)
 * the one that ends first in the stream wins, the shorter one on a tie
 * (what it returns is the same). As asyncio, the limit bounds the data
 * before the separator, not counting it: a separator that starts beyond
 * the limit, or a buffer past limit + longest - 1 bytes without one, is a
 * limit overrun.
 */
typedef struct separators {
    const void *const *sep;
    const size_t *len;
    size_t n;
    size_t longest;
} separators;

static separators single(const void *const *sep, const size_t *len) {
    return (separators){.sep = sep, .len = len, .n = 1, .longest = *len};
}

static ssize_t search(cio_stream *s, const separators *seps) {
    size_t from = 0;
    for (;;) {
        size_t best_end = SIZE_MAX, best_start = 0;
        for (size_t i = 0; i < seps->n; i++) {
            ssize_t at = find(s, seps->sep[i], seps->len[i], from);
            if (at < 0) continue;
            size_t end = (size_t)at + seps->len[i];
            if (end < best_end || (end == best_end && (size_t)at > best_start)) {
                best_end = end;
                best_start = (size_t)at;
            }
        }
        if (best_end != SIZE_MAX)
            return best_start > s->limit ? -CIO_ELIMITOVERRUN : (ssize_t)best_end;
        /* avail + 1 > limit + longest, in a form that cannot overflow for a
         * limit near SIZE_MAX. */
        if (avail(s) >= seps->longest && avail(s) - seps->longest >= s->limit)
            return -CIO_ELIMITOVERRUN;
        if (s->closed || s->eof) {
            int rc = no_more(s);
            return rc < 0 ? rc : -CIO_EINCOMPLETE;
        }
        /* A separator may straddle what is here and what comes next. */
        from = avail(s) >= seps->longest ? avail(s) - seps->longest + 1 : 0;
        int rc = wait_more(s);
        if (rc < 0) return rc;
    }
}

static ssize_t search_one(cio_stream *s, const void *sep, size_t seplen) {
    separators one = single(&sep, &seplen);
    return search(s, &one);
}

/* Takes what the search found into buf. */
static ssize_t read_found(cio_stream *s, const separators *seps, void *buf, size_t cap) {
    int rc = begin_read(s);
    if (rc < 0) return rc;
    ssize_t len = search(s, seps);
    if (len < 0) return end_read(s, len);
    if ((size_t)len > cap) return end_read(s, -ENOBUFS);
    memcpy(buf, s->buf + s->off, (size_t)len);
    consume(s, (size_t)len);
    return end_read(s, len);
}

ssize_t cio_stream_readuntil(cio_stream *s, const void *sep, size_t seplen, void *buf,
                             size_t cap) {
    if (s && (!sep || seplen == 0 || (!buf && cap))) return -EINVAL;
    separators one = single(&sep, &seplen);
    return read_found(s, &one, buf, cap);
}

ssize_t cio_stream_readuntil_any(cio_stream *s, const void *const *seps, const size_t *seplens,
                                 size_t nseps, void *buf, size_t cap) {
    if (s && (!seps || !seplens || nseps == 0 || (!buf && cap))) return -EINVAL;
    separators all = {.sep = seps, .len = seplens, .n = nseps, .longest = 0};
    for (size_t i = 0; s && i < nseps; i++) {
        if (!seps[i] || seplens[i] == 0) return -EINVAL;
        if (seplens[i] > all.longest) all.longest = seplens[i];
    }
    return read_found(s, &all, buf, cap);
}

ssize_t cio_stream_readline(cio_stream *s, void *buf, size_t cap) {
    if (s && !buf && cap) return -EINVAL;
    int rc = begin_read(s);
    if (rc < 0) return rc;
    ssize_t len = search_one(s, "\n", 1);
    if (len == -CIO_EINCOMPLETE) {
        /* The last line has no newline: it is returned as it is. */
        len = (ssize_t)avail(s);
    } else if (len == -CIO_ELIMITOVERRUN) {
        /* As asyncio: the overlong line is discarded, through its newline
         * if it is here, else everything buffered. */
        ssize_t at = find(s, "\n", 1, 0);
        consume(s, at >= 0 ? (size_t)at + 1 : avail(s));
        return end_read(s, len);
    }
    if (len < 0) return end_read(s, len);
    if ((size_t)len > cap) return end_read(s, -ENOBUFS);
    if (len) {
        memcpy(buf, s->buf + s->off, (size_t)len);
        consume(s, (size_t)len);
    }
    return end_read(s, len);
}

/* Waits, consuming nothing, until the end of stream (or the stream's
 * closing or failure): 0, or the wait's error. Everything is wanted, so
 * the limit does not pause reading meanwhile. */
static int wait_eof(cio_stream *s) {
    while (!s->eof && !s->closed) {
        resume_reading(s);
        cio__waiter w;
        int rc = cio__waitq_wait_on(&s->readers, &w, CIO__WAIT_STREAM, s, NULL,
                                    "stream read", INT64_MAX);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Takes everything buffered: its length (then *data is a malloc'd copy;
 * NULL for 0). */
static ssize_t take_buffered(cio_stream *s, void **data) {
    size_t n = avail(s);
    if (n == 0) return 0;
    void *out = malloc(n);
    if (!out) return -ENOMEM;
    memcpy(out, s->buf + s->off, n);
    consume(s, n);
    *data = out;
    return (ssize_t)n;
}

/* Takes everything buffered at the end of stream, or the stream's error. */
static ssize_t take_all(cio_stream *s, void **data) {
    int rc = no_more(s);
    return rc < 0 ? rc : take_buffered(s, data);
}

ssize_t cio_stream_read_to_eof(cio_stream *s, void **data) {
    if (data) *data = NULL;
    if (s && !data) return -EINVAL;
    int rc = begin_read(s);
    if (rc < 0) return rc;
    if ((rc = wait_eof(s)) < 0) return end_read(s, rc);
    return end_read(s, take_all(s, data));
}

int cio__stream_wait_eof(cio_stream *s) {
    int rc = begin_read(s);
    if (rc < 0) return rc;
    return (int)end_read(s, wait_eof(s));
}

ssize_t cio__stream_take_all(cio_stream *s, void **data) {
    *data = NULL;
    int rc = begin_read(s);
    if (rc < 0) return rc;
    /* What came before a close is kept: asyncio's pipe reader sees the
     * close of its transport as the end of stream. */
    return end_read(s, s->closed ? take_buffered(s, data) : take_all(s, data));
}

int cio_stream_at_eof(cio_stream *s) {
    if (!s) return -EINVAL;
    return s->eof_received && avail(s) == 0;
}

/* Debug mode's wrong-thread check, while the stream has its transport (so
 * its loop is alive: the loop's close takes the transport away). */
static int check_thread(const cio_stream *s) {
    return s->t ? cio__loop_check_thread(s->loop) : 0;
}

int cio_stream_set_limit(cio_stream *s, size_t limit) {
    if (!s || limit == 0) return -EINVAL;
    int rc = check_thread(s);
    if (rc < 0) return rc;
    s->limit = limit;
    maybe_resume(s);
    return 0;
}

/* ---- writing ------------------------------------------------------------ */

static int write_check(cio_stream *s) {
    if (!s) return -EINVAL;
    if (s->kind == CIO__T_READ_PIPE) return -ENOTSUP;
    if (s->closed) return -CIO_ECLOSED;
    if (!s->t) return s->error < 0 ? s->error : -ECONNRESET;
    return 0;
}

int cio_stream_write(cio_stream *s, const void *data, size_t len) {
    if (s && !data && len) return -EINVAL;
    int rc = write_check(s);
    if (rc < 0) return rc;
    return cio_transport_write(s->t, data, len);
}

int cio_stream_drain(cio_stream *s) {
    if (!s) return -EINVAL;
    int rc = cio__waitq_check(&s->drainers);
    if (rc < 0) return rc;
    s->inside++;
    /* As asyncio's drain: on a closing transport (closed by the program,
     * or failed under a write) one yield first lets a connection_lost
     * already scheduled run, so that the drain reports the loss. */
    if (s->t && !s->ended && (s->closed || s->t->state != CIO__T_OPEN) &&
        (rc = cio__task_yield(cio__running_task)) < 0)
        return leave_call(s, rc);
    while (s->write_paused && s->t && !s->ended) {
        cio__waiter w;
        if ((rc = cio__waitq_wait_on(&s->drainers, &w, CIO__WAIT_STREAM, s, NULL,
                                     "stream drain", INT64_MAX)) < 0) return leave_call(s, rc);
    }
    /* The handler that owned the stream returned meanwhile. */
    if (s->ended) return leave_call(s, -CIO_ECLOSED);
    /* As asyncio: a connection lost (even cleanly) is an error to a writer
     * that waits for its data to go out. */
    if (!s->t) return leave_call(s, s->error < 0 ? s->error : -ECONNRESET);
    return leave_call(s, 0);
}

int cio_stream_write_eof(cio_stream *s) {
    /* Once the end is written, writing it again does nothing, as asyncio's
     * (also when that end finished a write pipe and its transport). */
    if (s && s->eof_sent && !s->closed) return 0;
    int rc = write_check(s);
    if (rc < 0) return rc;
    rc = cio_transport_write_eof(s->t);
    if (rc == 0) s->eof_sent = 1;
    return rc;
}

int cio_stream_can_write_eof(cio_stream *s) {
    if (!s) return -EINVAL;
    return s->kind != CIO__T_READ_PIPE;
}

int cio_stream_close(cio_stream *s) {
    if (!s) return -EINVAL;
    int rc = check_thread(s);
    if (rc < 0) return rc;
    if (s->closed) return 0;
    s->closed = 1;
    if (s->t) cio_transport_close(s->t);
    /* A task blocked reading learns at once that no more will come. */
    cio__waitq_wake_all(&s->readers, NULL);
    return 0;
}

int cio_stream_is_closing(cio_stream *s) {
    if (!s) return -EINVAL;
    return s->closed || !s->t || cio_transport_is_closing(s->t) == 1;
}

int cio_stream_wait_closed(cio_stream *s) {
    if (!s) return -EINVAL;
    int rc = cio__waitq_check(&s->closers);
    if (rc < 0) return rc;
    s->inside++;
    while (s->t) {
        cio__waiter w;
        if ((rc = cio__waitq_wait_on(&s->closers, &w, CIO__WAIT_STREAM, s, NULL,
                                     "stream closed", INT64_MAX)) < 0) return leave_call(s, rc);
    }
    return leave_call(s, s->error < 0 ? s->error : 0);
}

int cio_stream_sockname(cio_stream *s, struct sockaddr *addr, unsigned int *len) {
    if (!s || !addr || !len) return -EINVAL;
    return s->t ? cio_transport_sockname(s->t, addr, len) : -ENOTCONN;
}

int cio_stream_peername(cio_stream *s, struct sockaddr *addr, unsigned int *len) {
    if (!s || !addr || !len) return -EINVAL;
    return s->t ? cio_transport_peername(s->t, addr, len) : -ENOTCONN;
}

cio_transport *cio_stream_transport(cio_stream *s) {
    return s ? s->t : NULL;
}

bool cio__stream_in_use(const cio_stream *s) {
    return !cio__waitq_empty(&s->readers) || !cio__waitq_empty(&s->drainers) ||
           !cio__waitq_empty(&s->closers);
}

int cio_stream_free(cio_stream *s) {
    if (!s) return 0;
    if (s->from_server || s->owned) return -CIO_EINVALSTATE;
    if (cio__stream_in_use(s)) return -EBUSY;
    if (s->t) {
        cio_transport_set_context(s->t, NULL);
        s->t->on_release = NULL;
        cio_transport_abort(s->t);
    }
    stream_free_now(s);
    return 0;
}

void cio__stream_set_owned(cio_stream *s) {
    s->owned = 1;
}

int cio__stream_release(cio_stream *s) {
    s->owned = 0;
    int rc = cio_stream_free(s);
    if (rc < 0) s->owned = 1;
    return rc;
}
