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
#include "uv_common.h"

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static void alloc_buffer(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf) {
    (void)handle;
    buf->base = malloc(suggested_size);
    buf->len = suggested_size;
}

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

int main(int argc, char **argv) {
    return echo_uv_main(argc, argv, "server_libuv", alloc_buffer, echo_read);
}
