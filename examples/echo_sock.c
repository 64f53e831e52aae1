/*
 * An echo client/server exchange on loopback, all in one loop, at the
 * socket level (cio_sock_*): examples/echo.c is the same on streams.
 *
 * The server task accepts connections and gives each its own task, in a
 * task group, that echoes whatever it receives; three client tasks connect
 * at once, each sends a few lines and checks and prints the echoes. When
 * the clients are done the server is cancelled: the accept call returns
 * -ECANCELED, and leaving the task group cancels and waits for whatever
 * connection is still open.
 *
 * The Python it mirrors, with asyncio's low-level socket API:
 *
 *     async def handle(conn):
 *         while data := await loop.sock_recv(conn, 4096):
 *             await loop.sock_sendall(conn, data)
 *     async def server(lsock):
 *         while True:
 *             conn, _ = await loop.sock_accept(lsock)
 *             asyncio.create_task(handle(conn))
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cio.h>

#define CLIENTS 3
#define LINES 3

static struct sockaddr_in server_addr;
static double start;

static double elapsed(void) {
    return cio_loop_time(cio_running_loop()) - start;
}

static void *serve_connection(void *arg) {
    int conn = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = cio_sock_recv(conn, buf, sizeof buf)) > 0) {
        if (cio_sock_sendall(conn, buf, (size_t)n) < 0) break;
    }
    cio_close(conn);
    return NULL;
}

static void *server(void *arg) {
    int lfd = (int)(intptr_t)arg;
    int served = 0;
    /* Connections are children of a task group: when the server is
     * cancelled, leaving the group cancels the connections still open and
     * waits for them, so no task outlives the server. */
    cio_task_group *connections;
    int rc = cio_task_group_enter(&connections);
    if (rc < 0) return cio_raise(rc);
    for (;;) {
        int conn = cio_sock_accept(lfd, NULL, NULL);
        if (conn < 0) {
            rc = conn;
            break;
        }
        served++;
        printf("[%.3f s] server: connection %d accepted\n", elapsed(), served);
        rc = cio_task_group_spawn(connections, serve_connection, (void *)(intptr_t)conn, NULL);
        if (rc < 0) {
            cio_close(conn);
            break;
        }
    }
    rc = cio_task_group_exit(connections, rc);
    cio_task_group_free(connections);
    printf("[%.3f s] server: %s after %d connections\n", elapsed(),
           rc == -ECANCELED ? "cancelled" : cio_strerror(rc), served);
    return rc == -ECANCELED ? (void *)(intptr_t)served : cio_raise(rc);
}

static void *client(void *arg) {
    int id = (int)(intptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return cio_raise(-errno);
    int rc = cio_sock_connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr);
    if (rc < 0) {
        cio_close(fd);
        return cio_raise(rc);
    }
    for (int i = 1; i <= LINES && rc == 0; i++) {
        char line[64], echo[64];
        int len = snprintf(line, sizeof line, "hello %d from client %d", i, id);
        if (cio_sock_sendall(fd, line, (size_t)len) < 0) rc = -EIO;
        ssize_t got = 0;
        while (rc == 0 && got < len) {
            ssize_t n = cio_sock_recv(fd, echo + got, (size_t)(len - got));
            if (n <= 0) rc = n < 0 ? (int)n : -ECONNRESET;
            else got += n;
        }
        if (rc == 0 && memcmp(echo, line, (size_t)len) != 0) rc = -EPROTO;
        if (rc == 0) {
            echo[got] = '\0';
            printf("[%.3f s] client %d: sent \"%s\", got back \"%s\"\n", elapsed(), id, line,
                   echo);
        }
        if (rc == 0) rc = cio_sleep(0.05 * id); /* clients interleave */
    }
    cio_close(fd);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *main_task(void *arg) {
    int lfd = (int)(intptr_t)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *srv, *clients[CLIENTS];
    if (cio_spawn(loop, server, arg, &srv) < 0) return cio_raise(-ENOMEM);
    int spawned = 0;
    for (; spawned < CLIENTS; spawned++)
        if (cio_spawn(loop, client, (void *)(intptr_t)(spawned + 1), &clients[spawned]) < 0)
            break;
    cio_future *all = NULL;
    int rc = spawned == CLIENTS ? cio_gather(loop, clients, CLIENTS, 0, &all) : -ENOMEM;
    if (rc == 0) rc = cio_await(all, NULL);
    printf("[%.3f s] all clients done (%s); cancelling the server\n", elapsed(),
           rc == 0 ? "ok" : cio_strerror(rc));
    cio_task_cancel(srv, "shutting down");
    void *served = NULL;
    int src = cio_await(srv, &served);
    /* The server caught the cancellation and returned its count; it still
     * ends cancelled, because the request is outstanding (docs/design.md §7). */
    printf("[%.3f s] server task ended: %s\n", elapsed(),
           src == -ECANCELED ? "cancelled" : cio_strerror(src));
    cio_future_unref(all);
    for (int i = 0; i < spawned; i++) cio_future_unref(clients[i]);
    cio_future_unref(srv);
    (void)lfd;
    return rc < 0 ? cio_raise(rc) : NULL;
}

int main(void) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof server_addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0 ||
        getsockname(lfd, (struct sockaddr *)&server_addr, &len) != 0 || listen(lfd, 16) != 0) {
        perror("listen");
        return 1;
    }
    printf("echo server listening on 127.0.0.1:%d\n", ntohs(server_addr.sin_port));

    cio_loop *loop;
    if (cio_loop_new(&loop) < 0) return 1;
    start = cio_loop_time(loop);
    cio_task *t;
    int rc = cio_spawn(loop, main_task, (void *)(intptr_t)lfd, &t);
    if (rc == 0) rc = cio_run_until_complete(loop, t, NULL);
    cio_future_unref(t);
    cio_loop_free(loop);
    close(lfd);
    printf("echo exchange %s\n", rc == 0 ? "finished" : cio_strerror(rc));
    return rc == 0 ? 0 : 1;
}
