/*
 * cio's protocol echo server: asyncio's Protocol style, the callback path
 * with no task per connection.
 *
 *     class Echo(asyncio.Protocol):
 *         def connection_made(self, transport):
 *             self.transport = transport
 *         def data_received(self, data):
 *             self.transport.write(data)
 *     await loop.create_server(Echo, '127.0.0.1', port)
 *
 *     server_cio_protocol PORT[,PORT...]
 */
#include <stdio.h>

#include <cio.h>

#include "common.h"

static void echo_data(cio_transport *t, const void *data, size_t len, void *ctx) {
    (void)ctx;
    cio_transport_write(t, data, len);
}

static const cio_protocol echo = {.data_received = echo_data};

int main(int argc, char **argv) {
    int ports[ECHO_MAX_PORTS];
    int nports = argc == 2 ? echo_parse_ports(argv[1], ports, ECHO_MAX_PORTS) : -1;
    if (nports < 0) {
        fprintf(stderr, "usage: server_cio_protocol PORT[,PORT...]\n");
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
        rc = cio_create_server(loop, &echo, NULL, "127.0.0.1", port, &opts, &s);
    }
    if (rc == 0) rc = cio_run_forever(loop);
    fprintf(stderr, "server_cio_protocol: %s\n", cio_strerror(rc));
    return 1;
}
