/*
 * Seed section "Callbacks": a done callback on the future of an I/O read.
 *
 * The "I/O read" is a real one: a task waits until a pipe is readable and
 * reads it; a timer callback writes to the other end 0.3 s later. A done
 * callback on the task prints the data once the read completes. As in
 * asyncio, done callbacks are never called inline: the loop calls them
 * (through call_soon), in the order they were added, also when added to a
 * future that is already done. The same callback then handles a read that
 * fails: the writer closes its end without writing anything.
 *
 * The Python it mirrors:
 *
 *     async def read_pipe(reader):
 *         data = await reader.read(64)
 *         if not data:
 *             raise EOFError("pipe closed before any data")
 *         return data
 *
 *     def on_read_done(fut):
 *         if fut.exception(): print("the read failed:", fut.exception())
 *         else:               print("the read completed:", fut.result())
 *
 *     task = asyncio.ensure_future(read_pipe(reader))
 *     task.add_done_callback(on_read_done)
 *     loop.run_until_complete(task)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cio.h>

static cio_loop *loop;
static double start;
static int callbacks_run;

static double elapsed(void) { return cio_loop_time(loop) - start; }

typedef struct pipe_read {
    int rfd, wfd;
    const char *message; /* what the writer writes, or NULL to close the pipe */
    char buf[64];
} pipe_read;

/* The coroutine: an I/O read that completes when the pipe has data. */
static void *read_pipe(void *arg) {
    pipe_read *p = arg;
    printf("  [%.2f s] reader: waiting for the pipe to be readable\n", elapsed());
    int rc = cio_wait_readable(p->rfd); /* await: the task sleeps meanwhile */
    if (rc < 0) return cio_raise(rc);
    ssize_t n = read(p->rfd, p->buf, sizeof p->buf - 1);
    int err = errno;
    /* The loop watched this descriptor: close it with cio_close, here
     * where the loop runs, so the loop forgets it (the next pipe may well
     * get the same number). */
    cio_close(p->rfd);
    p->rfd = -1;
    if (n < 0) return cio_raise(-err);
    printf("  [%.2f s] reader: read %zd bytes\n", elapsed(), n);
    if (n == 0) return cio_raise_msg(-ENODATA, "pipe closed before any data");
    p->buf[n] = '\0';
    return p->buf;
}

/* A plain timer callback playing the other side of the I/O. */
static void writer(cio_loop *l, void *arg) {
    (void)l;
    pipe_read *p = arg;
    if (p->message) {
        ssize_t n = write(p->wfd, p->message, strlen(p->message));
        printf("  [%.2f s] writer: wrote %zd bytes\n", elapsed(), n);
    } else {
        printf("  [%.2f s] writer: closes its end without writing\n", elapsed());
    }
    close(p->wfd);
    p->wfd = -1;
}

/* The done callback: it gets the future and reads its outcome. */
static void on_read_done(cio_future *fut, void *arg) {
    const char *who = arg;
    void *data = NULL;
    int rc = cio_future_result(fut, &data);
    callbacks_run++;
    if (rc < 0) {
        const char *msg = cio_future_error_message(fut);
        printf("  [%.2f s] %s: the read failed: %s (%s)\n", elapsed(), who, cio_strerror(rc),
               msg ? msg : "no message");
    } else {
        printf("  [%.2f s] %s: the read completed: \"%s\"\n", elapsed(), who, (char *)data);
    }
}

/* Runs one read: spawn the reader, add the callback, arm the writer, run. */
static int run_read(pipe_read *p, int expect_error) {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        perror("pipe2");
        return -1;
    }
    p->rfd = fds[0];
    p->wfd = fds[1];
    cio_task *task = NULL;
    int rc = cio_spawn(loop, read_pipe, p, &task);
    if (rc == 0) rc = cio_future_add_done_callback(task, on_read_done, "done callback");
    if (rc == 0) rc = cio_call_later(loop, 0.3, writer, p, NULL);
    if (rc < 0) {
        fprintf(stderr, "setting up the read: %s\n", cio_strerror(rc));
        cio_future_unref(task);
        close(p->rfd);
        close(p->wfd);
        return -1;
    }
    double t0 = cio_loop_time(loop);
    callbacks_run = 0;
    void *data = NULL;
    rc = cio_run_until_complete(loop, task, &data);
    printf("[%.2f s] run_until_complete returned after %.2f s: %s; callbacks run: %d\n",
           elapsed(), cio_loop_time(loop) - t0, rc < 0 ? cio_strerror(rc) : "a result",
           callbacks_run);
    int ok = (expect_error ? rc == -ENODATA : rc == 0) && callbacks_run == 1;

    /* A callback added to a future that is already done is scheduled, not
     * called inline: it runs on the next loop iteration. stop() before
     * run_forever() runs exactly one iteration. */
    if (!expect_error) {
        rc = cio_future_add_done_callback(task, on_read_done, "late callback");
        printf("[%.2f s] added a callback to the done task: callbacks run so far: %d\n",
               elapsed(), callbacks_run);
        if (rc < 0 || callbacks_run != 1) ok = 0;
        if (cio_loop_stop(loop) < 0 || cio_run_forever(loop) < 0) ok = 0;
        printf("[%.2f s] after one loop iteration: callbacks run: %d\n", elapsed(), callbacks_run);
        if (callbacks_run != 2) ok = 0;
    }
    cio_future_unref(task);
    return ok ? 0 : -1;
}

int main(void) {
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    start = cio_loop_time(loop);
    int status = 0;

    printf("[%.2f s] a read that completes:\n", elapsed());
    static pipe_read ok_read = {.message = "hello from the other end of the pipe"};
    if (run_read(&ok_read, 0) < 0) status = 1;

    printf("[%.2f s] a read that fails, same callback:\n", elapsed());
    static pipe_read failed_read = {.message = NULL};
    if (run_read(&failed_read, 1) < 0) status = 1;

    cio_loop_free(loop);
    return status;
}
