/* Choosing and starting a loop's backend (io.h). */
#include "io.h"

#include <errno.h>
#include <string.h>

int cio__io_init(cio__io *io, const char *name) {
    io->in_flight = 0;
    io->state = NULL;
    if (name && *name && strcmp(name, "epoll") != 0) return -ENOTSUP;
    io->backend = &cio__backend_epoll;
    return io->backend->init(io);
}

void cio__io_fini(cio__io *io) {
    if (io->backend) io->backend->fini(io);
    io->backend = NULL;
}
