/*
 * cio's socket-level echo server: asyncio's loop.sock_* style, a task per
 * connection, on cio's public API of today.
 *
 *     async def serve(conn):
 *         while data := await loop.sock_recv(conn, 4096):
 *             await loop.sock_sendall(conn, data)
 *     async def acceptor(lsock):
 *         while True:
 *             conn, _ = await loop.sock_accept(lsock)
 *             asyncio.create_task(serve(conn))
 *
 * One acceptor task per listening port; each connection gets a detached
 * task with the loop's default stack that receives into a 16 KiB buffer on
 * its stack and sends it all back, and closes the socket with cio_close.
 * Each accepted socket is handed over to the loop (cio_sock_adopt), which
 * then keeps it registered for its whole life instead of arming it before
 * every wait. The buffer is larger than the largest message (4 KiB), as
 * the epoll server's is (64 KiB): a read that fills the buffer cannot tell
 * that the socket is empty, so the next one would be tried and fail.
 *
 *     server_cio_sock PORT[,PORT...]
 */
#include <stdint.h>

#include <cio.h>

#include "common.h"

static void *serve(void *arg) {
    int conn = (int)(intptr_t)arg;
    char buf[16384];
    ssize_t n;
    while ((n = cio_sock_recv(conn, buf, sizeof buf)) > 0)
        if (cio_sock_sendall(conn, buf, (size_t)n) < 0) break;
    cio_close(conn);
    return NULL;
}

static void *acceptor(void *arg) {
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int conn = cio_sock_accept(lfd, NULL, NULL);
        if (conn < 0) {
            /* Out of descriptors or memory: keep serving the others. */
            if (conn == -EMFILE || conn == -ENFILE || conn == -ENOMEM) {
                cio_sleep(0.01);
                continue;
            }
            return cio_raise(conn);
        }
        int one = 1;
        setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* Closed only with cio_close (serve): the loop may keep it. */
        if (cio_sock_adopt(cio_running_loop(), conn) < 0) {
            cio_close(conn);
            continue;
        }
        if (cio_spawn(cio_running_loop(), serve, (void *)(intptr_t)conn, NULL) < 0)
            cio_close(conn);
    }
}

static int ports[ECHO_MAX_PORTS], nports;

static void *main_task(void *arg) {
    (void)arg;
    cio_task *tasks[ECHO_MAX_PORTS];
    for (int i = 0; i < nports; i++) {
        int lfd = echo_listen(ports[i], 1);
        if (lfd < 0) return cio_raise(-errno);
        int rc = cio_spawn(cio_running_loop(), acceptor, (void *)(intptr_t)lfd, &tasks[i]);
        if (rc < 0) return cio_raise(rc);
    }
    /* The acceptors run until the process is killed. */
    return cio_raise(cio_await(tasks[0], NULL));
}

int main(int argc, char **argv) {
    nports = argc == 2 ? echo_parse_ports(argv[1], ports, ECHO_MAX_PORTS) : -1;
    if (nports < 0) {
        fprintf(stderr, "usage: server_cio_sock PORT[,PORT...]\n");
        return 2;
    }
    echo_raise_nofile(200000);
    int rc = cio_run(main_task, NULL, NULL);
    fprintf(stderr, "server_cio_sock: %s\n", cio_strerror(rc));
    return 1;
}
