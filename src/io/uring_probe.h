/*
 * Whether io_uring can serve a loop, found out once per process (and again
 * after a fork, or when the switches change): which setup flags the kernel
 * takes, which opcodes it has, whether a multishot poll works. Never a
 * kernel version: only what the kernel answers.
 */
#ifndef CIO_IO_URING_PROBE_H
#define CIO_IO_URING_PROBE_H

#include <stdint.h>

/* The switches a test (or an operator working around a kernel bug) sets in
 * the environment; see docs/design.md, "The io_uring backend". */
typedef struct cio__uring_config {
    unsigned sq_entries;       /* CIO_URING_ENTRIES="sq,cq"; default 256,1024 */
    unsigned cq_entries;
    uint8_t no_multishot;      /* CIO_URING_DISABLE=multishot */
    uint8_t no_defer_taskrun;  /* CIO_URING_DISABLE=defer_taskrun */
    uint8_t no_single_issuer;  /* CIO_URING_DISABLE=single_issuer (implies no defer_taskrun) */
    /* The fast path for servers (docs/design.md, "The fast path"); each can
     * be switched off alone, or all four with CIO_URING_DISABLE=fast_path.
     * The names contain none of the older switches' names (they are found
     * with strstr). */
    uint8_t no_mshot_accept;   /* CIO_URING_DISABLE=mshot_accept: servers accept on readiness */
    uint8_t no_mshot_recv;     /* CIO_URING_DISABLE=mshot_recv: no buffer ring, transports recv() */
    uint8_t no_ring_fd;        /* CIO_URING_DISABLE=ring_fd: the ring fd is not registered */
    uint8_t no_ring_send;      /* CIO_URING_DISABLE=ring_send: transports send() per write */
    unsigned buf_count;        /* CIO_URING_BUFS="count,size"; default 1024,4096 */
    unsigned buf_size;
    /* File operations kept on the thread pool (CIO__FILE_OP_BIT of each
     * kind): CIO_URING_DISABLE=files for all of them, or file_read,
     * file_write, fsync, statx, openat, file_close one by one. */
    uint32_t no_file_ops;
} cio__uring_config;

typedef struct cio__uring_probe_result {
    cio__uring_config config;
    unsigned setup_flags;      /* the flags the kernel took (SINGLE_ISSUER, DEFER_TASKRUN) */
    uint32_t file_ops;         /* file operations whose opcode the kernel has, less the switched-off ones */
    char reason[160];          /* why io_uring cannot serve, when it cannot */
} cio__uring_probe_result;

/* 0 if io_uring can serve a loop (result says how), or the error: -ENOSYS,
 * -EPERM, -EACCES (setup refused: "not available"), -ENOTSUP (a flag,
 * feature or opcode missing, or switched off), or another -errno of a real
 * failure (-ENOMEM, -EMFILE). result->reason says why in one line. */
int cio__uring_probe(cio__uring_probe_result *result);

#endif
