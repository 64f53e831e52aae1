/*
 * A UDP echo server and client with datagram endpoints, in one program.
 *
 * The server endpoint is bound to a free port on 127.0.0.1 and sends every
 * datagram back to its sender. The client endpoint is connected to the
 * server: in connection_made it sends the first message, and each echo
 * that comes back triggers the next, until all are answered; then it
 * closes itself, and its connection_lost closes the server, whose
 * connection_lost stops the loop.
 *
 * The Python it mirrors (asyncio's own UDP echo example):
 *
 *     class EchoServerProtocol(asyncio.DatagramProtocol):
 *         def connection_made(self, transport):
 *             self.transport = transport
 *         def datagram_received(self, data, addr):
 *             self.transport.sendto(data, addr)
 *
 *     class EchoClientProtocol(asyncio.DatagramProtocol):
 *         def connection_made(self, transport):
 *             transport.sendto(self.message.encode())
 *         def datagram_received(self, data, addr):
 *             print("Received:", data.decode())
 *             ...
 *         def connection_lost(self, exc):
 *             self.on_con_lost.set_result(True)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cio.h>

static const char *const messages[] = {"Hello, World!", "datagram two", "the last one"};
#define MESSAGES (sizeof messages / sizeof messages[0])

typedef struct server {
    cio_loop *loop;
    int echoed;
} server;

typedef struct client {
    cio_datagram_transport *server; /* closed when the client is done */
    size_t next;                    /* the message to send next */
    size_t answered;
    int ok;
} client;

static void server_made(cio_datagram_transport *t, void *ctx) {
    (void)ctx;
    struct sockaddr_in addr;
    unsigned int len = sizeof addr;
    if (cio_datagram_transport_sockname(t, (struct sockaddr *)&addr, &len) == 0)
        printf("server: listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
}

static void server_received(cio_datagram_transport *t, const void *data, size_t len,
                            const struct sockaddr *addr, unsigned int addrlen, void *ctx) {
    server *s = ctx;
    printf("server: received %zu bytes, sending them back\n", len);
    s->echoed++;
    cio_datagram_transport_sendto(t, data, len, addr, addrlen);
}

static void server_lost(cio_datagram_transport *t, int error, void *ctx) {
    (void)t;
    server *s = ctx;
    printf("server: closed (%s) after %d echoes\n", error ? cio_strerror(error) : "cleanly",
           s->echoed);
    cio_loop_stop(s->loop);
}

static void send_next(cio_datagram_transport *t, client *c) {
    const char *m = messages[c->next++];
    printf("client: sending \"%s\"\n", m);
    cio_datagram_transport_sendto(t, m, strlen(m), NULL, 0);
}

static void client_made(cio_datagram_transport *t, void *ctx) {
    send_next(t, ctx);
}

static void client_received(cio_datagram_transport *t, const void *data, size_t len,
                            const struct sockaddr *addr, unsigned int addrlen, void *ctx) {
    (void)addr;
    (void)addrlen;
    client *c = ctx;
    const char *sent = messages[c->answered++];
    int same = len == strlen(sent) && memcmp(data, sent, len) == 0;
    printf("client: received \"%.*s\" (%s)\n", (int)len, (const char *)data,
           same ? "matches" : "WRONG");
    if (!same) c->ok = 0;
    if (c->next < MESSAGES)
        send_next(t, c);
    else
        cio_datagram_transport_close(t);
}

static void client_error(cio_datagram_transport *t, int error, void *ctx) {
    (void)t;
    client *c = ctx;
    printf("client: error %s\n", cio_strerror(error));
    c->ok = 0;
}

static void client_lost(cio_datagram_transport *t, int error, void *ctx) {
    (void)t;
    client *c = ctx;
    printf("client: closed (%s)\n", error ? cio_strerror(error) : "cleanly");
    cio_datagram_transport_close(c->server);
}

int main(void) {
    cio_loop *loop;
    if (cio_loop_new(&loop) < 0) return 1;
    server s = {.loop = loop};
    client c = {.ok = 1};
    cio_datagram_protocol server_proto = {
        .connection_made = server_made,
        .datagram_received = server_received,
        .connection_lost = server_lost,
    };
    cio_datagram_protocol client_proto = {
        .connection_made = client_made,
        .datagram_received = client_received,
        .error_received = client_error,
        .connection_lost = client_lost,
    };
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    unsigned int len = sizeof addr;
    cio_datagram_transport *st, *ct;
    int rc = cio_create_datagram_endpoint(loop, &server_proto, &s, (struct sockaddr *)&addr, len,
                                          NULL, 0, 0, &st);
    if (rc == 0) rc = cio_datagram_transport_sockname(st, (struct sockaddr *)&addr, &len);
    c.server = st;
    if (rc == 0)
        rc = cio_create_datagram_endpoint(loop, &client_proto, &c, NULL, 0, (struct sockaddr *)&addr,
                                          len, 0, &ct);
    if (rc == 0) rc = cio_run_forever(loop);
    if (rc < 0) fprintf(stderr, "udp_echo: %s\n", cio_strerror(rc));
    printf("udp echo finished: %zu of %zu answered (%s)\n", c.answered, MESSAGES,
           c.ok && c.answered == MESSAGES ? "ok" : "FAILED");
    cio_loop_free(loop);
    return rc < 0 || !c.ok || c.answered != MESSAGES;
}
