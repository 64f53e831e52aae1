/*
 * An echo client/server exchange on loopback, all in one loop, on streams.
 *
 * cio_start_server listens on 127.0.0.1, port 0 (the system picks a free
 * port, read back from the server's socket), and runs the handler in a task
 * of its own for each connection: the handler echoes lines until the client
 * ends its side. Three client tasks connect at once with
 * cio_open_connection, each sends a few lines and checks and prints the
 * echoes. The server itself runs serve_forever in a task; when the clients
 * are done that task is cancelled, which closes the server, and
 * cio_server_wait_closed waits until the last connection is gone, as
 * leaving `async with server:` does.
 *
 * examples/echo_sock.c is the same exchange one level down, on sockets.
 *
 * The Python it mirrors (the streams echo of asyncio's documentation, with
 * the clients in the same program):
 *
 *     async def handle_echo(reader, writer):
 *         while line := await reader.readline():
 *             writer.write(line)
 *             await writer.drain()
 *         writer.close()
 *         await writer.wait_closed()
 *
 *     async def client(i):
 *         reader, writer = await asyncio.open_connection('127.0.0.1', port)
 *         for n in range(1, 4):
 *             writer.write(f'hello {n} from client {i}\n'.encode())
 *             await writer.drain()
 *             assert await reader.readline() == ...
 *         writer.close()
 *         await writer.wait_closed()
 *
 *     async def main():
 *         server = await asyncio.start_server(handle_echo, '127.0.0.1', 0)
 *         port = server.sockets[0].getsockname()[1]
 *         async with server:
 *             serving = asyncio.create_task(server.serve_forever())
 *             await asyncio.gather(*(client(i) for i in (1, 2, 3)))
 *             serving.cancel()
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cio.h>

#define CLIENTS 3
#define LINES 3

static char port[16];
static double start;
static int connections; /* handlers started */
static int echoed;      /* lines echoed by every handler together */

static double elapsed(void) {
    return cio_loop_time(cio_running_loop()) - start;
}

/* The connection handler: a task per connection. The stream belongs to the
 * server, which closes and frees it when the handler returns. */
static void *handle_echo(cio_stream *s, void *arg) {
    (void)arg;
    int id = ++connections;
    printf("[%.3f s] server: connection %d opened\n", elapsed(), id);
    char line[256];
    ssize_t n;
    int lines = 0;
    while ((n = cio_stream_readline(s, line, sizeof line)) > 0) {
        int rc = cio_stream_write(s, line, (size_t)n);
        if (rc == 0) rc = cio_stream_drain(s);
        if (rc < 0) return cio_raise(rc);
        lines++;
        echoed++;
    }
    /* 0 is the client's end of stream; anything else is an error. */
    printf("[%.3f s] server: connection %d ended after %d lines (%s)\n", elapsed(), id, lines,
           n == 0 ? "end of stream" : cio_strerror((int)n));
    return n < 0 ? cio_raise((int)n) : NULL;
}

static void *client(void *arg) {
    int id = (int)(intptr_t)arg;
    cio_stream *c;
    int rc = cio_open_connection("127.0.0.1", port, &c);
    if (rc < 0) return cio_raise(rc);
    for (int i = 1; i <= LINES && rc == 0; i++) {
        char line[64], echo[64];
        int len = snprintf(line, sizeof line, "hello %d from client %d\n", i, id);
        rc = cio_stream_write(c, line, (size_t)len);
        if (rc == 0) rc = cio_stream_drain(c);
        ssize_t got = rc == 0 ? cio_stream_readline(c, echo, sizeof echo - 1) : rc;
        if (got < 0) rc = (int)got;
        else if (got != len || memcmp(echo, line, (size_t)len) != 0) rc = -EPROTO;
        if (rc == 0) {
            line[len - 1] = echo[len - 1] = '\0'; /* drop the '\n' to print */
            printf("[%.3f s] client %d: sent \"%s\", got back \"%s\"\n", elapsed(), id, line,
                   echo);
            rc = cio_sleep(0.05 * id); /* the clients interleave */
        }
    }
    /* writer.close(); await writer.wait_closed() */
    int crc = cio_stream_close(c);
    if (crc == 0) crc = cio_stream_wait_closed(c);
    if (rc == 0) rc = crc;
    cio_stream_free(c);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *serve_forever(void *arg) {
    return cio_raise(cio_server_serve_forever(arg));
}

static void *main_task(void *arg) {
    cio_server *server = arg;
    cio_loop *loop = cio_running_loop();

    /* async with server: serving = create_task(server.serve_forever()) */
    cio_task *serving;
    if (cio_spawn(loop, serve_forever, server, &serving) < 0) return cio_raise(-ENOMEM);

    cio_task *clients[CLIENTS];
    int spawned = 0;
    for (; spawned < CLIENTS; spawned++)
        if (cio_spawn(loop, client, (void *)(intptr_t)(spawned + 1), &clients[spawned]) < 0)
            break;
    cio_future *all = NULL;
    int rc = spawned == CLIENTS ? cio_gather(loop, clients, CLIENTS, 0, &all) : -ENOMEM;
    if (rc == 0) rc = cio_await(all, NULL);
    printf("[%.3f s] all clients done (%s); cancelling serve_forever\n", elapsed(),
           rc == 0 ? "ok" : cio_strerror(rc));

    /* serving.cancel(): serve_forever closes the server and ends cancelled;
     * leaving `async with server:` then waits for the last connection. */
    cio_task_cancel(serving, "shutting down");
    int src = cio_await(serving, NULL);
    printf("[%.3f s] serve_forever ended: %s; server serving: %s\n", elapsed(),
           src == -ECANCELED ? "cancelled" : cio_strerror(src),
           cio_server_is_serving(server) ? "yes" : "no");
    int wrc = cio_server_wait_closed(server);
    printf("[%.3f s] server closed after %d connections, %d lines echoed (%s)\n", elapsed(),
           connections, echoed, wrc == 0 ? "ok" : cio_strerror(wrc));
    if (rc == 0 && src != -ECANCELED) rc = src < 0 ? src : -EPROTO;
    if (rc == 0) rc = wrc;
    if (rc == 0 && (connections != CLIENTS || echoed != CLIENTS * LINES)) rc = -EPROTO;

    cio_future_unref(all);
    for (int i = 0; i < spawned; i++) cio_future_unref(clients[i]);
    cio_future_unref(serving);
    return rc < 0 ? cio_raise(rc) : NULL;
}

int main(void) {
    cio_loop *loop;
    if (cio_loop_new(&loop) < 0) return 1;

    /* server = await asyncio.start_server(handle_echo, '127.0.0.1', 0)
     * (callable outside a task, as asyncio's is before the loop runs). */
    cio_server *server;
    int rc = cio_start_server(loop, handle_echo, NULL, "127.0.0.1", "0", NULL, &server);
    if (rc < 0) {
        fprintf(stderr, "start_server: %s\n", cio_strerror(rc));
        cio_loop_free(loop);
        return 1;
    }
    /* port = server.sockets[0].getsockname()[1] */
    int fd;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (cio_server_sockets(server, &fd, 1) != 1 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        fprintf(stderr, "echo: no listening socket\n");
        cio_server_free(server);
        cio_loop_free(loop);
        return 1;
    }
    snprintf(port, sizeof port, "%d", ntohs(sa.sin_port));
    printf("echo server listening on 127.0.0.1:%s\n", port);

    start = cio_loop_time(loop);
    cio_task *t = NULL;
    rc = cio_spawn(loop, main_task, server, &t);
    if (rc == 0) rc = cio_run_until_complete(loop, t, NULL);
    if (t) cio_future_unref(t);
    cio_server_free(server);
    cio_loop_free(loop);
    printf("echo exchange %s\n", rc == 0 ? "finished" : cio_strerror(rc));
    return rc == 0 ? 0 : 1;
}
