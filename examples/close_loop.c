/*
 * Seed section "Closing the Loop".
 *
 * A loop can run again and again as long as it is not closed. Closing it
 * drops what is still scheduled and releases everything it holds; from then
 * on every call on it fails with asyncio's "Event loop is closed"
 * (-CIO_ELOOPCLOSED) instead of touching freed memory. Closing twice is
 * harmless. The loop object itself is freed by cio_loop_free().
 *
 * The Python it mirrors:
 *
 *     loop.run_until_complete(do_some_work(0.2))
 *     loop.run_until_complete(do_some_work(0.3))    # the same loop again
 *     loop.call_later(10, never_runs)
 *     loop.close()
 *     loop.run_until_complete(do_some_work(0.2))    # RuntimeError: Event loop is closed
 */
#include <stdint.h>
#include <stdio.h>

#include <cio.h>

static cio_loop *loop;
static double start;
static int never_ran = 1;

static double elapsed(void) { return cio_loop_time(loop) - start; }

static void *do_some_work(void *arg) {
    int ms = (int)(intptr_t)arg;
    printf("  [%.2f s] Waiting %.1f s\n", elapsed(), ms / 1000.0);
    int rc = cio_sleep(ms / 1000.0);
    if (rc < 0) return cio_raise(rc);
    printf("  [%.2f s] Done %.1f s\n", elapsed(), ms / 1000.0);
    return (void *)(intptr_t)ms;
}

static void never_runs(cio_loop *l, void *arg) {
    (void)l;
    (void)arg;
    never_ran = 0;
    printf("  this callback should never run\n");
}

static void nothing(cio_loop *l, void *arg) {
    (void)l;
    (void)arg;
}

/* loop.run_until_complete(do_some_work(x)) */
static int run_work(int ms) {
    cio_task *task = NULL;
    int rc = cio_spawn(loop, do_some_work, (void *)(intptr_t)ms, &task);
    if (rc == 0) rc = cio_run_until_complete(loop, task, NULL);
    cio_future_unref(task);
    return rc;
}

/* Prints the outcome of one call on the closed loop; 1 if it was refused
 * with "Event loop is closed". */
static int refused(const char *what, int rc) {
    printf("  %-32s -> %d: %s\n", what, rc, cio_strerror(rc));
    return rc == -CIO_ELOOPCLOSED;
}

int main(void) {
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    start = cio_loop_time(loop);
    int ok = 1;

    printf("run_until_complete twice on the same loop:\n");
    if (run_work(200) < 0 || run_work(300) < 0) ok = 0;
    printf("[%.2f s] both ran; closed=%d\n", elapsed(), cio_loop_is_closed(loop));

    if (cio_call_later(loop, 10, never_runs, NULL, NULL) < 0) ok = 0;
    printf("[%.2f s] scheduled a callback for 10 s from now, then close:\n", elapsed());
    rc = cio_loop_close(loop);
    printf("  cio_loop_close -> %d; closed=%d\n", rc, cio_loop_is_closed(loop));
    if (rc < 0 || !cio_loop_is_closed(loop)) ok = 0;
    rc = cio_loop_close(loop);
    printf("  cio_loop_close again -> %d (harmless)\n", rc);
    if (rc < 0) ok = 0;

    printf("using the closed loop:\n");
    cio_task *task = NULL;
    cio_future *fut = NULL;
    ok &= refused("run_until_complete(do_some_work)", run_work(200));
    ok &= refused("cio_spawn(do_some_work)", cio_spawn(loop, do_some_work, NULL, &task));
    ok &= task == NULL; /* nothing was created */
    ok &= refused("cio_run_forever", cio_run_forever(loop));
    ok &= refused("cio_call_soon", cio_call_soon(loop, nothing, NULL, NULL));
    ok &= refused("cio_call_later", cio_call_later(loop, 0.1, nothing, NULL, NULL));
    ok &= refused("cio_future_new", cio_future_new(loop, &fut));
    ok &= fut == NULL;
    ok &= refused("cio_loop_stop", cio_loop_stop(loop));

    printf("the callback scheduled before close ran: %s\n", never_ran ? "no" : "yes");
    ok &= never_ran;

    cio_loop_free(loop);
    return ok ? 0 : 1;
}
