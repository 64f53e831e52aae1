/* Error codes as text, and the loop's handler for errors nobody handled. */
#include <string.h>

#include "internal.h"

const char *cio_strerror(int err) {
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
    default: break;
    }
    if (err > CIO_EBASE && err < CIO_ELAST) return "Unknown cio error";
    /* strerror may return a shared buffer for unknown values; every known
     * errno value has a static string in glibc and musl. */
    return strerror(err);
}

void cio_loop_default_exception_handler(cio_loop *loop, const cio_error_context *ctx) {
    (void)loop;
    if (!ctx) return;
    fprintf(stderr, "cio: %s", ctx->message ? ctx->message : "unhandled error");
    if (ctx->error) fprintf(stderr, " (error %d: %s)", ctx->error, cio_strerror(ctx->error));
    if (ctx->future) {
        if (cio_future_is_task(ctx->future))
            fprintf(stderr, " task='%s'", cio_task_name(ctx->future));
        else
            fprintf(stderr, " future=%p", (void *)ctx->future);
    }
    fputc('\n', stderr);
}

int cio_loop_set_exception_handler(cio_loop *loop, cio_exception_handler_fn fn, void *arg) {
    if (!loop) return -EINVAL;
    loop->exception_handler = fn;
    loop->exception_handler_arg = arg;
    return 0;
}

void cio_loop_call_exception_handler(cio_loop *loop, const cio_error_context *ctx) {
    if (!loop || !ctx) return;
    if (loop->exception_handler)
        loop->exception_handler(loop, ctx, loop->exception_handler_arg);
    else
        cio_loop_default_exception_handler(loop, ctx);
}

void cio__report(cio_loop *loop, const char *message, int error, cio_future *fut) {
    cio_error_context ctx = {.message = message, .error = error, .future = fut};
    cio_loop_call_exception_handler(loop, &ctx);
}
