/* Error codes as text (cio_strerror). */
#include <limits.h>
#include <string.h>

#include "base.h"

const char *cio_strerror(int err) {
    /* INT_MIN has no positive counterpart: negating it is undefined. */
    if (err == INT_MIN) return "Unknown error";
    if (err < 0) err = -err;
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
    default: break;
    }
    if (err > CIO_EBASE && err < CIO_ELAST) return "Unknown cio error";
    /* strerror may return a shared buffer for unknown values; every known
     * errno value has a static string in glibc and musl. */
    return strerror(err);
}
