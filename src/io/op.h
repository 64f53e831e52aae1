/*
 * An I/O operation: what to do, on which descriptor, with which buffers,
 * and, once it completes, its result.
 *
 * An operation record lives wherever its owner lives: a task that waits for
 * it keeps it on its own stack, a descriptor watcher keeps it inside its
 * own record. So submitting I/O allocates nothing. The backend holds the
 * record from submit until its final completion and the owner must keep it
 * alive that long, even when the owner was cancelled meanwhile: that is
 * what lets a completion-based backend (io_uring) write into the buffers
 * until the kernel is done with them.
 */
#ifndef CIO_IO_OP_H
#define CIO_IO_OP_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "base/base.h"

struct statx;

typedef enum cio__op_kind {
    CIO__OP_POLL = 1, /* wait for readiness; the result is the events seen */
    CIO__OP_RECV,
    CIO__OP_SEND,
    CIO__OP_RECVMSG,
    CIO__OP_SENDMSG,
    CIO__OP_ACCEPT,
    CIO__OP_CONNECT,
    CIO__OP_READ,
    CIO__OP_WRITE,
    CIO__OP_CLOSE,    /* cancel the descriptor's operations, forget it, close it */
    /* File operations (src/net/file.c). A backend that runs them in the
     * kernel (io_uring, where the probe found the opcode) says so in
     * cio__io.file_ops; any other backend, or one that will not take this
     * descriptor (not a regular file), completes them at once with
     * -EOPNOTSUPP and the caller runs the call on the thread pool. They
     * keep no per-direction order: several reads of one file at different
     * offsets run at once, as on the pool. */
    CIO__OP_FSYNC,      /* u.file.datasync */
    CIO__OP_STATX,      /* fd: the dirfd; u.path */
    CIO__OP_OPENAT,     /* fd: the dirfd; u.path */
    CIO__OP_FILE_READ,  /* pread at u.file.offset (-1: the file position) */
    CIO__OP_FILE_WRITE, /* pwrite, likewise */
    CIO__OP_FILE_CLOSE  /* close(2) of a descriptor the loops forgot already */
} cio__op_kind;

/* The bit of a file operation kind in cio__io.file_ops. */
#define CIO__FILE_OP_BIT(kind) (1u << (kind))

/* Readiness bits for CIO__OP_POLL, in and out (the values of POLLIN and
 * POLLOUT, so they also read as poll(2) events). */
#define CIO__POLL_IN 0x001u
#define CIO__POLL_OUT 0x004u
/* Reported to an owner (CIO__OP_OWN): the peer shut down its side, or the
 * descriptor hung up. After it, a short read no longer means the socket is
 * empty: the end of stream is still to be read. (POLLRDHUP's value.) */
#define CIO__POLL_RDHUP 0x2000u
/* Reported to an owner that receives through the backend (CIO__OP_RECV_RING):
 * received chunks wait in the backend for the owner, or the backend's
 * receiving ended (see cio__io_recv_peek). Takes the place of CIO__POLL_IN. */
#define CIO__POLL_DATA 0x4000u

enum cio__op_state {
    CIO__OP_IDLE = 0,
    CIO__OP_IN_FLIGHT, /* submitted; the backend holds the record */
    CIO__OP_DONE       /* final completion happened; result is valid */
};

/* A multishot operation (today: a persistent readiness watch) completes
 * once per readiness while it stays in flight, and finally once more when
 * it is cancelled. */
#define CIO__OP_MULTISHOT 0x01u
/* A send that completes only once the whole buffer went out (or failed),
 * and keeps its place at the head of its queue meanwhile: two tasks'
 * sendall calls on one socket never interleave. */
#define CIO__OP_ALL 0x02u

/* With CIO__OP_MULTISHOT on a CIO__OP_POLL: the submitter takes the
 * descriptor over (a transport or server socket that only the loop sees).
 * The backend may then keep one registration for the descriptor's whole
 * life and report every change of readiness (both directions, in result)
 * through this op, until a CLOSE of the descriptor or a cancel of the op.
 * Readiness watchers on an owned descriptor are refused (-EBUSY). */
#define CIO__OP_OWN 0x04u
/* With CIO__OP_OWN on a connected stream socket, when the backend has
 * CIO__CAP_RECV_RING (io.h): the backend receives for the owner (io_uring:
 * a multishot recv into the loop's provided-buffer ring) and keeps the
 * chunks, in order, until the owner takes them (cio__io_recv_peek/pop); the
 * owner hears CIO__POLL_DATA instead of CIO__POLL_IN. */
#define CIO__OP_RECV_RING 0x08u
/* With CIO__OP_OWN, when the backend has CIO__CAP_SEND_RING: the owner
 * sends through CIO__OP_SEND operations only, which wait for room in the
 * socket themselves, so it needs no reports of writability (io_uring: its
 * multishot poll leaves POLLOUT out). It may still hear CIO__POLL_OUT. */
#define CIO__OP_SEND_RING 0x10u
typedef struct cio__op cio__op;

/* Called by the backend, from the loop's thread, for every completion of
 * op: once for an ordinary operation (state is then CIO__OP_DONE), once per
 * readiness plus a final one for a multishot operation. It must not submit
 * or cancel operations itself: it only records the result and schedules
 * whoever waits (a task wake-up, a callback job). */
typedef void (*cio__op_done_fn)(cio__op *op);

struct cio__op {
    cio__link link;        /* the backend's: in a queue while in flight */
    cio__op_done_fn done;
    void *owner;           /* for done(): the task's wait record, the watcher */
    int fd;
    uint8_t kind;
    uint8_t state;
    uint8_t flags;
    uint8_t stage;         /* the backend's: e.g. a connect already started */
    ssize_t result;        /* >= 0, or -errno; valid once done */
    size_t progress;       /* the backend's: bytes of a CIO__OP_ALL send so far */
    union {
        struct { void *buf; size_t len; int flags; } rw;      /* recv, send, read, write */
        struct { struct msghdr *msg; int flags; } msg;        /* recvmsg, sendmsg */
        struct { struct sockaddr *addr; socklen_t *addrlen; } accept;
        struct { const struct sockaddr *addr; socklen_t addrlen; } connect;
        struct {
            uint32_t events;                                  /* CIO__POLL_IN or _OUT */
            /* The backend's, for CIO__OP_RECV_RING: the received chunks
             * (a chain of buffer ids), and how receiving stands. */
            uint32_t head, tail, count;
            int32_t recv_end;   /* receiving stopped by itself: 0 end of stream, or -errno */
            uint8_t recv_want;  /* the owner wants to receive */
            uint8_t recv_ended; /* recv_end is valid; cleared by cio__io_recv_arm */
            uint8_t recv_cancel;/* a cancel of the receive request is under way */
            uint8_t front_busy; /* the front chunk is lent to the owner (peek) */
        } poll;
        struct { int keep_fd; } close;                        /* forget only, do not close */
        /* File read, write, fsync. len fits the kernel's largest transfer
         * (file.c clamps it), which keeps the union at its size. */
        struct { void *buf; unsigned len; unsigned datasync; int64_t offset; } file;
        struct { const char *path; int flags; unsigned mode; struct statx *stx; } path; /* openat, statx; mode is statx's mask */
    } u;
};

static inline void cio__op_init(cio__op *op, uint8_t kind, int fd) {
    cio__list_init(&op->link);
    op->done = NULL;
    op->owner = NULL;
    op->fd = fd;
    op->kind = kind;
    op->state = CIO__OP_IDLE;
    op->flags = 0;
    op->stage = 0;
    op->result = 0;
    op->progress = 0;
}

/* The most one system call moves: Linux's MAX_RW_COUNT, to which read(2),
 * write(2), send(2) and recv(2) cut a longer request themselves. The ring's
 * length field has 32 bits, so a request of 4 GiB or more must be cut
 * before it is submitted, or it would wrap (a recv into 4 GiB would ask
 * for 0 bytes and read as the end of stream). */
#define CIO__MAX_RW_CHUNK ((size_t)0x7ffff000)
static inline unsigned cio__rw_chunk(size_t len) {
    return (unsigned)(len < CIO__MAX_RW_CHUNK ? len : CIO__MAX_RW_CHUNK);
}

/* Where the rest of a send starts (no arithmetic on a NULL buffer of an
 * empty send). */
static inline void *cio__op_send_at(const cio__op *op) {
    return op->progress ? (char *)op->u.rw.buf + op->progress : op->u.rw.buf;
}

#endif
