/*
 * The I/O layer: operations, backends and the state a loop keeps for them.
 * It knows the kernel and nothing of tasks or loops; the core drives it
 * (one poll per iteration) and the layers above submit operations and wait
 * for their completion (src/flow/await_op.c).
 */
#ifndef CIO_IO_H
#define CIO_IO_H

#include "backend.h"
#include "op.h"

#include <stdbool.h>

/* What a backend can do beyond the contract (cio__io.caps). */
/* An owned listening socket may be submitted as CIO__OP_ACCEPT with
 * CIO__OP_MULTISHOT|CIO__OP_OWN: every accepted descriptor is reported
 * (result >= 0, the operation still in flight) and belongs to the owner
 * from then on; the final completion is the close's or the loop's, or an
 * error that stopped accepting (the owner may submit again later). */
#define CIO__CAP_ACCEPT_MULTI 0x01u
/* Owned stream sockets may receive through the backend (CIO__OP_RECV_RING). */
#define CIO__CAP_RECV_RING 0x02u
/* Sends are cheap to hand to the backend (io_uring: an SQE that the loop's
 * next io_uring_enter submits with everything else), so a transport sends
 * through CIO__OP_SEND operations instead of a send() per write. */
#define CIO__CAP_SEND_RING 0x04u

/* Counters the tests and the benchmarks read (io_uring; zero on epoll). */
typedef struct cio__io_counters {
    uint64_t enters;         /* io_uring_enter system calls cio made */
    uint64_t cqes;           /* completions handled */
    uint64_t overflows;      /* times the CQ had overflowed (IORING_SQ_CQ_OVERFLOW seen) */
    uint64_t enobufs;        /* multishot receives stopped for want of a buffer */
    uint64_t accepts;        /* connections a multishot accept reported */
} cio__io_counters;

struct cio__io {
    const cio__backend *backend;
    void *state;        /* the backend's own */
    size_t in_flight;   /* operations between submit and final completion */
    unsigned caps;      /* CIO__CAP_*, set by the backend's init */
    cio__io_counters counters;
    /* Why the loop does not run on io_uring ("" when it does). */
    char fallback_reason[160];
    /* File operations the backend runs in the kernel: CIO__FILE_OP_BIT of
     * each kind (0 on epoll; on io_uring the opcodes the probe found, less
     * those CIO_URING_DISABLE switches off). The others run on the thread
     * pool (src/net/file.c), which also counts the calls per path. */
    uint32_t file_ops;
    uint64_t file_calls_ring;
    uint64_t file_calls_pool;
    /* The file calls on a descriptor now on the thread pool, for
     * cio_file_close to wait for (src/net/file.c keeps the list; its
     * records live on the calling tasks' stacks). */
    cio__link file_calls_on_pool;
};

/* Chooses a backend by name ("epoll", "uring"; NULL, "" or "auto" for the
 * default, see io.c) and starts it: -ENOTSUP for an unknown name, or for
 * "uring" the probe's error (-ENOSYS, -EPERM, -EACCES: refused by the
 * kernel; -ENOTSUP: a feature missing; -ENOMEM, -EMFILE...). */
int cio__io_init(cio__io *io, const char *name);
void cio__io_fini(cio__io *io);

static inline void cio__io_submit(cio__io *io, cio__op *op) {
    io->backend->submit(io, op);
}

static inline void cio__io_cancel(cio__io *io, cio__op *op, int reason) {
    if (op->state == CIO__OP_IN_FLIGHT) io->backend->cancel(io, op, reason);
}

/* The owner of a CIO__OP_RECV_RING operation takes its received chunks in
 * order: peek gives the first (its length, 0 when none waits; *data valid
 * until the pop) and pop hands its buffer back to the backend. When none
 * waits and op->u.poll.recv_ended is set, receiving stopped by itself with
 * op->u.poll.recv_end: 0 (end of stream), -ENOBUFS (no buffer was free: the
 * data is still in the socket, for the owner to recv() itself), or another
 * -errno; arm(on) starts receiving again. arm(0) stops receiving for a
 * while (a paused reader): chunks already received stay queued. */
static inline size_t cio__io_recv_peek(cio__io *io, cio__op *op, const void **data) {
    return io->backend->recv_peek(io, op, data);
}
static inline void cio__io_recv_pop(cio__io *io, cio__op *op) {
    io->backend->recv_pop(io, op);
}
static inline void cio__io_recv_arm(cio__io *io, cio__op *op, int on) {
    io->backend->recv_arm(io, op, on);
}

/* The program hands fd over to the loop (cio_sock_adopt): from now on it
 * closes fd only through cio_close, so the backend may keep one
 * registration for fd's whole life instead of arming it per wait. Returns
 * 0, -EBADF (fd is not open), -EBUSY (held already, or a watcher or a
 * transport has it), -EPERM (fd cannot be polled) or -ENOMEM. A backend
 * without hold() only checks that fd is open (io.c). */
int cio__io_hold(cio__io *io, int fd);
/* 0 if fd can be polled (epoll would take it), -EPERM if not (a regular
 * file, /dev/null), or -errno: for the calls that promise epoll's answer
 * on every backend (pipe transports, add_reader). */
int cio__io_pollable(cio__io *io, int fd);
/* The kernel just gave out fd (an accept through the loop): see
 * cio__backend.fresh. */
static inline void cio__io_fresh(cio__io *io, int fd) {
    if (io->backend->fresh) io->backend->fresh(io, fd);
}

/* True while any operation is in flight: the loop then polls on every
 * iteration, as asyncio's does. */
static inline bool cio__io_busy(const cio__io *io) {
    return io->in_flight != 0;
}

#endif
