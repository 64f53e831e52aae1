/*
 * A libuv echo server written for speed, as a libuv user who cares about it
 * writes one: uv_listen, uv_accept into a malloc'd uv_tcp_t, uv_read_start
 * into one 64 KiB buffer that the loop reuses for every read (libuv reads
 * into it and calls back before the next read), and the echo sent at once
 * with uv_try_write; only what the socket does not take then is copied into
 * a uv_write request. The libuv book's canonical server (a malloc of the
 * suggested 64 KiB per read, freed after a uv_write per message) spends
 * most of its time in the allocator and the page faults behind it (4x the
 * epoll server's CPU per message here), which measures glibc, not libuv;
 * server_libuv.c keeps that program as the "libuv" line. Like every server in the benchmark it sets TCP_NODELAY (uv_tcp_nodelay)
 * and listens on several ports for the idle-connection runs.
 *
 *     server_libuv_tuned PORT[,PORT...]
 */
#include <string.h>

#include "uv_common.h"

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
    char data[];
} write_req_t;

static char read_buffer[64 * 1024];

static void alloc_buffer(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf) {
    (void)handle;
    (void)suggested_size;
    *buf = uv_buf_init(read_buffer, sizeof read_buffer);
}

static void echo_written(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

static void echo_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf) {
    if (nread < 0) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    size_t done = 0;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
    int n = uv_try_write(client, &out, 1);
    if (n > 0) done = (size_t)n;
    if (done == (size_t)nread) return;
    /* The rest waits in a request of its own: the read buffer is reused. */
    size_t rest = (size_t)nread - done;
    write_req_t *req = malloc(sizeof *req + rest);
    if (!req) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    memcpy(req->data, buf->base + done, rest);
    req->buf = uv_buf_init(req->data, (unsigned int)rest);
    uv_write(&req->req, client, &req->buf, 1, echo_written);
}

int main(int argc, char **argv) {
    return echo_uv_main(argc, argv, "server_libuv_tuned", alloc_buffer, echo_read);
}
