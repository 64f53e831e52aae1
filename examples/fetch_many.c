/*
 * Fetches from five servers at once, each request under its own timeout.
 *
 * The program first starts its own small HTTP/1.0 servers in the same loop
 * (stream servers on free ports of 127.0.0.1): three answer after 0.2, 0.3
 * and 0.4 s; one is slow and would answer after 3 s, longer than the 1 s
 * timeout; and at the fifth address nothing listens (a port bound but not
 * listening, so the connection is refused). Then a task per request, in a
 * task group, fetches from all five at once, each inside a timeout scope
 * of 1 s, and records its outcome: the body, "timed out", or "connection
 * refused". A request that fails does not fail the group (its task returns
 * the outcome instead of raising), so one bad server cancels nothing else.
 *
 * The total time is that of the slowest request (the 1 s timeout), not the
 * sum of them all (1.9 s at least): the requests ran concurrently. The
 * servers count the requests they hold at once, which shows the same. The
 * delays leave wide margins (0.6 s between the slowest answer and the
 * timeout, 0.2 s before the first answer) so that a loaded machine, whose
 * loop may wake late, still sees the same outcomes.
 *
 * The slow server's handler waits for its delay with a read on the
 * connection under a timeout scope, so it notices the client giving up
 * (end of stream when the client's timeout closes the connection) and
 * stops at once instead of answering into the void.
 *
 * The Python it mirrors:
 *
 *     async def fetch(port):
 *         try:
 *             async with asyncio.timeout(1):
 *                 reader, writer = await asyncio.open_connection('127.0.0.1', port)
 *                 writer.write(b'GET / HTTP/1.0\r\n\r\n')
 *                 answer = await reader.read()
 *                 return 'ok', answer.split(b'\r\n\r\n', 1)[1]
 *         except TimeoutError:
 *             return 'timed out', None
 *         except ConnectionRefusedError:
 *             return 'connection refused', None
 *         finally:
 *             if writer: writer.close()
 *
 *     async with asyncio.TaskGroup() as tg:
 *         tasks = [tg.create_task(fetch(port)) for port in ports]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cio.h>

#define SERVERS 5
#define TIMEOUT 1.0     /* per request */
#define SLOW_DELAY 3.0  /* the slow server's delay, longer than TIMEOUT */

enum kind { FAST, SLOW, REFUSING };

/* One target: the server (if any) and, once fetched, the outcome. */
typedef struct target {
    int id;
    enum kind kind;
    double delay;          /* how long the server takes to answer */
    cio_server *server;    /* NULL for the refusing one */
    int refusing_fd;       /* bound, never listening: connections are refused */
    char port[16];
    /* The fetch's outcome. */
    int rc;                /* 0, -ETIMEDOUT, -ECONNREFUSED, ... */
    double took;
    char body[64];
} target;

static target targets[SERVERS];
static double start;
static int in_flight, peak_in_flight; /* requests the servers hold at once */
static char slow_note[96];            /* what the slow server's handler saw */

static double now(void) {
    return cio_loop_time(cio_running_loop());
}

/* ----------------------------------------------------------------------
 * The servers
 * ---------------------------------------------------------------------- */

/*
 * The handler of every server (arg is its target): reads the request head,
 * waits the server's delay, answers with a body naming the server, and
 * returns, which closes the connection (HTTP/1.0). The delay is a read
 * under a timeout scope rather than a sleep: a well-behaved client sends
 * nothing more, so the read ends only at the delay's expiry or when the
 * client goes away, and in the second case there is no one left to answer.
 */
static void *handle(cio_stream *s, void *arg) {
    target *t = arg;
    char head[1024];
    ssize_t n = cio_stream_readuntil(s, "\r\n\r\n", 4, head, sizeof head);
    if (n < 0) return NULL; /* not a request: nothing to answer */
    double got_request = now();
    if (++in_flight > peak_in_flight) peak_in_flight = in_flight;

    cio_timeout delay;
    int rc = cio_timeout_enter(&delay, t->delay);
    char byte;
    if (rc == 0) rc = cio_timeout_exit(&delay, (int)cio_stream_read(s, &byte, 1));
    in_flight--;
    if (rc != -ETIMEDOUT) {
        /* The read ended before the delay: the client left (0, end of
         * stream) or broke the connection (an error). */
        if (t->kind == SLOW)
            snprintf(slow_note, sizeof slow_note,
                     "the client went away after %.3f s (%s); no answer sent",
                     now() - got_request, rc == 0 ? "end of stream" : cio_strerror(rc));
        return NULL;
    }
    char answer[256];
    int len = snprintf(answer, sizeof answer,
                       "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 19\r\n\r\nhello from server %d",
                       t->id);
    rc = cio_stream_write(s, answer, (size_t)len);
    if (rc == 0) rc = cio_stream_drain(s);
    return rc < 0 ? cio_raise(rc) : NULL;
}

/* Starts target t's server on a free port (or, for the refusing one, binds
 * a port without listening) and records the port. */
static int start_target(cio_loop *loop, target *t) {
    int fd = -1;
    int rc = 0;
    if (t->kind == REFUSING) {
        /* Bound, so no other socket gets the port while the program runs
         * (not even our own client's as its local port); not listening, so
         * a connection to it is refused. */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) rc = -errno;
        t->refusing_fd = fd;
    } else {
        rc = cio_start_server(loop, handle, t, "127.0.0.1", "0", NULL, &t->server);
        if (rc == 0 && cio_server_sockets(t->server, &fd, 1) != 1) rc = -EBADF;
    }
    if (rc < 0) return rc;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) return -errno;
    snprintf(t->port, sizeof t->port, "%d", ntohs(sa.sin_port));
    return 0;
}

/* ----------------------------------------------------------------------
 * The client
 * ---------------------------------------------------------------------- */

/* Connects, sends the request and reads the answer to its end; the body is
 * what follows the head. Any suspending call returns -ECANCELED when the
 * caller's timeout scope expires. */
static int get(target *t, cio_stream **cp) {
    int rc = cio_open_connection("127.0.0.1", t->port, cp);
    if (rc < 0) return rc;
    static const char request[] = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
    rc = cio_stream_write(*cp, request, sizeof request - 1);
    if (rc == 0) rc = cio_stream_drain(*cp);
    if (rc < 0) return rc;
    void *data;
    ssize_t n = cio_stream_read_to_eof(*cp, &data);
    if (n < 0) return (int)n;
    const char *body = n > 0 ? memmem(data, (size_t)n, "\r\n\r\n", 4) : NULL;
    if (body && strncmp(data, "HTTP/1.0 200 ", 13) == 0) {
        body += 4;
        size_t blen = (size_t)((const char *)data + n - body);
        if (blen >= sizeof t->body) blen = sizeof t->body - 1;
        memcpy(t->body, body, blen);
        t->body[blen] = '\0';
    } else {
        rc = -EPROTO;
    }
    free(data);
    return rc;
}

/* A task per request: the request under its own timeout scope. It returns
 * the outcome in its target rather than raising it, so that a failed
 * request does not cancel its siblings in the task group. */
static void *fetch(void *arg) {
    target *t = arg;
    double began = now();
    cio_stream *c = NULL;
    cio_timeout scope;
    int rc = cio_timeout_enter(&scope, TIMEOUT);
    if (rc == 0) rc = cio_timeout_exit(&scope, get(t, &c));
    /* Frees the stream, closing the connection at once if still open
     * (after a timeout: the slow server sees it go). */
    if (c) cio_stream_free(c);
    t->rc = rc;
    t->took = now() - began;
    return NULL;
}

static void *main_task(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    double sequential = 0;
    for (int i = 0; i < SERVERS; i++) {
        target *t = &targets[i];
        sequential += t->kind == FAST ? t->delay : t->kind == SLOW ? TIMEOUT : 0;
        int rc = start_target(loop, t);
        if (rc < 0) return cio_raise(rc);
        if (t->kind == FAST)
            printf("server %d on 127.0.0.1:%s: answers after %.1f s\n", t->id, t->port, t->delay);
        else if (t->kind == SLOW)
            printf("server %d on 127.0.0.1:%s: slow, would answer after %.1f s\n", t->id, t->port,
                   t->delay);
        else
            printf("server %d on 127.0.0.1:%s: nothing listens (connections are refused)\n",
                   t->id, t->port);
    }
    printf("fetching from all %d at once, %.1f s timeout per request\n", SERVERS, TIMEOUT);

    /* async with TaskGroup() as tg: for t in targets: tg.create_task(fetch(t)) */
    start = now();
    cio_task_group *g;
    int rc = cio_task_group_enter(&g);
    if (rc < 0) return cio_raise(rc);
    for (int i = 0; rc == 0 && i < SERVERS; i++)
        rc = cio_task_group_spawn(g, fetch, &targets[i], NULL);
    rc = cio_task_group_exit(g, rc);
    cio_task_group_free(g);
    double total = now() - start;
    if (rc < 0) return cio_raise(rc);

    int ok = 0;
    for (int i = 0; i < SERVERS; i++) {
        target *t = &targets[i];
        if (t->rc == 0) {
            ok++;
            printf("server %d: ok after %.3f s: \"%s\"\n", t->id, t->took, t->body);
        } else {
            printf("server %d: %s after %.3f s\n", t->id,
                   t->rc == -ETIMEDOUT      ? "timed out"
                   : t->rc == -ECONNREFUSED ? "connection refused"
                                            : cio_strerror(t->rc),
                   t->took);
        }
    }
    printf("all %d requests done in %.3f s (one after the other: at least %.1f s); "
           "the servers held %d at once\n",
           SERVERS, total, sequential, peak_in_flight);

    /* server.close(); await server.wait_closed() for each */
    for (int i = 0; i < SERVERS; i++)
        if (targets[i].server) cio_server_close(targets[i].server);
    for (int i = 0; i < SERVERS; i++)
        if (targets[i].server) cio_server_wait_closed(targets[i].server);
    printf("slow server: %s\n", slow_note[0] ? slow_note : "no note");
    printf("servers closed\n");

    /* The program's own check of what the expected output also says. */
    int good = ok == 3 && targets[3].rc == -ETIMEDOUT && targets[4].rc == -ECONNREFUSED &&
               peak_in_flight == 4 && slow_note[0] != '\0';
    return good ? NULL : cio_raise(-EPROTO);
}

int main(void) {
    for (int i = 0; i < SERVERS; i++) {
        targets[i].id = i + 1;
        targets[i].kind = i < 3 ? FAST : i == 3 ? SLOW : REFUSING;
        targets[i].delay = i < 3 ? 0.1 * (i + 2) : SLOW_DELAY;
        targets[i].refusing_fd = -1;
    }
    cio_loop *loop;
    if (cio_loop_new(&loop) < 0) return 1;
    cio_task *t = NULL;
    int rc = cio_spawn(loop, main_task, NULL, &t);
    if (rc == 0) rc = cio_run_until_complete(loop, t, NULL);
    if (t) cio_future_unref(t);
    for (int i = 0; i < SERVERS; i++) {
        if (targets[i].server) cio_server_free(targets[i].server);
        if (targets[i].refusing_fd >= 0) close(targets[i].refusing_fd);
    }
    cio_loop_free(loop);
    printf("fetch_many %s\n", rc == 0 ? "finished" : cio_strerror(rc));
    return rc == 0 ? 0 : 1;
}
