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

struct cio__io {
    const cio__backend *backend;
    void *state;        /* the backend's own */
    size_t in_flight;   /* operations between submit and final completion */
    /* Why the loop does not run on io_uring ("" when it does). */
    char fallback_reason[160];
    /* File operations the backend runs in the kernel: CIO__FILE_OP_BIT of
     * each kind (0 on epoll; on io_uring the opcodes the probe found, less
     * those CIO_URING_DISABLE switches off). The others run on the thread
     * pool (src/net/file.c), which also counts the calls per path. */
    uint32_t file_ops;
    uint64_t file_calls_ring;
    uint64_t file_calls_pool;
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

/* True while any operation is in flight: the loop then polls on every
 * iteration, as asyncio's does. */
static inline bool cio__io_busy(const cio__io *io) {
    return io->in_flight != 0;
}

#endif
