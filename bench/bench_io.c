/*
 * I/O through the operation layer, against a hand-written epoll loop (the
 * limit) and libuv, in the same run:
 *
 *   io_pingpong_cio        two tasks bounce one byte over a socketpair;
 *                          ns per round trip (each side's recv blocks, so
 *                          every message goes through the poll)
 *   io_pingpong_epoll      the same with a hand-written level-triggered
 *                          epoll loop: registered once, read, write back
 *   io_pingpong_libuv      the same with libuv (uv_poll on both ends)
 *   sleep0_io_idle         two tasks yield with cio_sleep(0) while no I/O
 *                          is in flight: ns per iteration (no poll at all)
 *   sleep0_io_waiting      the same while a third task waits in recv on an
 *                          idle socket: every iteration then polls, as
 *                          asyncio's does; the difference is what that
 *                          rule costs a busy loop
 *
 * Both sockets of a pair live in one thread, so the figures measure the
 * loop's own cost per message (system calls included), not the network.
 */
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"
#include "cio.h"

#ifdef CIO_BENCH_HAVE_LIBUV
#include <uv.h>
#endif

static void socket_pair(int sv[2]) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        perror("socketpair");
        exit(1);
    }
}

/* ---- cio ---------------------------------------------------------------- */

typedef struct pingpong {
    int fd;
    long rounds;
    int serve; /* 1: echo back what arrives; 0: send first, then expect it back */
} pingpong;

static void *bouncer(void *arg) {
    pingpong *p = arg;
    char c = 'x';
    for (long i = 0; i < p->rounds; i++) {
        if (!p->serve && cio_sock_send(p->fd, &c, 1) != 1) return cio_raise(-EIO);
        if (cio_sock_recv(p->fd, &c, 1) != 1) return cio_raise(-EIO);
        if (p->serve && cio_sock_send(p->fd, &c, 1) != 1) return cio_raise(-EIO);
    }
    return NULL;
}

static double cio_pingpong(long rounds) {
    int sv[2];
    socket_pair(sv);
    cio_loop *loop;
    BENCH_CHECK(cio_loop_new(&loop));
    pingpong a = {sv[0], rounds, 0}, b = {sv[1], rounds, 1};
    cio_task *ta, *tb;
    BENCH_CHECK(cio_spawn(loop, bouncer, &b, &tb));
    BENCH_CHECK(cio_spawn(loop, bouncer, &a, &ta));
    int64_t t0 = bench_now_ns();
    BENCH_CHECK(cio_run_until_complete(loop, ta, NULL));
    BENCH_CHECK(cio_run_until_complete(loop, tb, NULL));
    double ns = (double)(bench_now_ns() - t0) / (double)rounds;
    cio_future_unref(ta);
    cio_future_unref(tb);
    cio_loop_free(loop);
    cio_close(sv[0]);
    cio_close(sv[1]);
    return ns;
}

/* ---- hand-written epoll ----------------------------------------------- */

static double epoll_pingpong(long rounds) {
    int sv[2];
    socket_pair(sv);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = sv[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, sv[i], &ev);
    }
    char c = 'x';
    int64_t t0 = bench_now_ns();
    if (write(sv[0], &c, 1) != 1) exit(1);
    long done = 0;
    while (done < rounds) {
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (read(fd, &c, 1) != 1) continue;
            if (fd == sv[0] && ++done == rounds) break;
            if (write(fd, &c, 1) != 1) exit(1);
        }
    }
    double ns = (double)(bench_now_ns() - t0) / (double)rounds;
    close(ep);
    close(sv[0]);
    close(sv[1]);
    return ns;
}

/* ---- libuv ---------------------------------------------------------------- */

#ifdef CIO_BENCH_HAVE_LIBUV
typedef struct uv_side {
    uv_poll_t poll;
    int fd;
    int first;
    long *done;
    long rounds;
} uv_side;

static void uv_on_readable(uv_poll_t *h, int status, int events) {
    (void)status;
    (void)events;
    uv_side *s = h->data;
    char c;
    if (read(s->fd, &c, 1) != 1) return;
    if (s->first && ++*s->done == s->rounds) {
        uv_stop(h->loop);
        return;
    }
    if (write(s->fd, &c, 1) != 1) exit(1);
}

static double uv_pingpong(long rounds) {
    int sv[2];
    socket_pair(sv);
    uv_loop_t loop;
    uv_loop_init(&loop);
    long done = 0;
    uv_side s[2];
    for (int i = 0; i < 2; i++) {
        s[i] = (uv_side){.fd = sv[i], .first = i == 0, .done = &done, .rounds = rounds};
        uv_poll_init(&loop, &s[i].poll, sv[i]);
        s[i].poll.data = &s[i];
        uv_poll_start(&s[i].poll, UV_READABLE, uv_on_readable);
    }
    char c = 'x';
    int64_t t0 = bench_now_ns();
    if (write(sv[0], &c, 1) != 1) exit(1);
    uv_run(&loop, UV_RUN_DEFAULT);
    double ns = (double)(bench_now_ns() - t0) / (double)rounds;
    for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&s[i].poll, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    close(sv[0]);
    close(sv[1]);
    return ns;
}
#endif

/* ---- the cost of polling every iteration ------------------------------- */

typedef struct yielder {
    long n;
} yielder;

static void *yield_loop(void *arg) {
    yielder *y = arg;
    for (long i = 0; i < y->n; i++) cio_sleep(0);
    return NULL;
}

static void *idle_reader(void *arg) {
    char c;
    cio_sock_recv((int)(intptr_t)arg, &c, 1); /* cancelled at the end */
    return NULL;
}

static double sleep0_rounds(long n, int with_io) {
    cio_loop *loop;
    BENCH_CHECK(cio_loop_new(&loop));
    int sv[2] = {-1, -1};
    cio_task *reader = NULL;
    if (with_io) {
        socket_pair(sv);
        BENCH_CHECK(cio_spawn(loop, idle_reader, (void *)(intptr_t)sv[0], &reader));
    }
    yielder y = {n};
    cio_task *a, *b;
    BENCH_CHECK(cio_spawn(loop, yield_loop, &y, &a));
    BENCH_CHECK(cio_spawn(loop, yield_loop, &y, &b));
    int64_t t0 = bench_now_ns();
    BENCH_CHECK(cio_run_until_complete(loop, a, NULL));
    BENCH_CHECK(cio_run_until_complete(loop, b, NULL));
    double ns = (double)(bench_now_ns() - t0) / (double)n;
    if (reader) {
        cio_task_cancel(reader, NULL);
        cio_run_until_complete(loop, reader, NULL);
        cio_future_unref(reader);
        cio_close(sv[0]);
        cio_close(sv[1]);
    }
    cio_future_unref(a);
    cio_future_unref(b);
    cio_loop_free(loop);
    return ns;
}

int main(void) {
    int reps = bench_reps();
    long rounds = bench_iters(200000, 200);
    long yields = bench_iters(1000000, 1000);
    bench_stat cio_pp = {.name = "io_pingpong_cio", .unit = "ns"};
    bench_stat ep_pp = {.name = "io_pingpong_epoll", .unit = "ns"};
    bench_stat idle = {.name = "sleep0_io_idle", .unit = "ns"};
    bench_stat waiting = {.name = "sleep0_io_waiting", .unit = "ns"};
#ifdef CIO_BENCH_HAVE_LIBUV
    bench_stat uv_pp = {.name = "io_pingpong_libuv", .unit = "ns"};
#endif
    /* Warm-up, then the peers interleaved repetition by repetition so that
     * a noisy stretch of the machine hits them all alike. */
    cio_pingpong(rounds / 10 + 1);
    epoll_pingpong(rounds / 10 + 1);
    for (int r = 0; r < reps; r++) {
        bench_add(&cio_pp, cio_pingpong(rounds));
        bench_add(&ep_pp, epoll_pingpong(rounds));
#ifdef CIO_BENCH_HAVE_LIBUV
        bench_add(&uv_pp, uv_pingpong(rounds));
#endif
        bench_add(&idle, sleep0_rounds(yields, 0));
        bench_add(&waiting, sleep0_rounds(yields, 1));
    }
    bench_report(&cio_pp);
    bench_report(&ep_pp);
    bench_ratio("io_pingpong_ratio_cio_over_epoll", &cio_pp, &ep_pp);
#ifdef CIO_BENCH_HAVE_LIBUV
    bench_report(&uv_pp);
    bench_ratio("io_pingpong_ratio_cio_over_libuv", &cio_pp, &uv_pp);
#else
    printf("# skipped io_pingpong_libuv: libuv1-dev was not found at configure time\n");
#endif
    bench_report(&idle);
    bench_report(&waiting);
    bench_ratio("sleep0_ratio_io_waiting_over_idle", &waiting, &idle);
    return 0;
}
