/*
 * Seed section "Timer".
 *
 * asyncio has no timer object like Boost.Asio's, but one is easily built.
 * Three ways, each printing times relative to its start:
 *
 *   1. the seed's timer: a sleep wrapped in a task, with a done callback
 *      that fires when the sleep ends;
 *   2. a periodic timer from sleep: a task that ticks every interval,
 *      N times, sleeping until each tick's absolute time so that late
 *      wake-ups do not add up (no drift);
 *   3. a periodic timer from call_later: a plain callback that schedules
 *      itself again (call_at, for the same reason), and stops the loop
 *      after N ticks.
 *
 * The Python it mirrors:
 *
 *     async def timer(x, cb):                     # 1. the seed's timer
 *         futu = asyncio.ensure_future(asyncio.sleep(x))
 *         futu.add_done_callback(cb)
 *         await futu
 *     loop.run_until_complete(timer(0.3, lambda futu: print('Done')))
 *
 *     async def ticker(interval, n):              # 2. from sleep
 *         start = loop.time()
 *         for k in range(1, n + 1):
 *             await asyncio.sleep(start + k * interval - loop.time())
 *             print('tick', k)
 *
 *     def tick(k):                                # 3. from call_later
 *         print('tick', k)
 *         if k < n: loop.call_at(start + (k + 1) * interval, tick, k + 1)
 *         else:     loop.stop()
 */
#include <stdint.h>
#include <stdio.h>

#include <cio.h>

static cio_loop *loop;
static double start;
static int late_or_early; /* set when a tick fires early, or very late */

static double elapsed(void) { return cio_loop_time(loop) - start; }

/* A tick is due at `due` seconds after start: it must never fire before,
 * and (on a machine that is not swamped) not much after. */
static void check_tick(double due) {
    double t = elapsed();
    if (t < due - 0.001 || t > due + 0.5) late_or_early = 1;
}

/* 1. The seed's timer. */
static void *sleeper(void *arg) {
    int ms = (int)(intptr_t)arg;
    int rc = cio_sleep(ms / 1000.0);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static int fired;

static void on_timer(cio_future *fut, void *arg) {
    (void)fut;
    (void)arg;
    fired++;
    printf("  [%.2f s] timer callback: Done\n", elapsed());
    check_tick(0.3);
}

static void *timer(void *arg) {
    int ms = (int)(intptr_t)arg;
    cio_task *futu = NULL;
    int rc = cio_spawn(loop, sleeper, (void *)(intptr_t)ms, &futu); /* ensure_future(sleep(x)) */
    if (rc == 0) rc = cio_future_add_done_callback(futu, on_timer, NULL);
    printf("  [%.2f s] timer armed for %.1f s\n", elapsed(), ms / 1000.0);
    if (rc == 0) rc = cio_await(futu, NULL); /* await futu */
    printf("  [%.2f s] timer: the await returned\n", elapsed());
    cio_future_unref(futu);
    return rc < 0 ? cio_raise(rc) : NULL;
}

/* 2. A periodic timer from sleep. */
typedef struct ticker_args {
    double interval;
    int n;
} ticker_args;

static void *ticker(void *arg) {
    const ticker_args *a = arg;
    double t0 = cio_loop_time(loop);
    for (int k = 1; k <= a->n; k++) {
        int rc = cio_sleep_until(t0 + k * a->interval);
        if (rc < 0) return cio_raise(rc);
        printf("  [%.2f s] tick %d\n", elapsed(), k);
        check_tick(k * a->interval);
    }
    return (void *)(intptr_t)a->n;
}

/* 3. A periodic timer from call_later: the callback reschedules itself. */
typedef struct tick_state {
    double t0, interval;
    int k, n;
} tick_state;

static void tick(cio_loop *l, void *arg) {
    tick_state *s = arg;
    s->k++;
    printf("  [%.2f s] tick %d\n", elapsed(), s->k);
    check_tick(s->k * s->interval);
    if (s->k < s->n) {
        if (cio_call_at(l, s->t0 + (s->k + 1) * s->interval, tick, s, NULL) < 0) cio_loop_stop(l);
    } else {
        cio_loop_stop(l);
    }
}

static int run_task(cio_coro_fn fn, void *arg) {
    cio_task *task = NULL;
    int rc = cio_spawn(loop, fn, arg, &task);
    if (rc == 0) rc = cio_run_until_complete(loop, task, NULL);
    if (rc < 0) fprintf(stderr, "run: %s\n", cio_strerror(rc));
    cio_future_unref(task);
    return rc;
}

int main(void) {
    int rc = cio_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "cio_loop_new: %s\n", cio_strerror(rc));
        return 1;
    }
    int ok = 1;

    printf("1. timer(0.3, cb): a sleep in a task, with a done callback\n");
    start = cio_loop_time(loop);
    if (run_task(timer, (void *)(intptr_t)300) < 0 || fired != 1) ok = 0;

    printf("2. a ticker from sleep: every 0.1 s, 5 times\n");
    start = cio_loop_time(loop);
    static ticker_args every_100ms = {0.1, 5};
    if (run_task(ticker, &every_100ms) < 0) ok = 0;
    printf("  [%.2f s] ticker done\n", elapsed());

    printf("3. a ticker from call_later: every 0.2 s, 4 times\n");
    start = cio_loop_time(loop);
    tick_state s = {.t0 = start, .interval = 0.2, .n = 4};
    rc = cio_call_at(loop, s.t0 + s.interval, tick, &s, NULL);
    if (rc == 0) rc = cio_run_forever(loop);
    if (rc < 0) fprintf(stderr, "run_forever: %s\n", cio_strerror(rc));
    printf("  [%.2f s] loop stopped after %d ticks\n", elapsed(), s.k);
    if (rc < 0 || s.k != 4) ok = 0;

    if (late_or_early) {
        printf("a tick fired early or more than 0.5 s late\n");
        ok = 0;
    }
    cio_loop_free(loop);
    return ok ? 0 : 1;
}
