/*
 * A small HTTP/1.1 server on streams that answers "hello" to every GET,
 * with keep-alive, and a client that tries it, in one loop.
 *
 *   http_hello                 runs the server on a free port of 127.0.0.1
 *                              and the client against it, prints what the
 *                              client saw, then shuts the server down
 *   http_hello --serve PORT    only serves, on 127.0.0.1:PORT, until killed
 *                              (curl -v http://127.0.0.1:PORT/ to try it)
 *
 * The server: a handler task per connection reads a request head with
 * readuntil("\r\n\r\n") under the stream's limit (8 KiB here), parses the
 * request line and the headers, discards a body announced by
 * Content-Length, and answers. The connection stays open for the next
 * request (keep-alive) unless the client sends "Connection: close", or
 * speaks HTTP/1.0 without "Connection: keep-alive"; the answer's
 * Connection header says which. A malformed request gets 400 and the
 * connection is closed, since the server no longer knows where the next
 * request would begin; a head over the limit gets 431 and is closed too. A
 * keep-alive connection idle for 10 s is closed (a timeout scope around the
 * read). Methods other than GET get 405.
 *
 * The client (the default mode) makes five connections one after the
 * other: three GETs on one keep-alive connection, one GET with
 * "Connection: close" on each of two more, a malformed request, and an
 * HTTP/1.0 GET; it checks each answer and that the server closed exactly
 * the connections it should have.
 *
 * The Python it mirrors, on asyncio streams (the parsing left out):
 *
 *     async def handle(reader, writer):
 *         while True:
 *             try:
 *                 async with asyncio.timeout(10):
 *                     head = await reader.readuntil(b'\r\n\r\n')
 *             except (asyncio.IncompleteReadError, TimeoutError):
 *                 break
 *             except asyncio.LimitOverrunError:
 *                 writer.write(answer(431, close=True)); break
 *             request = parse(head)
 *             if request is None:
 *                 writer.write(answer(400, close=True)); break
 *             writer.write(answer(200, b'hello\n', close=request.close))
 *             await writer.drain()
 *             if request.close:
 *                 break
 *         writer.close()
 *
 *     server = await asyncio.start_server(handle, '127.0.0.1', 0, limit=8192)
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <cio.h>

#define HEAD_LIMIT 8192       /* the stream's limit: the longest request head */
#define BODY_LIMIT (1 << 20)  /* the longest request body the server discards */
#define IDLE_TIMEOUT 10.0     /* seconds a keep-alive connection may sit idle */

static char port[16];
static int verbose;           /* --serve: log each request */

/* ----------------------------------------------------------------------
 * The server
 * ---------------------------------------------------------------------- */

enum { S_200, S_400, S_405, S_431, S_COUNT };

/* What the server did, for the summary and the final check. */
static struct {
    int connections;
    int answered[S_COUNT]; /* by status */
} stats;

static const struct {
    int code;
    const char *reason;
    const char *body;
} statuses[S_COUNT] = {
    {200, "OK", "hello\n"},
    {400, "Bad Request", "bad request\n"},
    {405, "Method Not Allowed", "only GET here\n"},
    {431, "Request Header Fields Too Large", "request head too large\n"},
};

/* One parsed request: only what the answer depends on. */
typedef struct request {
    char method[16];
    char target[256];
    int minor;            /* HTTP/1.<minor> */
    int keep_alive;       /* after this request */
    long content_length;  /* -1: none */
} request;

/* Returns 1 if the comma-separated header value holds token (any case). */
static int has_token(const char *value, size_t len, const char *token) {
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) i++;
        size_t b = i;
        while (i < len && value[i] != ',') i++;
        size_t e = i;
        while (e > b && (value[e - 1] == ' ' || value[e - 1] == '\t')) e--;
        if (e - b == tlen && strncasecmp(value + b, token, tlen) == 0) return 1;
    }
    return 0;
}

/*
 * Parses a request head (the request line and the headers, each ending in
 * CRLF, then an empty line; head[len] need not be '\0'). Returns 0, or -1
 * for a malformed head. The checks are those the answer needs: a request
 * line of three parts with an HTTP/1.x version, header lines of
 * "name: value" with a name of token characters, one valid Content-Length,
 * and no Transfer-Encoding (this server reads no chunked body, so it cannot
 * know where the next request would start).
 */
static int parse_request(const char *head, size_t len, request *rq) {
    const char *end = head + len;
    const char *eol = memchr(head, '\r', len);
    if (!eol || eol + 1 >= end || eol[1] != '\n') return -1;

    /* The request line: METHOD SP target SP HTTP/1.x */
    const char *sp1 = memchr(head, ' ', (size_t)(eol - head));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == head || sp2 == sp1 + 1) return -1;
    size_t mlen = (size_t)(sp1 - head), tlen = (size_t)(sp2 - sp1 - 1);
    if (mlen >= sizeof rq->method || tlen >= sizeof rq->target) return -1;
    for (const char *p = head; p < sp1; p++)
        if (!isupper((unsigned char)*p)) return -1;
    memcpy(rq->method, head, mlen);
    rq->method[mlen] = '\0';
    memcpy(rq->target, sp1 + 1, tlen);
    rq->target[tlen] = '\0';
    if (memchr(rq->target, ' ', tlen)) return -1;
    const char *version = sp2 + 1;
    if (eol - version != 8 || memcmp(version, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)version[7]))
        return -1;
    rq->minor = version[7] - '0';

    /* HTTP/1.1 keeps the connection by default, HTTP/1.0 closes it. */
    rq->keep_alive = rq->minor >= 1;
    rq->content_length = -1;

    /* The headers, up to the empty line. */
    for (const char *line = eol + 2; line < end; line = eol + 2) {
        eol = memchr(line, '\r', (size_t)(end - line));
        if (!eol || eol + 1 >= end || eol[1] != '\n') return -1;
        if (eol == line) return eol + 2 == end ? 0 : -1; /* the empty line ends the head */
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon || colon == line) return -1;
        for (const char *p = line; p < colon; p++)
            if (!isgraph((unsigned char)*p)) return -1;
        const char *value = colon + 1;
        while (value < eol && (*value == ' ' || *value == '\t')) value++;
        size_t nlen = (size_t)(colon - line), vlen = (size_t)(eol - value);
        if (nlen == 10 && strncasecmp(line, "Connection", 10) == 0) {
            if (has_token(value, vlen, "close")) rq->keep_alive = 0;
            else if (has_token(value, vlen, "keep-alive")) rq->keep_alive = 1;
        } else if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            long n = 0;
            const char *p = value;
            while (p < eol && isdigit((unsigned char)*p) && n <= BODY_LIMIT) n = n * 10 + (*p++ - '0');
            while (p < eol && (*p == ' ' || *p == '\t')) p++;
            if (p == value || p != eol || n > BODY_LIMIT) return -1;
            if (rq->content_length >= 0 && rq->content_length != n) return -1;
            rq->content_length = n;
        } else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
            return -1;
        }
    }
    return -1; /* no empty line: readuntil guarantees one, but be safe */
}

/* Writes one answer and waits for it to drain. */
static int answer(cio_stream *s, int status, int keep_alive) {
    char head[256];
    const char *body = statuses[status].body;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: %s\r\n"
                     "\r\n",
                     statuses[status].code, statuses[status].reason, strlen(body),
                     keep_alive ? "keep-alive" : "close");
    stats.answered[status]++;
    int rc = cio_stream_write(s, head, (size_t)n);
    if (rc == 0) rc = cio_stream_write(s, body, strlen(body));
    if (rc == 0) rc = cio_stream_drain(s);
    return rc;
}

/* Reads and drops n bytes of a request body. */
static int discard(cio_stream *s, long n) {
    char buf[4096];
    while (n > 0) {
        size_t chunk = n < (long)sizeof buf ? (size_t)n : sizeof buf;
        ssize_t got = cio_stream_readexactly(s, buf, chunk);
        if (got < 0) return (int)got;
        n -= got;
    }
    return 0;
}

/*
 * The connection handler: one task per connection, one loop turn per
 * request. Every way out returns, and the server closes the stream then
 * (after sending what is buffered). Errors of the connection itself (the
 * client going away) end the handler quietly: they are the client's
 * business, not the server's failure.
 */
static void *handle(cio_stream *s, void *arg) {
    (void)arg;
    int conn = ++stats.connections;
    int rc = cio_stream_set_limit(s, HEAD_LIMIT);
    char head[HEAD_LIMIT];
    while (rc == 0) {
        /* Wait for the next request head, at most IDLE_TIMEOUT. */
        cio_timeout idle;
        rc = cio_timeout_enter(&idle, IDLE_TIMEOUT);
        if (rc < 0) break;
        ssize_t n = cio_stream_readuntil(s, "\r\n\r\n", 4, head, sizeof head);
        /* The exit turns the scope's own cancellation into -ETIMEDOUT. */
        int trc = cio_timeout_exit(&idle, n < 0 ? (int)n : 0);
        if (trc < 0) n = trc;
        if (n == -CIO_ELIMITOVERRUN || n == -ENOBUFS) {
            if (verbose) printf("connection %d: request head over %d bytes -> 431\n", conn, HEAD_LIMIT);
            rc = answer(s, S_431, 0);
            break;
        }
        if (n < 0) {
            /* The client closed (-CIO_EINCOMPLETE), stayed idle too long
             * (-ETIMEDOUT), or the connection failed. */
            if (verbose) printf("connection %d: closed (%s)\n", conn,
                                n == -CIO_EINCOMPLETE ? "by the client" : cio_strerror((int)n));
            break;
        }

        request rq;
        if (parse_request(head, (size_t)n, &rq) < 0) {
            if (verbose) printf("connection %d: malformed request -> 400\n", conn);
            rc = answer(s, S_400, 0);
            break;
        }
        if (rq.content_length > 0 && discard(s, rq.content_length) < 0) break;
        int status = strcmp(rq.method, "GET") == 0 ? S_200 : S_405;
        if (verbose)
            printf("connection %d: %s %s HTTP/1.%d -> %d%s\n", conn, rq.method, rq.target,
                   rq.minor, statuses[status].code, rq.keep_alive ? "" : ", closing");
        rc = answer(s, status, rq.keep_alive);
        if (!rq.keep_alive) break;
    }
    if (verbose) fflush(stdout);
    return NULL;
}

/* ----------------------------------------------------------------------
 * The client of the default mode
 * ---------------------------------------------------------------------- */

/* An answer as the client reads it. */
typedef struct response {
    char status_line[128];
    char connection[32];
    char body[128];
} response;

/* Finds header name in a response head; copies its value into out. */
static void header_value(const char *head, const char *name, char *out, size_t cap) {
    size_t nlen = strlen(name);
    out[0] = '\0';
    for (const char *line = strstr(head, "\r\n"); line && line[2] != '\r'; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
            const char *v = h + nlen + 1;
            while (*v == ' ') v++;
            size_t vlen = strcspn(v, "\r");
            if (vlen >= cap) vlen = cap - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return;
        }
    }
}

/* Reads one answer: its head with readuntil, its body with readexactly. */
static int read_response(cio_stream *c, response *r) {
    char head[1024];
    ssize_t n = cio_stream_readuntil(c, "\r\n\r\n", 4, head, sizeof head - 1);
    if (n < 0) return (int)n;
    head[n] = '\0';
    size_t sl = strcspn(head, "\r");
    if (sl >= sizeof r->status_line) return -EPROTO;
    memcpy(r->status_line, head, sl);
    r->status_line[sl] = '\0';
    header_value(head, "Connection", r->connection, sizeof r->connection);
    char length[16];
    header_value(head, "Content-Length", length, sizeof length);
    long len = strtol(length, NULL, 10);
    if (length[0] == '\0' || len < 0 || (size_t)len >= sizeof r->body) return -EPROTO;
    n = cio_stream_readexactly(c, r->body, (size_t)len);
    if (n < 0) return (int)n;
    if (n > 0 && r->body[n - 1] == '\n') n--; /* print the body without its '\n' */
    r->body[n] = '\0';
    return 0;
}

/* After an answer with "Connection: close": the server must end the
 * stream, with nothing more on it. Returns 0 if it did. */
static int expect_end(cio_stream *c) {
    char byte;
    ssize_t n = cio_stream_read(c, &byte, 1);
    return n == 0 ? 0 : n < 0 ? (int)n : -EPROTO;
}

/*
 * One connection of the demo: sends each of the requests in turn, reads
 * and prints each answer, checks its status and Connection header, and at
 * the end checks that the server closed the connection if and only if the
 * last answer said so.
 */
static int exchange(int conn, const char *what, const char *const *requests, int nreq,
                    int want_status, const char *want_connection) {
    cio_stream *c;
    int rc = cio_open_connection("127.0.0.1", port, &c);
    if (rc < 0) return rc;
    for (int i = 0; i < nreq && rc == 0; i++) {
        rc = cio_stream_write(c, requests[i], strlen(requests[i]));
        if (rc == 0) rc = cio_stream_drain(c);
        response r;
        if (rc == 0) rc = read_response(c, &r);
        if (rc < 0) break;
        printf("connection %d, request %d (%s): %s, Connection: %s, body \"%s\"\n", conn, i + 1,
               what, r.status_line, r.connection, r.body);
        if (atoi(r.status_line + 9) != want_status || strcmp(r.connection, want_connection) != 0)
            rc = -EPROTO;
    }
    if (rc == 0 && strcmp(want_connection, "close") == 0) {
        rc = expect_end(c);
        printf("connection %d: the server closed it (%s)\n", conn, rc == 0 ? "end of stream" : cio_strerror(rc));
    } else if (rc == 0) {
        printf("connection %d: still open after %d requests; the client closes it\n", conn, nreq);
    }
    int crc = cio_stream_close(c);
    if (crc == 0) crc = cio_stream_wait_closed(c);
    if (rc == 0) rc = crc;
    cio_stream_free(c);
    return rc;
}

static void *client(void *arg) {
    (void)arg;
    static const char *const keep_alive[] = {
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /again HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /third HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n",
    };
    static const char *const closing[] = {
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    };
    static const char *const malformed[] = {"GET /no-version\r\n\r\n"};
    static const char *const http10[] = {"GET / HTTP/1.0\r\n\r\n"};

    int rc = exchange(1, "keep-alive", keep_alive, 3, 200, "keep-alive");
    if (rc == 0) rc = exchange(2, "Connection: close", closing, 1, 200, "close");
    if (rc == 0) rc = exchange(3, "Connection: close", closing, 1, 200, "close");
    if (rc == 0) rc = exchange(4, "malformed", malformed, 1, 400, "close");
    if (rc == 0) rc = exchange(5, "HTTP/1.0", http10, 1, 200, "close");
    return rc < 0 ? cio_raise(rc) : NULL;
}

/* The default mode: the client's run, then the server is closed:
 * server.close(); await server.wait_closed(). */
static void *demo(void *arg) {
    cio_server *server = arg;
    cio_loop *loop = cio_running_loop();
    cio_task *t;
    int rc = cio_spawn(loop, client, NULL, &t);
    if (rc < 0) return cio_raise(rc);
    rc = cio_await(t, NULL);
    cio_future_unref(t);
    printf("client %s; closing the server\n", rc == 0 ? "done" : cio_strerror(rc));
    cio_server_close(server);
    int wrc = cio_server_wait_closed(server);
    printf("server closed: %d connections, answers: %d x 200, %d x 400 (%s)\n",
           stats.connections, stats.answered[S_200], stats.answered[S_400],
           wrc == 0 ? "ok" : cio_strerror(wrc));
    if (rc == 0) rc = wrc;
    if (rc == 0 && (stats.connections != 5 || stats.answered[S_200] != 6 || stats.answered[S_400] != 1))
        rc = -EPROTO;
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *serve_forever(void *arg) {
    return cio_raise(cio_server_serve_forever(arg));
}

int main(int argc, char **argv) {
    const char *listen_port = "0";
    int serve_only = 0;
    if (argc == 3 && strcmp(argv[1], "--serve") == 0) {
        listen_port = argv[2];
        serve_only = verbose = 1;
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--serve PORT]\n", argv[0]);
        return 2;
    }

    cio_loop *loop;
    if (cio_loop_new(&loop) < 0) return 1;
    cio_server *server;
    int rc = cio_start_server(loop, handle, NULL, "127.0.0.1", listen_port, NULL, &server);
    if (rc < 0) {
        fprintf(stderr, "http_hello: cannot listen on 127.0.0.1:%s: %s\n", listen_port,
                cio_strerror(rc));
        cio_loop_free(loop);
        return 1;
    }
    int fd;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (cio_server_sockets(server, &fd, 1) != 1 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        fprintf(stderr, "http_hello: no listening socket\n");
        cio_server_free(server);
        cio_loop_free(loop);
        return 1;
    }
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    printf("http server listening on 127.0.0.1:%s\n", port);
    fflush(stdout);

    cio_task *t = NULL;
    rc = cio_spawn(loop, serve_only ? serve_forever : demo, server, &t);
    if (rc == 0) rc = cio_run_until_complete(loop, t, NULL);
    if (t) cio_future_unref(t);
    cio_server_free(server);
    cio_loop_free(loop);
    if (!serve_only) printf("http_hello %s\n", rc == 0 ? "finished" : cio_strerror(rc));
    return rc == 0 ? 0 : 1;
}
