/* Threads and loops: checks that must also pass under ThreadSanitizer. */
#include "test.h"

#include <pthread.h>

static void append_a(cio_loop *loop, void *arg) { (void)loop; (void)arg; }
static void *return_seven(void *arg) { (void)arg; return IPTR(7); }

static void *foreign_thread(void *arg) {
    cio_loop *loop = arg;
    cio_future *f = NULL;
    intptr_t ok = cio_call_soon(loop, append_a, NULL, NULL) == -CIO_EWRONGTHREAD &&
                  cio_future_new(loop, &f) == -CIO_EWRONGTHREAD && f == NULL &&
                  cio_spawn(loop, return_seven, NULL, NULL) == -CIO_EWRONGTHREAD &&
                  cio_loop_stop(loop) == -CIO_EWRONGTHREAD;
    return (void *)ok;
}

static void call_from_other_thread(cio_loop *loop, void *arg) {
    (void)arg;
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, foreign_thread, loop));
    void *ok = NULL;
    CHECK_OK(pthread_join(th, &ok));
    CHECK(ok == (void *)1);
    CHECK_OK(cio_loop_stop(loop));
}

TEST(debug_mode_refuses_foreign_threads) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&loop, &opts));
    CHECK_OK(cio_call_soon(loop, call_from_other_thread, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    cio_loop_free(loop);
}

static void *run_own_loop(void *arg) {
    (void)arg;
    /* No global state: each thread runs its own loop at the same time. */
    cio_loop *loop;
    if (cio_loop_new(&loop) < 0) return NULL;
    void *r = NULL;
    cio_task *t;
    if (cio_spawn(loop, return_seven, NULL, &t) == 0) {
        if (cio_run_until_complete(loop, t, &r) < 0) r = NULL;
        cio_future_release(t);
    }
    cio_loop_free(loop);
    return r;
}

TEST(one_loop_per_thread) {
    pthread_t th[4];
    for (int i = 0; i < 4; i++) CHECK_OK(pthread_create(&th[i], NULL, run_own_loop, NULL));
    for (int i = 0; i < 4; i++) {
        void *r;
        CHECK_OK(pthread_join(th[i], &r));
        CHECK_EQ(PTRI(r), 7);
    }
}
