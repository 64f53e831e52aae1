/*
 * The backend contract: how the loop hands operations to the kernel.
 *
 * A backend is a static const table chosen when the loop is created. It
 * owns everything that touches the kernel's I/O interface (for epoll: the
 * epoll descriptor, the wake eventfd and the per-descriptor table); the loop
 * owns timers, the ready queue and cancellation.
 *
 * The contract, which every backend keeps:
 *  - submit() either completes the operation at once (state CIO__OP_DONE on
 *    return, done() not called) or takes it in flight. An operation in
 *    flight completes exactly once more, through done(), from poll(),
 *    cancel(), a CLOSE of its descriptor, or drain().
 *  - Operations on one descriptor and direction complete in submission
 *    order (FIFO): several tasks may read, write or wait on one descriptor.
 *  - cancel() asks an operation in flight to end early. Its final
 *    completion may come at once (epoll) or from a later poll (io_uring),
 *    and carries -ECANCELED, or the real result if the operation finished
 *    first: bytes that arrived are returned, never dropped.
 *  - Until its final completion the backend may use the record and its
 *    buffers; afterwards it never touches them again.
 *  - drain() (loop close) ends every operation in flight, each with its
 *    final completion, before it returns.
 */
#ifndef CIO_IO_BACKEND_H
#define CIO_IO_BACKEND_H

#include "op.h"

typedef struct cio__io cio__io;

typedef struct cio__backend {
    const char *name;
    int (*init)(cio__io *io);
    void (*fini)(cio__io *io);
    void (*submit)(cio__io *io, cio__op *op);
    /* reason: the result an operation cancelled in time gets (-ECANCELED). */
    void (*cancel)(cio__io *io, cio__op *op, int reason);
    /* Waits for completions at most timeout_ns (-1: no limit, 0: do not
     * block) and delivers them. Returns how many events it handled, or
     * -errno (the loop goes on after -EINTR). */
    int (*poll)(cio__io *io, int64_t timeout_ns);
    /* Makes a poll blocked in another thread return. Thread-safe, and
     * async-signal-safe: cio's signal handler calls it (core/signal.c). */
    void (*wake)(cio__io *io);
    void (*drain)(cio__io *io);
    /* The fast path (io_uring only; NULL elsewhere, and never called unless
     * the backend announced CIO__CAP_RECV_RING): see io.h. */
    size_t (*recv_peek)(cio__io *io, cio__op *op, const void **data);
    void (*recv_pop)(cio__io *io, cio__op *op);
    void (*recv_arm)(cio__io *io, cio__op *op, int on);
    /* Socket-level ownership (optional: NULL on a backend that needs no
     * registration per wait, such as io_uring; see cio__io_hold in io.h).
     * hold() keeps fd registered for as long as the program owns it;
     * fresh() hears that the kernel just gave out fd's number (an accept),
     * so whatever the backend held for an older file of that number is
     * stale. */
    int (*hold)(cio__io *io, int fd);
    void (*fresh)(cio__io *io, int fd);
    /* 0 if fd can be polled, -EPERM if not, or -errno: for a backend whose
     * operations do not show it (io_uring); NULL where registering does
     * (epoll answers -EPERM itself). */
    int (*pollable)(cio__io *io, int fd);
} cio__backend;

extern const cio__backend cio__backend_epoll;
#if CIO__HAVE_URING
extern const cio__backend cio__backend_uring;
#endif

#endif
