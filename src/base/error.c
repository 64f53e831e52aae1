/* Error codes as text (cio_strerror), and the application's range. */
#include <limits.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

int cio_error_is_user(int err) {
    if (err == INT_MIN) return 0;
    if (err < 0) err = -err;
    return err >= CIO_EUSER_FIRST && err <= CIO_EUSER_LAST;
}

/*
 * The text of an application code, "application error N". Each text is
 * made once, on first use, and kept for the life of the process in a
 * table with one atomic slot per code: the pointer returned stays valid
 * forever and is the same in every thread, so two threads (or two calls in
 * one printf) never overwrite each other's text, as a shared or even a
 * thread-local buffer would. Two threads that make the same text at once
 * race on the slot; the loser frees its copy. The table costs one pointer
 * per code in zero-initialised memory (80 KB of address space, touched only
 * where codes are used). Plain malloc, not cio__malloc: naming an error must
 * not consume a fault-injection countdown.
 */
static _Atomic(char *) user_texts[CIO_EUSER_LAST - CIO_EUSER_FIRST + 1];

static const char *user_text(int err) {
    _Atomic(char *) *slot = &user_texts[err - CIO_EUSER_FIRST];
    char *text = atomic_load_explicit(slot, memory_order_acquire);
    if (text) return text;
    char buf[40];
    int len = snprintf(buf, sizeof buf, "application error %d", err - CIO_EUSER_FIRST);
    char *made = malloc((size_t)len + 1);
    if (!made) return "application error";
    memcpy(made, buf, (size_t)len + 1);
    char *expected = NULL;
    if (atomic_compare_exchange_strong_explicit(slot, &expected, made, memory_order_acq_rel,
                                                memory_order_acquire))
        return made;
    free(made);
    return expected;
}

const char *cio_strerror(int err) {
    /* INT_MIN has no positive counterpart; it is no code anyway. */
    if (err == INT_MIN) return "Unknown error";
    if (err < 0) err = -err;
    if (cio_error_is_user(err)) return user_text(err);
    /* A resolver's code (net/dns.c): gai_strerror's text is static. */
    if (err > CIO_EAI_BASE && err <= CIO_EAI_LAST) return gai_strerror(CIO_EAI_BASE - err);
    if (err == CIO_EPOOLSHUTDOWN) return "Thread pool is shut down (Executor shutdown has been called)";
    if (err == CIO_EINTERRUPTED) return "Interrupted by SIGINT (KeyboardInterrupt)";
    switch (err) {
    case 0: return "Success";
    case CIO_ELOOPCLOSED: return "Event loop is closed";
    case CIO_ELOOPRUNNING: return "Event loop is already running";
    case CIO_ESTOPPED: return "Event loop stopped before Future completed";
    case CIO_EINVALSTATE: return "Invalid state (future pending, or already done)";
    case CIO_EWRONGLOOP: return "Object belongs to another event loop";
    case CIO_EWRONGTHREAD: return "Event loop used from a thread other than the one running it";
    case CIO_EGROUP: return "unhandled errors in a TaskGroup";
    case CIO_EGROUPDONE: return "TaskGroup is finished";
    case CIO_EGROUPABORTING: return "TaskGroup is shutting down";
    case CIO_EBROKEN: return "Barrier is broken";
    case CIO_ESHUTDOWN: return "Queue is shut down";
    case CIO_EFORKED: return "Event loop belongs to the parent process (used after fork)";
    case CIO_ELIMITOVERRUN: return "Separator is not found within the limit, or the data before it exceeds the limit";
    case CIO_EINCOMPLETE: return "End of stream before the expected data (incomplete read)";
    case CIO_ECLOSED: return "Stream is closed";
    default: break;
    }
    if (err > CIO_EBASE && err < CIO_ELAST) return "Unknown cio error";
    /* strerror may return a shared buffer for unknown values; every known
     * errno value has a static string in glibc and musl. */
    return strerror(err);
}
