/*
 * The canonical libuv echo server (the one of the libuv book, "uvbook"
 * echo-server/main.c): uv_listen, uv_accept into a malloc'd uv_tcp_t,
 * uv_read_start with an alloc callback that mallocs the suggested 64 KiB,
 * and a uv_write per read whose callback frees the buffer. The only
 * additions are TCP_NODELAY (uv_tcp_nodelay; every server in the benchmark
 * sets it) and several listening ports for the idle-connection runs.
 *
 *     server_libuv PORT[,PORT...]
 */
#include <uv.h>

#include "common.h"

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static uv_loop_t *loop;

static void alloc_buffer(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf) {
    (void)handle;
    buf->base = malloc(suggested_size);
    buf->len = suggested_size;
}

static void on_close(uv_handle_t *handle) { free(handle); }

static void echo_write(uv_write_t *req, int status) {
    (void)status;
    write_req_t *wr = (write_req_t *)req;
    free(wr->buf.base);
    free(wr);
}

static void echo_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf) {
    if (nread > 0) {
        write_req_t *req = malloc(sizeof *req);
        req->buf = uv_buf_init(buf->base, (unsigned int)nread);
        uv_write(&req->req, client, &req->buf, 1, echo_write);
        return;
    }
    if (nread < 0) uv_close((uv_handle_t *)client, on_close);
    free(buf->base);
}

static void on_new_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    uv_tcp_t *client = malloc(sizeof *client);
    uv_tcp_init(loop, client);
    if (uv_accept(server, (uv_stream_t *)client) == 0) {
        uv_tcp_nodelay(client, 1);
        uv_read_start((uv_stream_t *)client, alloc_buffer, echo_read);
    } else {
        uv_close((uv_handle_t *)client, on_close);
    }
}

int main(int argc, char **argv) {
    int ports[ECHO_MAX_PORTS];
    int nports = argc == 2 ? echo_parse_ports(argv[1], ports, ECHO_MAX_PORTS) : -1;
    if (nports < 0) {
        fprintf(stderr, "usage: server_libuv PORT[,PORT...]\n");
        return 2;
    }
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
