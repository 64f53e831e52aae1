/*
 * What the two libuv echo servers (server_libuv.c, the libuv book's, and
 * server_libuv_tuned.c, written for speed) share: accepting a connection
 * and listening on every port. They differ only in how they read and
 * write, which each passes in as its alloc and read callbacks.
 */
#ifndef CIO_BENCH_ECHO_UV_COMMON_H
#define CIO_BENCH_ECHO_UV_COMMON_H

#include <uv.h>

#include "common.h"

static uv_loop_t *loop;
static uv_alloc_cb echo_uv_alloc;
static uv_read_cb echo_uv_read;

static void on_close(uv_handle_t *handle) { free(handle); }

static void on_new_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    uv_tcp_t *client = malloc(sizeof *client);
    uv_tcp_init(loop, client);
    if (uv_accept(server, (uv_stream_t *)client) == 0) {
        uv_tcp_nodelay(client, 1);
        uv_read_start((uv_stream_t *)client, echo_uv_alloc, echo_uv_read);
    } else {
        uv_close((uv_handle_t *)client, on_close);
    }
}

/* main() of a libuv echo server named name: PORT[,PORT...] on 127.0.0.1. */
static int echo_uv_main(int argc, char **argv, const char *name, uv_alloc_cb alloc,
                        uv_read_cb read) {
    int ports[ECHO_MAX_PORTS];
    int nports = argc == 2 ? echo_parse_ports(argv[1], ports, ECHO_MAX_PORTS) : -1;
    if (nports < 0) {
        fprintf(stderr, "usage: %s PORT[,PORT...]\n", name);
        return 2;
    }
    echo_uv_alloc = alloc;
    echo_uv_read = read;
    echo_raise_nofile(200000);
    loop = uv_default_loop();
    static uv_tcp_t servers[ECHO_MAX_PORTS];
    for (int i = 0; i < nports; i++) {
        struct sockaddr_in addr;
        uv_ip4_addr("127.0.0.1", ports[i], &addr);
        uv_tcp_init(loop, &servers[i]);
        uv_tcp_bind(&servers[i], (const struct sockaddr *)&addr, 0);
        int r = uv_listen((uv_stream_t *)&servers[i], 4096, on_new_connection);
        if (r) {
            fprintf(stderr, "listen: %s\n", uv_strerror(r));
            return 1;
        }
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}

#endif
