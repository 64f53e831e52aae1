/*
 * The network layer: descriptor waits and watchers, socket operations, and
 * later transports, streams, servers and DNS. Everything here submits
 * operations through the flow layer's cio__op_await.
 */
#ifndef CIO_NET_H
#define CIO_NET_H

#include "flow/flow.h"

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

#endif
