/*
 * Servers: asyncio's loop.create_server / create_unix_server and the
 * Server object.
 *
 * A server has one listening socket per address (for a NULL host: IPv4 and
 * IPv6), each owned by the loop like a transport's socket (CIO__OP_OWN:
 * one edge-triggered registration). An edge queues the listener's accept
 * job, which accepts until the backlog is empty (or a round's worth, then
 * it queues itself again) and makes a transport for each connection.
 *
 * Running out of descriptors (EMFILE, ENFILE) or memory at accept must
 * neither spin nor stop the server for good: as asyncio does, the error is
 * reported through the exception handler and accepting pauses for a second
 * (ACCEPT_RETRY_DELAY), then resumes by itself. The pending connections
 * stay in the kernel's backlog meanwhile.
 *
 * Multishot accept. When the backend can accept for an owned listening
 * socket (io_uring, CIO__CAP_ACCEPT_MULTI), the listener submits a
 * multishot CIO__OP_ACCEPT instead of the edge watch, once serving starts
 * (a server not yet serving leaves its connections in the backlog, as on
 * epoll). The backend reports every accepted descriptor at once; on_accepted
 * only queues it (the listener's `pending` ring) and the accept job makes the
 * transports, so no callback runs inside the backend. A descriptor is never
 * lost: it is queued and made a transport, or closed (the server closed, or
 * the queue could not grow), never leaked. An error that stops the kernel's
 * accepting (EMFILE...) is reported by the accept job and pauses as above;
 * the retry submits the accept again.
 *
 * Closing stops accepting and closes the listening sockets; connections
 * already made go on (asyncio 3.13) and are counted: wait_closed returns
 * once the server is closed and the last of them is gone.
 */
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>

#include "net.h"

enum { ACCEPTS_PER_RUN = 64 };
#define ACCEPT_RETRY_DELAY 1.0

typedef struct listener {
    cio__op watch;
    cio__job accept_job;
    struct cio_server *server;
    int fd;
    uint8_t readable;
    uint8_t in_flight;     /* the watch has not had its final completion */
    uint8_t multi;         /* the watch is a multishot accept (see above) */
    uint8_t listening;     /* listen() was called (with serving, as asyncio) */
    int backlog;
    int error;             /* what stopped the multishot accept, for the accept job */
    int *pending;          /* accepted descriptors not yet made transports (a ring) */
    size_t head, count, cap;
} listener;

struct cio_server {
    cio_loop *loop;
    uint64_t loop_key;           /* the loop, for calls that may come after it was freed */
    const cio_protocol *proto;
    void *ctx;
    listener *listeners;
    size_t nlisteners;
    cio__link connections;
    size_t active;
    cio_handle retry;
    cio__waitq closed_waiters;   /* wait_closed */
    cio__waitq forever_waiters;  /* serve_forever */
    char *unix_path;             /* unlinked at close, if still this server's socket */
    dev_t unix_dev;              /* ... which the file at unix_path is while it */
    ino_t unix_ino;              /* has this device and inode */
    uint8_t serving;
    uint8_t paused;              /* accept failed: waiting for the retry */
    uint8_t closed;
    uint8_t serving_forever;
    uint8_t loop_gone;           /* the loop closed: never touch it again */
    uint8_t free_pending;        /* freed once the last watch completes */
    uint8_t accepting;           /* in the accept job: freeing waits for its end */
    void (*cleanup)(void *);
    void *cleanup_arg;
    cio__server_adopt_fn adopt;  /* a stream server's: takes each accepted descriptor */
};

void cio__server_set_cleanup(cio_server *s, void (*fn)(void *), void *arg) {
    s->cleanup = fn;
    s->cleanup_arg = arg;
}

void cio__server_set_adopt(cio_server *s, cio__server_adopt_fn fn) {
    s->adopt = fn;
}

static void connection_gone(cio_transport *t);
static void maybe_free(cio_server *s);
static void submit_watch(listener *l);
static void on_listener_edge(cio__op *op);

static void schedule_accept(listener *l) {
    cio_server *s = l->server;
    if (s->serving && !s->paused && l->readable && !cio__link_linked(&l->accept_job.link))
        cio__ready_push(s->loop, &l->accept_job);
}

static void retry_accept(cio_loop *loop, void *arg) {
    (void)loop;
    cio_server *s = arg;
    s->paused = 0;
    for (size_t i = 0; i < s->nlisteners; i++) {
        listener *l = &s->listeners[i];
        l->readable = 1;
        /* A multishot accept that an error stopped is submitted again. */
        if (l->multi && !l->in_flight && l->fd >= 0) submit_watch(l);
        schedule_accept(l);
    }
}

static bool out_of_resources(int err) {
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* Closes the accepted descriptors still queued (the server closes, or the
 * loop does): those connections end, none stays open unseen. */
static void close_pending(listener *l) {
    while (l->count) {
        cio__sys_close(l->pending[l->head]);
        l->head = (l->head + 1) % l->cap;
        l->count--;
    }
}

/* Gives an accepted descriptor its connection: a stream server's handler
 * task (stream.c), or a transport whose connection_made runs now. */
static void hand_over(cio_server *s, int fd) {
    if (s->adopt) {
        s->adopt(s, s->loop, fd, s->ctx);
        return;
    }
    cio_transport *t;
    int rc = cio__transport_new(s->loop, fd, s->proto, s->ctx, &t);
    if (rc < 0) {
        cio__report(s->loop, "a connection was dropped: its transport could not be made", rc, NULL);
        return;
    }
    cio__server_add_connection(s, t);
    cio__transport_start(t);
}

static void accept_job(cio__job *job) {
    listener *l = CIO__CONTAINER_OF(job, listener, accept_job);
    cio_server *s = l->server;
    for (int i = 0; i < ACCEPTS_PER_RUN; i++) {
        if (!s->serving || s->paused || l->fd < 0) return;
        int fd;
        if (l->multi) {
            if (!l->count) {
                if (l->error) {
                    int err = l->error;
                    l->error = 0;
                    if (err == EINVAL || err == EOPNOTSUPP) {
                        /* The kernel has no multishot accept after all: accept on
                         * readiness from now on. */
                        l->multi = 0;
                        l->readable = 1;
                        submit_watch(l);
                        continue;
                    }
                    errno = err;
                    fd = -1;
                } else {
                    l->readable = 0;
                    return;
                }
            } else {
                fd = l->pending[l->head];
                l->head = (l->head + 1) % l->cap;
                l->count--;
            }
        } else {
            fd = cio__sys_accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        }
        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED) continue;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                l->readable = 0;
                return;
            }
            /* Out of descriptors or memory, or a stranger error: report
             * it, pause, and try again after the delay. */
            cio__report(s->loop, out_of_resources(err)
                                     ? "accept failed: out of resources; retrying in 1 second"
                                     : "accept failed; retrying in 1 second",
                        -err, NULL);
            s->paused = 1;
            if (cio_call_later(s->loop, ACCEPT_RETRY_DELAY, retry_accept, s, &s->retry) < 0) {
                s->paused = 0; /* no timer: the next edge retries */
                if (l->multi) submit_watch(l);
            }
            return;
        }
        /* The connection goes to the program at once (a stream handler's
         * task, or connection_made), which may close or free the server:
         * freeing waits for the end of this job. */
        s->accepting = 1;
        hand_over(s, fd);
        s->accepting = 0;
        if (s->free_pending) {
            maybe_free(s);
            return;
        }
    }
    schedule_accept(l);
}

void cio__server_add_connection(cio_server *s, cio_transport *t) {
    t->server = s;
    t->on_gone = connection_gone;
    cio__list_push_back(&s->connections, &t->server_link);
    s->active++;
}

/* Queues an accepted descriptor, growing the ring; false if memory ran out. */
static bool push_pending(listener *l, int fd) {
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        int *n = cio__malloc(ncap * sizeof *n);
        if (!n) return false;
        for (size_t i = 0; i < l->count; i++) n[i] = l->pending[(l->head + i) % l->cap];
        cio__free(l->pending);
        l->pending = n;
        l->head = 0;
        l->cap = ncap;
    }
    l->pending[(l->head + l->count) % l->cap] = fd;
    l->count++;
    return true;
}

/*
 * A Unix server's socket file goes at close, as asyncio's (3.13,
 * cleanup_socket), and only if the file at the path is still the socket
 * this server bound: another server may have taken the path since (its
 * bind replaced a stale-looking file), or the program put a file of its
 * own there, and neither may be deleted.
 */
static void remove_socket_file(cio_server *s) {
    if (!s->unix_path) return;
    struct stat st;
    if (stat(s->unix_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == s->unix_dev &&
        st.st_ino == s->unix_ino)
        unlink(s->unix_path);
    cio__free(s->unix_path);
    s->unix_path = NULL;
}

/* The final completion of a listener's watch (the multishot accept or the
 * edge watch): the server closed it (-EBADF), or the loop closes (drain:
 * -ECANCELED, the descriptor still open, so it is closed here and the
 * server counts as closed with its loop gone). */
static void watch_ended(listener *l, ssize_t result) {
    cio_server *s = l->server;
    if (cio__link_linked(&l->accept_job.link)) cio__list_unlink(&l->accept_job.link);
    if (result == -ECANCELED) {
        cio__sys_close(l->fd);
        s->loop_gone = 1;
        s->closed = 1;
        s->serving = 0;
        /* The server is closed by its loop's close: its file goes now, as
         * it would at the program's close (which now has nothing to do). */
        remove_socket_file(s);
    }
    l->fd = -1;
    l->in_flight = 0;
    maybe_free(s);
}

/* The multishot accept reported a connection (the operation still in
 * flight), or ended. */
static void on_accepted(cio__op *op) {
    listener *l = op->owner;
    cio_server *s = l->server;
    if (op->state == CIO__OP_IN_FLIGHT) {
        int fd = (int)op->result;
        /* A closed server takes no more connections, and one that cannot be
         * queued is dropped: closed either way, never leaked. */
        if (s->closed || !push_pending(l, fd)) {
            cio__sys_close(fd);
            return;
        }
        l->readable = 1;
        schedule_accept(l);
        return;
    }
    l->in_flight = 0;
    if (op->result == -ECANCELED || op->result == -EBADF) {
        close_pending(l);
        watch_ended(l, op->result);
        return;
    }
    /* An error stopped accepting: the accept job reports it (and pauses)
     * after the connections already queued. */
    l->error = (int)-op->result;
    l->readable = 1;
    schedule_accept(l);
}

/* Starts the listener's watch: the multishot accept, or the edge watch.
 * On failure the listener is left without one (and says so once). */
static void submit_watch(listener *l) {
    cio_server *s = l->server;
    if (l->in_flight || l->fd < 0) return;
    if (l->multi) {
        cio__op_init(&l->watch, CIO__OP_ACCEPT, l->fd);
        l->watch.flags = CIO__OP_MULTISHOT | CIO__OP_OWN;
        l->watch.done = on_accepted;
    } else {
        cio__op_init(&l->watch, CIO__OP_POLL, l->fd);
        l->watch.u.poll.events = CIO__POLL_IN;
        l->watch.flags = CIO__OP_MULTISHOT | CIO__OP_OWN;
        l->watch.done = on_listener_edge;
    }
    l->watch.owner = l;
    cio__io_submit(&s->loop->io, &l->watch);
    if (l->watch.state == CIO__OP_DONE) {
        if (l->multi) {
            /* Declined: accept on readiness instead. */
            l->multi = 0;
            submit_watch(l);
            return;
        }
        cio__report(s->loop, "a listening socket could not be watched", (int)l->watch.result, NULL);
        return;
    }
    l->in_flight = 1;
}

static void on_listener_edge(cio__op *op) {
    listener *l = op->owner;
    if (op->state == CIO__OP_IN_FLIGHT) {
        if (op->result & CIO__POLL_IN) {
            l->readable = 1;
            schedule_accept(l);
        }
        return;
    }
    /* Final completion: the server closed it, or the loop closes. */
    watch_ended(l, op->result);
}

static void connection_gone(cio_transport *t) {
    cio_server *s = t->server;
    cio__list_unlink(&t->server_link);
    s->active--;
    if (s->closed && s->active == 0 && !s->loop_gone) cio__waitq_wake_all(&s->closed_waiters, NULL);
    maybe_free(s);
}

/* ---- making a server ---------------------------------------------------- */

static int listen_on(cio_server *s, const struct sockaddr *addr, socklen_t len, int backlog,
                     int reuse_port) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    if (addr->sa_family != AF_UNIX) {
        /* As asyncio on Unix: SO_REUSEADDR always; an IPv6 socket only
         * for IPv6, so that the IPv4 one of the same port can bind. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (addr->sa_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (bind(fd, addr, len) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    listener *l = &s->listeners[s->nlisteners++];
    memset(l, 0, sizeof *l);
    l->server = s;
    l->fd = fd;
    l->backlog = backlog;
    l->readable = 1;
    l->accept_job.run = accept_job;
    cio__list_init(&l->accept_job.link);
    /* The multishot accept starts with serving (submit_watch). */
    if (s->loop->io.caps & CIO__CAP_ACCEPT_MULTI) {
        l->multi = 1;
        l->readable = 0;
    }
    return 0;
}

/*
 * As asyncio, a socket listens only once its server starts serving: a
 * server made with no_start_serving is bound (its port is taken and
 * cio_server_sockets shows it) but refuses connections until
 * cio_server_start_serving. Listening also arms the readiness watch of a
 * listener that does not accept through the ring. Returns 0 or -errno; a
 * listener that failed keeps its descriptor, closed with the server.
 */
static int begin_listening(cio_server *s) {
    for (size_t i = 0; i < s->nlisteners; i++) {
        listener *l = &s->listeners[i];
        if (l->listening || l->fd < 0) continue;
        if (listen(l->fd, l->backlog) != 0) return -errno;
        l->listening = 1;
        if (l->multi) continue;
        cio__op_init(&l->watch, CIO__OP_POLL, l->fd);
        l->watch.u.poll.events = CIO__POLL_IN;
        l->watch.flags = CIO__OP_MULTISHOT | CIO__OP_OWN;
        l->watch.owner = l;
        l->watch.done = on_listener_edge;
        cio__io_submit(&s->loop->io, &l->watch);
        if (l->watch.state == CIO__OP_DONE) return (int)l->watch.result;
        l->in_flight = 1;
    }
    return 0;
}

static int server_new(cio_loop *loop, const cio_protocol *proto, void *ctx, size_t max_listeners,
                      cio_server **out) {
    cio_server *s = cio__calloc(1, sizeof *s);
    listener *ls = cio__calloc(max_listeners, sizeof *ls);
    if (!s || !ls) {
        cio__free(s);
        cio__free(ls);
        return -ENOMEM;
    }
    s->loop = loop;
    s->loop_key = loop->key;
    s->proto = proto;
    s->ctx = ctx;
    s->listeners = ls;
    cio__list_init(&s->connections);
    cio__waitq_init(&s->closed_waiters);
    cio__waitq_init(&s->forever_waiters);
    *out = s;
    return 0;
}

static int check_make(cio_loop *loop, const cio_protocol *proto, const cio_server_options *opts,
                      cio_server **out) {
    /* Convention 3: an out parameter is cleared on failure. */
    if (out) *out = NULL;
    if (!loop || !proto || !proto->data_received || !out) return -EINVAL;
    if (opts && opts->backlog < 0) return -EINVAL;
    return cio__loop_check(loop);
}

static int start_serving(cio_server *s) {
    int rc = begin_listening(s);
    if (rc < 0) return rc;
    s->serving = 1;
    for (size_t i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].multi) submit_watch(&s->listeners[i]);
        schedule_accept(&s->listeners[i]);
    }
    return 0;
}

int cio_create_server(cio_loop *loop, const cio_protocol *proto, void *ctx, const char *host,
                      const char *port, const cio_server_options *opts, cio_server **out) {
    int rc = check_make(loop, proto, opts, out);
    if (rc < 0) return rc;
    if (!port) return -EINVAL;
    struct addrinfo *res;
    if ((rc = cio__resolve(host, port, 1, &res)) < 0) return rc;
    size_t n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) n++;
    cio_server *s;
    if ((rc = server_new(loop, proto, ctx, n, &s)) < 0) {
        freeaddrinfo(res);
        return rc;
    }
    int backlog = opts && opts->backlog ? opts->backlog : 100;
    for (struct addrinfo *ai = res; ai && rc == 0; ai = ai->ai_next)
        rc = listen_on(s, ai->ai_addr, ai->ai_addrlen, backlog, opts && opts->reuse_port);
    freeaddrinfo(res);
    if (rc < 0) {
        cio_server_free(s);
        return rc;
    }
    if ((!opts || !opts->no_start_serving) && (rc = start_serving(s)) < 0) {
        cio_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int cio_create_unix_server(cio_loop *loop, const cio_protocol *proto, void *ctx,
                           const char *path, const cio_server_options *opts, cio_server **out) {
    int rc = check_make(loop, proto, opts, out);
    if (rc < 0) return rc;
    struct sockaddr_un addr;
    unsigned int len;
    if ((rc = cio__unix_address(path, &addr, &len)) < 0) return rc;
    cio_server *s;
    if ((rc = server_new(loop, proto, ctx, 1, &s)) < 0) return rc;
    if (path[0] != '@') {
        cio__remove_stale_socket(path);
        s->unix_path = cio__malloc(strlen(path) + 1);
        if (s->unix_path) memcpy(s->unix_path, path, strlen(path) + 1);
        if (!s->unix_path) {
            cio_server_free(s);
            return -ENOMEM;
        }
    }
    int backlog = opts && opts->backlog ? opts->backlog : 100;
    rc = listen_on(s, (struct sockaddr *)&addr, len, backlog, 0);
    struct stat st;
    if (rc == 0 && s->unix_path) {
        /* What the bind made, to know it again at close. */
        if (stat(s->unix_path, &st) == 0) {
            s->unix_dev = st.st_dev;
            s->unix_ino = st.st_ino;
        } else {
            rc = -errno;
        }
    }
    if (rc < 0) {
        /* The file was not ours to remove (or is gone already). */
        cio__free(s->unix_path);
        s->unix_path = NULL;
        cio_server_free(s);
        return rc;
    }
    if ((!opts || !opts->no_start_serving) && (rc = start_serving(s)) < 0) {
        cio_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- the server's calls ------------------------------------------------- */

/* A server made with no_start_serving has nothing in its loop, so the
 * loop's close does not know it and the server may outlive the loop (even
 * its free): the loop is found by its key, never read through a pointer
 * that may dangle, and then checked as any call that adds work checks it
 * (closed or closing: -CIO_ELOOPCLOSED). */
static int start_serving_checked(cio_server *s) {
    if (s->closed) return -CIO_EINVALSTATE;
    if (s->serving) return 0;
    cio_loop *loop = cio__loop_by_key(s->loop_key);
    if (!loop) return -CIO_ELOOPCLOSED;
    int rc = cio__loop_check(loop);
    return rc < 0 ? rc : start_serving(s);
}

int cio_server_start_serving(cio_server *s) {
    if (!s) return -EINVAL;
    return start_serving_checked(s);
}

int cio_server_is_serving(cio_server *s) {
    if (!s) return -EINVAL;
    return s->serving && !s->closed;
}

int cio_server_close(cio_server *s) {
    if (!s) return -EINVAL;
    if (s->closed) return 0;
    /* Debug mode's wrong-thread check, while the server serves (its loop is
     * alive then: the loop's close ends the serving; a server that never
     * served may outlive its loop, and closing it touches no loop). */
    if (s->serving) {
        int rc = cio__loop_check_thread(s->loop);
        if (rc < 0) return rc;
    }
    s->closed = 1;
    s->serving = 0;
    cio_handle_cancel(&s->retry);
    for (size_t i = 0; i < s->nlisteners; i++) {
        listener *l = &s->listeners[i];
        if (!l->in_flight) {
            /* A listener that never served, or that an error stopped, has
             * nothing in the backend: closed here. */
            if (l->fd >= 0) {
                if (cio__link_linked(&l->accept_job.link)) cio__list_unlink(&l->accept_job.link);
                close_pending(l);
                cio__sys_close(l->fd);
                l->fd = -1;
            }
            continue;
        }
        cio__op close_op;
        cio__op_init(&close_op, CIO__OP_CLOSE, l->fd);
        close_op.u.close.keep_fd = 0;
        cio__io_submit(&s->loop->io, &close_op);
        /* Connections reported during the close were closed (s->closed);
         * those queued before are closed now. */
        close_pending(l);
    }
    remove_socket_file(s);
    /* serve_forever ends when the server closes (asyncio cancels it). */
    cio__waitq_wake_all(&s->forever_waiters, NULL);
    if (s->active == 0) cio__waitq_wake_all(&s->closed_waiters, NULL);
    return 0;
}

static int close_each(cio_server *s, int (*fn)(cio_transport *)) {
    if (!s) return -EINVAL;
    /* Debug mode's wrong-thread check, while the loop lives (a server
     * whose loop is gone has no connections left). */
    cio_loop *loop = cio__loop_by_key(s->loop_key);
    if (loop) {
        int rc = cio__loop_check_thread(loop);
        if (rc < 0) return rc;
    }
    /* The transports leave the list only from their lost job, later, so
     * walking it while closing them is safe. */
    for (cio__link *l = s->connections.next; l != &s->connections; l = l->next)
        fn(CIO__CONTAINER_OF(l, cio_transport, server_link));
    return 0;
}

int cio_server_close_clients(cio_server *s) {
    return close_each(s, cio_transport_close);
}

int cio_server_abort_clients(cio_server *s) {
    return close_each(s, cio_transport_abort);
}

int cio_server_wait_closed(cio_server *s) {
    if (!s) return -EINVAL;
    int rc = cio__waitq_check(&s->closed_waiters);
    if (rc < 0) return rc;
    if (s->closed && s->active == 0) return 0;
    cio__waiter w;
    return cio__waitq_wait_on(&s->closed_waiters, &w, CIO__WAIT_SERVER, s, NULL,
                              "server closed", INT64_MAX);
}

int cio_server_serve_forever(cio_server *s) {
    if (!s) return -EINVAL;
    int rc = cio__waitq_check(&s->forever_waiters);
    if (rc < 0) return rc;
    if (s->closed || s->serving_forever) return -CIO_EINVALSTATE;
    if ((rc = start_serving_checked(s)) < 0) return rc;
    s->serving_forever = 1;
    cio__waiter w;
    cio__waitq_wait_on(&s->forever_waiters, &w, CIO__WAIT_SERVER, s, NULL,
                       "serve_forever", INT64_MAX);
    s->serving_forever = 0;
    /* Cancelled, or the server was closed: either way it ends closed and,
     * as asyncio 3.12+ (close, then await wait_closed), only once its last
     * connection is gone; a second cancellation ends that wait. The call
     * reports the cancellation asyncio raises. */
    cio_server_close(s);
    (void)cio_server_wait_closed(s);
    return -ECANCELED;
}

int cio_server_sockets(cio_server *s, int *fds, size_t n) {
    if (!s || (n && !fds)) return -EINVAL;
    int count = 0;
    for (size_t i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].fd < 0) continue;
        if ((size_t)count < n) fds[count] = s->listeners[i].fd;
        count++;
    }
    return count;
}

static void maybe_free(cio_server *s) {
    if (!s->free_pending || s->accepting) return;
    for (size_t i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].in_flight) return;
    if (s->cleanup) s->cleanup(s->cleanup_arg);
    cio__free(s->unix_path); /* a server that never closed: its loop was never run */
    for (size_t i = 0; i < s->nlisteners; i++) {
        close_pending(&s->listeners[i]);
        cio__free(s->listeners[i].pending);
    }
    cio__free(s->listeners);
    cio__free(s);
}

int cio_server_free(cio_server *s) {
    if (!s) return 0;
    if (!cio__waitq_empty(&s->closed_waiters) || !cio__waitq_empty(&s->forever_waiters))
        return -EBUSY;
    if (!s->loop_gone) cio_server_close(s);
    /* Connections outlive the server (asyncio's do too): they forget it. */
    cio__link *l;
    while ((l = cio__list_pop_front(&s->connections)) != NULL) {
        cio_transport *t = CIO__CONTAINER_OF(l, cio_transport, server_link);
        t->server = NULL;
        t->on_gone = NULL;
    }
    s->active = 0;
    s->free_pending = 1;
    maybe_free(s);
    return 0;
}
