/*
 * The io_uring probe (uring_probe.h).
 *
 * Step by step, each answer taken from the kernel itself:
 *   1. The switches (CIO_URING_DISABLE, CIO_URING_ENTRIES), read with
 *      secure_getenv. "multishot" switched off makes io_uring unusable in
 *      this version: owned descriptors need the edges of a multishot poll.
 *   2. io_uring_setup with SINGLE_ISSUER|DEFER_TASKRUN, then SINGLE_ISSUER
 *      alone, then no flags: EINVAL means "not this flag", and the next set
 *      is tried. ENOSYS, EPERM and EACCES mean "not available" (no io_uring
 *      in the kernel, kernel.io_uring_disabled, a seccomp filter); EINVAL
 *      for every set too. Other errors (ENOMEM, EMFILE) are real failures.
 *   3. The feature bits the backend relies on: NODROP (no completion is ever
 *      lost), EXT_ARG (wait with a timeout in one io_uring_enter),
 *      FAST_POLL and RW_CUR_POS (read and write at the current position).
 *   4. The opcodes the backend submits, from IORING_REGISTER_PROBE.
 *   5. A multishot poll on an eventfd must report twice with
 *      IORING_CQE_F_MORE: the one feature without a bit or an opcode.
 *   6. The file opcodes (READ, WRITE, FSYNC, STATX, OPENAT, CLOSE), each
 *      optional: a missing one, or one switched off, leaves that file call
 *      on the thread pool (file_ops), and io_uring still serves the loop.
 * The answer is kept for the process; a fork (another pid) or other
 * switches probe again.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/base.h"
#include "op.h"
#include "uring_probe.h"
#include "uring_remap.h"

#ifdef RING_TSAN
char cio__uring_remap_order;
#endif

/* Step 6: each file operation, its opcode, and its name in
 * CIO_URING_DISABLE. */
static const struct {
    int op;
    uint8_t kind;
    const char *name;
} file_opcodes[] = {
    {IORING_OP_READ, CIO__OP_FILE_READ, "file_read"},
    {IORING_OP_WRITE, CIO__OP_FILE_WRITE, "file_write"},
    {IORING_OP_FSYNC, CIO__OP_FSYNC, "fsync"},
    {IORING_OP_STATX, CIO__OP_STATX, "statx"},
    {IORING_OP_OPENAT, CIO__OP_OPENAT, "openat"},
    {IORING_OP_CLOSE, CIO__OP_FILE_CLOSE, "file_close"},
};

static void read_config(cio__uring_config *c) {
    memset(c, 0, sizeof *c);
    c->sq_entries = 256;
    c->cq_entries = 1024;
    const char *s = secure_getenv("CIO_URING_ENTRIES");
    if (s && *s) {
        char *end;
        unsigned long sq = strtoul(s, &end, 10), cq = 0;
        if (*end == ',') cq = strtoul(end + 1, &end, 10);
        if (sq >= 1 && sq <= 32768) c->sq_entries = (unsigned)sq;
        c->cq_entries = cq >= c->sq_entries && cq <= 65536 ? (unsigned)cq : 4 * c->sq_entries;
    }
    const char *d = secure_getenv("CIO_URING_DISABLE");
    if (d) {
        c->no_multishot = strstr(d, "multishot") != NULL;
        c->no_defer_taskrun = strstr(d, "defer_taskrun") != NULL;
        c->no_single_issuer = strstr(d, "single_issuer") != NULL;
        if (c->no_single_issuer) c->no_defer_taskrun = 1;
        int fast = strstr(d, "fast_path") != NULL;
        c->no_mshot_accept = fast || strstr(d, "mshot_accept") != NULL;
        c->no_mshot_recv = fast || strstr(d, "mshot_recv") != NULL;
        c->no_ring_fd = fast || strstr(d, "ring_fd") != NULL;
        c->no_ring_send = fast || strstr(d, "ring_send") != NULL;
        for (size_t i = 0; i < sizeof file_opcodes / sizeof file_opcodes[0]; i++)
            if (strstr(d, "files") || strstr(d, file_opcodes[i].name))
                c->no_file_ops |= CIO__FILE_OP_BIT(file_opcodes[i].kind);
    }
    /* The provided-buffer ring: a power of two of buffers (the kernel's
     * rule), each at least 64 bytes. */
    c->buf_count = 1024;
    c->buf_size = 4096;
    const char *b = secure_getenv("CIO_URING_BUFS");
    if (b && *b) {
        char *end;
        unsigned long count = strtoul(b, &end, 10), size = 0;
        if (*end == ',') size = strtoul(end + 1, &end, 10);
        if (count >= 1 && count <= 32768 && (count & (count - 1)) == 0) c->buf_count = (unsigned)count;
        if (size >= 64 && size <= (1u << 20)) c->buf_size = (unsigned)size;
    }
}

static const char *setup_error(int err) {
    switch (err) {
    case ENOSYS: return "io_uring_setup: ENOSYS (no io_uring in this kernel, or a sandbox hides it)";
    case EPERM:
        return "io_uring_setup: EPERM (kernel.io_uring_disabled, or a seccomp filter such as "
               "a container's default profile)";
    case EACCES: return "io_uring_setup: EACCES (refused by a security policy)";
    case EINVAL: return "io_uring_setup: EINVAL for every set of flags tried";
    default: return NULL;
    }
}

static int try_setup(struct io_uring *ring, unsigned flags) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags;
    int rc = io_uring_queue_init_params(4, ring, &p);
    if (rc == 0) RING_MAPPED();
    return rc;
}

/* Step 5 on a ring that is set up. 0, or -ENOTSUP with the reason. */
static int check_multishot_poll(struct io_uring *ring, cio__uring_probe_result *r) {
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) {
        int err = -errno;
        snprintf(r->reason, sizeof r->reason, "eventfd: %s", strerror(errno));
        return err;
    }
    int reports = 0, rc = 0;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_poll_multishot(sqe, efd, POLLIN);
    io_uring_sqe_set_data64(sqe, 1);
    for (int round = 0; round < 2 && rc == 0; round++) {
        uint64_t one = 1;
        if (write(efd, &one, sizeof one) != sizeof one) break;
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait(ring, 1);
        if (rc < 0) break;
        rc = io_uring_peek_cqe(ring, &cqe);
        if (rc < 0) break;
        if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_MORE)) rc = cqe->res < 0 ? cqe->res : -ENOTSUP;
        else reports++;
        io_uring_cqe_seen(ring, cqe);
        uint64_t count;
        if (read(efd, &count, sizeof count) < 0) break;
    }
    close(efd);
    if (reports == 2) return 0;
    snprintf(r->reason, sizeof r->reason, "multishot poll does not work (%s)",
             rc < 0 ? strerror(-rc) : "no second report");
    return -ENOTSUP;
}

static int probe(cio__uring_probe_result *r) {
    cio__uring_config *c = &r->config;
    if (c->no_multishot) {
        snprintf(r->reason, sizeof r->reason,
                 "multishot switched off (CIO_URING_DISABLE): owned descriptors need a multishot poll");
        return -ENOTSUP;
    }
    unsigned sets[3], n = 0;
    if (!c->no_defer_taskrun) sets[n++] = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (!c->no_single_issuer) sets[n++] = IORING_SETUP_SINGLE_ISSUER;
    sets[n++] = 0;
    struct io_uring ring;
    int rc = -EINVAL;
    unsigned i;
    for (i = 0; i < n; i++) {
        rc = try_setup(&ring, sets[i]);
        if (rc != -EINVAL) break;
    }
    if (rc < 0) {
        const char *why = setup_error(-rc);
        if (why)
            snprintf(r->reason, sizeof r->reason, "%s", why);
        else
            snprintf(r->reason, sizeof r->reason, "io_uring_setup: %s", strerror(-rc));
        return rc == -EINVAL ? -ENOTSUP : rc;
    }
    r->setup_flags = sets[i];
    static const struct { unsigned bit; const char *name; } features[] = {
        {IORING_FEAT_NODROP, "NODROP"}, {IORING_FEAT_EXT_ARG, "EXT_ARG"},
        {IORING_FEAT_FAST_POLL, "FAST_POLL"}, {IORING_FEAT_RW_CUR_POS, "RW_CUR_POS"}};
    rc = 0;
    for (size_t f = 0; f < sizeof features / sizeof features[0]; f++) {
        if (!(ring.features & features[f].bit)) {
            snprintf(r->reason, sizeof r->reason, "the kernel lacks the io_uring feature %s",
                     features[f].name);
            rc = -ENOTSUP;
            break;
        }
    }
    if (rc == 0) {
        static const struct { int op; const char *name; } ops[] = {
            {IORING_OP_POLL_ADD, "POLL_ADD"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
            {IORING_OP_RECV, "RECV"}, {IORING_OP_SEND, "SEND"},
            {IORING_OP_RECVMSG, "RECVMSG"}, {IORING_OP_SENDMSG, "SENDMSG"},
            {IORING_OP_ACCEPT, "ACCEPT"}, {IORING_OP_CONNECT, "CONNECT"},
            {IORING_OP_READ, "READ"}, {IORING_OP_WRITE, "WRITE"}, {IORING_OP_NOP, "NOP"}};
        struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
        if (!p) {
            snprintf(r->reason, sizeof r->reason, "IORING_REGISTER_PROBE failed");
            rc = -ENOTSUP;
        } else {
            for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
                if (!io_uring_opcode_supported(p, ops[o].op)) {
                    snprintf(r->reason, sizeof r->reason, "the kernel lacks the io_uring opcode %s",
                             ops[o].name);
                    rc = -ENOTSUP;
                    break;
                }
            }
            r->file_ops = 0;
            for (size_t o = 0; o < sizeof file_opcodes / sizeof file_opcodes[0]; o++)
                if (io_uring_opcode_supported(p, file_opcodes[o].op))
                    r->file_ops |= CIO__FILE_OP_BIT(file_opcodes[o].kind);
            r->file_ops &= ~c->no_file_ops;
            io_uring_free_probe(p);
        }
    }
    if (rc == 0) rc = check_multishot_poll(&ring, r);
    RING_UNMAPPING();
    io_uring_queue_exit(&ring);
    return rc;
}

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cio__uring_probe_result cached;
static int cached_rc;
static pid_t cached_pid;

int cio__uring_probe(cio__uring_probe_result *result) {
    cio__uring_probe_result fresh;
    memset(&fresh, 0, sizeof fresh);
    read_config(&fresh.config);
    pthread_mutex_lock(&cache_lock);
    pid_t pid = getpid();
    if (cached_pid != pid || memcmp(&cached.config, &fresh.config, sizeof fresh.config) != 0) {
        cached_rc = probe(&fresh);
        cached = fresh;
        /* A real failure (out of memory or descriptors) is not remembered:
         * the next loop asks again. */
        cached_pid = cached_rc == 0 || cached_rc == -ENOSYS || cached_rc == -EPERM ||
                             cached_rc == -EACCES || cached_rc == -ENOTSUP
                         ? pid
                         : 0;
    }
    *result = cached;
    int rc = cached_rc;
    pthread_mutex_unlock(&cache_lock);
    return rc;
}
