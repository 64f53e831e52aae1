/*
 * The network layer: descriptor waits and watchers, socket operations, and
 * later transports, streams, servers and DNS. Everything here submits
 * operations through the flow layer's cio__op_await.
 */
#ifndef CIO_NET_H
#define CIO_NET_H

#include "flow/flow.h"
#include "sync/sync.h"
#include <sys/socket.h>
#include <sys/uio.h>

/* What every I/O call checks before it builds its operation. Each may
 * suspend, so each refuses to run outside a task even when the kernel
 * could complete it at once; and, as everywhere in cio (convention 2), bad
 * arguments are reported first: a NaN deadline is -EINVAL, a negative
 * descriptor -EBADF, and only then is a call outside a task -EPERM. */
static inline int cio__io_call_check(int fd, double when, int64_t *deadline) {
    int rc = cio__deadline(when, deadline);
    if (rc < 0) return rc;
    if (fd < 0) return -EBADF;
    return cio_current_task() ? 0 : -EPERM;
}

/* Every loop of this thread forgets fd (its operations end with -EBADF,
 * its watchers go), as cio_close does before it closes (fd.c). */
void cio__forget_fd(int fd);


/* ---- transports (transport.c) ------------------------------------------- */

/* The size of the loop's shared receive buffer: one read of a transport
 * takes at most this much. */
#define CIO__READ_BUFFER_SIZE 65536u
/* The loop's shared receive buffer, made by the first transport or
 * endpoint that needs it and freed with the loop: NULL if memory ran out. */
static inline void *cio__read_buffer(cio_loop *loop) {
    if (!loop->read_buffer) loop->read_buffer = cio__malloc(CIO__READ_BUFFER_SIZE);
    return loop->read_buffer;
}
/* asyncio's default write-buffer high-water mark (low: a quarter). */
#define CIO__WRITE_HIGH_DEFAULT 65536u

/* asyncio's set_write_buffer_limits(high, low) for both transports: a
 * negative value is None (high: 64 KiB, or 4 * low when low is given,
 * saturated; low: high / 4). 0, or -EINVAL if low > high. */
static inline int cio__write_limits(ssize_t high, ssize_t low, size_t *h, size_t *l) {
    *h = high >= 0                    ? (size_t)high
         : low < 0                    ? (size_t)CIO__WRITE_HIGH_DEFAULT
         : (size_t)low > SIZE_MAX / 4 ? SIZE_MAX
                                      : 4 * (size_t)low;
    *l = low >= 0 ? (size_t)low : *h / 4;
    return *l > *h ? -EINVAL : 0;
}

enum cio__transport_state {
    CIO__T_OPEN = 0,
    CIO__T_CLOSING,  /* close asked: flushing, then connection_lost */
    CIO__T_LOST      /* connection_lost is scheduled or ran */
};

/* A transport's write buffer: data[off, len) is still to be sent. */
struct cio__wbuf {
    size_t off, len, cap;
    char data[];
};

/* A transport that sends through the backend (io_uring, CIO__CAP_SEND_RING)
 * buffers its bytes in these instead: the one in flight, whose send owns
 * data[0, len) until its final completion, and at most one behind it
 * gathering what is written meanwhile (transport.c, "Sending through the
 * backend"). */
struct cio__wsend {
    cio__op op;               /* CIO__OP_SEND with CIO__OP_ALL of data[0, len) */
    cio_transport *t;         /* NULL once the transport is gone: the send frees its record */
    struct cio__wsend *next;  /* written since this one's send started (its op idle) */
    size_t len, cap;
    char data[];
};

struct cio_transport {
    cio__op watch;           /* the owner's edge watch on fd (CIO__OP_OWN) */
    cio__job read_job;       /* queued while readable and reading */
    cio__job write_job;      /* queued while writable and data is buffered */
    cio__job lost_job;       /* connection_lost, once */
    cio__link server_link;   /* in its server's list of connections */
    cio_loop *loop;
    const cio_protocol *proto;
    void *ctx;
    /* Set by the server that accepted the connection: told when the
     * transport is freed (the server counts its connections). */
    void *server;
    void (*on_gone)(cio_transport *t);
    /* Unsent bytes, allocated only while there are any: a plain buffer, or
     * for a transport that sends through the backend (ring_send) its chain
     * of sends. One pointer serves both, so an idle transport grows by
     * nothing. */
    union {
        struct cio__wbuf *wbuf;
        struct cio__wsend *wsend;
    };
    size_t high, low;
    int fd;
    int error;               /* what connection_lost will get */
    uint8_t state;
    uint8_t reading;         /* not paused by the program */
    uint8_t readable;        /* an edge came and no read has drained it yet */
    uint8_t writable;
    uint8_t eof_pending;     /* write_eof asked: shut down once flushed */
    uint8_t eof_written;
    uint8_t write_paused;    /* pause_writing was called, resume not yet */
    uint8_t closing_fd;      /* the lost job closes the descriptor */
    /* Internal: called when the loop's close frees the transport without
     * connection_lost (streams use it). */
    void (*on_release)(cio_transport *t, void *ctx);
    uint8_t peer_closed;     /* the peer shut down: read until end of stream */
    uint8_t fd_gone;         /* the program closed the descriptor (cio_close) */
    uint8_t closed_by_program; /* close or abort was called */
    uint8_t kind;            /* enum cio__transport_kind */
    /* The backend receives for this transport (io_uring's multishot receive
     * into the loop's buffer ring, CIO__OP_RECV_RING); after it ran out of
     * buffers, ring_fallback: recv() until the socket is empty, then the
     * backend receives again (transport.c). */
    uint8_t ring;
    uint8_t ring_fallback;
    /* Writes go to the backend as CIO__OP_SEND operations (io_uring,
     * CIO__CAP_SEND_RING): no send() per write (transport.c). */
    uint8_t ring_send;
    /* When set, the record is not the transport's to free: a stream
     * server's handler task holds it in its frame (stream.c), and release
     * calls this instead of freeing it. A hook, so that the transport
     * layer never calls up into the stream layer. */
    void (*embedded_released)(cio_transport *t);
};

/* What a transport's descriptor is: a socket (recv/send), or one end of a
 * pipe or a character device (read/write), which only reads or only
 * writes. */
enum cio__transport_kind { CIO__T_SOCKET = 0, CIO__T_READ_PIPE, CIO__T_WRITE_PIPE };

/* Makes a transport for the connected socket fd (non-blocking), owned
 * from now on: the loop closes it. The caller starts it at once with
 * cio__transport_start (nothing runs in between, so every transport that
 * reaches connection_lost saw connection_made). On failure fd is closed. */
int cio__transport_new(cio_loop *loop, int fd, const cio_protocol *proto, void *ctx,
                       cio_transport **out);
/* The same in a record the caller provides (a stream server's handler
 * task keeps it in its frame): when the transport is done with it,
 * released(t) is called instead of freeing it. On failure fd is closed. */
int cio__transport_init_embedded(cio_transport *t, cio_loop *loop, int fd,
                                 const cio_protocol *proto, void *ctx,
                                 void (*released)(cio_transport *t));
/* A stream server's way in (stream.c): server.c hands it each accepted
 * descriptor instead of making a transport, and the adopter registers the
 * transport it makes with cio__server_add_connection. */
typedef void (*cio__server_adopt_fn)(struct cio_server *s, cio_loop *loop, int fd, void *ctx);
void cio__server_set_adopt(struct cio_server *s, cio__server_adopt_fn fn);
void cio__server_add_connection(struct cio_server *s, cio_transport *t);
/* The same for one end of a pipe (or a character device), reading or
 * writing: fd is left open on failure (the caller's, until it succeeds). */
int cio__transport_new_pipe(cio_loop *loop, int fd, int writing, const cio_protocol *proto,
                            void *ctx, cio_transport **out);
/* Checks that fd may become a pipe transport of loop (a pipe, socket or
 * character device) and makes it non-blocking: 0 or -errno (pipe.c). */
int cio__pipe_adopt(cio_loop *loop, int fd);
/* A stream on one end of a pipe, reading or writing (stream.c): as
 * cio_open_read_pipe, which the process layer shares. */
int cio__stream_open_pipe(cio_loop *loop, int fd, int writing, cio_stream **out);
/* In a task: waits for a stream's end (or its close) without consuming
 * anything (0, or the wait's error), then takes all of it at once (the
 * length, *data a malloc'd copy or NULL; a closed stream gives what it had
 * buffered). Split so that a cancelled wait loses nothing. */
int cio__stream_wait_eof(cio_stream *s);
ssize_t cio__stream_take_all(cio_stream *s, void **data);
/* Marks a stream as a child process's: cio_stream_free refuses it
 * (-CIO_EINVALSTATE), and the process frees it with cio__stream_release
 * (-EBUSY while a task waits on it). */
void cio__stream_set_owned(cio_stream *s);
int cio__stream_release(cio_stream *s);
/* True while a task waits on the stream (a read, a drain or a close): what
 * makes cio__stream_release refuse. */
bool cio__stream_in_use(const cio_stream *s);
/* Calls connection_made and starts reading (after connect or accept). */
void cio__transport_start(cio_transport *t);
/* Runs fn(arg) when the server is freed (a stream server's handler record). */
void cio__server_set_cleanup(struct cio_server *s, void (*fn)(void *), void *arg);

/* ---- addresses (address.c) ---------------------------------------------- */

struct addrinfo;
/* Resolves host:port for a stream socket (passive: for bind, host may be
 * NULL). Numeric addresses need no lookup. Returns 0 or a negative
 * cio code for a resolver error. */
int cio__resolve(const char *host, const char *port, int passive, struct addrinfo **res);
/* Fills a sockaddr_un for path ('@' first: abstract). -EINVAL if too long. */
struct sockaddr_un;
int cio__unix_address(const char *path, struct sockaddr_un *addr, unsigned int *len);
/* Removes path if it is a socket file (asyncio's cleanup before bind). */
void cio__remove_stale_socket(const char *path);

/* The cio code for a resolver's EAI_* result (dns.c): 0, -CIO_EAI(eai),
 * -ENOMEM for EAI_MEMORY, or -saved_errno for EAI_SYSTEM. */
int cio__eai_error(int eai, int saved_errno);

#endif
