/*
 * The loop's handler for errors nobody handled (asyncio's exception
 * handler), and cio__report, through which every such error reaches it.
 */
#include <stdio.h>

#include "future.h"

void cio_loop_default_exception_handler(cio_loop *loop, const cio_error_context *ctx) {
    (void)loop;
    if (!ctx) return;
    fprintf(stderr, "cio: %s", ctx->message ? ctx->message : "unhandled error");
    if (ctx->error) fprintf(stderr, " (error %d: %s)", ctx->error, cio_strerror(ctx->error));
    if (ctx->future) {
        /* The future's kind names it (a task by its name): this room sits
         * below tasks, so it asks through the kind's table. */
        const char *name = ctx->future->ops && ctx->future->ops->name
                               ? ctx->future->ops->name(ctx->future)
                               : NULL;
        if (name) {
            /* The name escaped as every report shows it (base/name_text.h);
             * a name longer than the room is cut at a whole character. */
            char shown[256];
            cio__name_text(shown, sizeof shown, name);
            fprintf(stderr, " task='%s'", shown);
        } else {
            fprintf(stderr, " future=%p", (void *)ctx->future);
        }
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
    /* An orphaned future (its loop closed) reports through the default
     * handler: its loop may be freed already. */
    if (!loop)
        cio_loop_default_exception_handler(NULL, &ctx);
    else
        cio_loop_call_exception_handler(loop, &ctx);
}
