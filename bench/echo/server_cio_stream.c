/*
 * cio's stream echo server: asyncio's streams, a task per connection.
 *
 *     async def handle(reader, writer):
 *         while data := await reader.read(4096):
 *             writer.write(data)
 *             await writer.drain()
 *     await asyncio.start_server(handle, '127.0.0.1', port)
 *
 *     server_cio_stream PORT[,PORT...]
 */
#include <stdio.h>

#include <cio.h>

#include "common.h"

/* One buffer per thread serves every connection: write copies the data
 * into the transport before anything can suspend, so no two handlers ever
 * use it at once. A 4 KiB array on each task's stack would push the
 * deeper frames of the read onto a second stack page, doubling what an
 * idle connection costs. */
static _Thread_local char buf[4096];

static void *handle(cio_stream *s, void *arg) {
    (void)arg;
    ssize_t n;
    while ((n = cio_stream_read(s, buf, sizeof buf)) > 0) {
        if (cio_stream_write(s, buf, (size_t)n) < 0) break;
        if (cio_stream_drain(s) < 0) break;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int ports[ECHO_MAX_PORTS];
    int nports = argc == 2 ? echo_parse_ports(argv[1], ports, ECHO_MAX_PORTS) : -1;
    if (nports < 0) {
        fprintf(stderr, "usage: server_cio_stream PORT[,PORT...]\n");
        return 2;
    }
    echo_raise_nofile(200000);
    cio_loop *loop;
    int rc = cio_loop_new(&loop);
    cio_server_options opts = {.backlog = 4096};
    for (int i = 0; i < nports && rc == 0; i++) {
        char port[16];
        snprintf(port, sizeof port, "%d", ports[i]);
        cio_server *s;
        rc = cio_start_server(loop, handle, NULL, "127.0.0.1", port, &opts, &s);
    }
    if (rc == 0) rc = cio_run_forever(loop);
    fprintf(stderr, "server_cio_stream: %s\n", cio_strerror(rc));
    return 1;
}
