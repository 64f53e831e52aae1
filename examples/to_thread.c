/*
 * Blocking work in threads while the loop runs.
 *
 *   1. Three blocking calls (usleep stands in for a slow library call)
 *      run on the loop's thread pool at once, while a heartbeat task keeps
 *      ticking: the loop is never blocked.
 *   2. A blocking call under wait_for: the task gives up after 0.1 s; the
 *      call finishes in its thread and its result is dropped.
 *   3. A name lookup on the pool, and a numeric one that needs no thread.
 *   4. A plain thread hands a coroutine to the loop and waits for its
 *      result (run_coroutine_threadsafe).
 *   5. The pool is shut down before the loop closes.
 *
 * The Python it mirrors:
 *
 *     async def main():
 *         hb = asyncio.create_task(heartbeat())
 *         await asyncio.gather(*(asyncio.to_thread(time.sleep, 0.2) for _ in range(3)))
 *         try:
 *             await asyncio.wait_for(asyncio.to_thread(time.sleep, 0.5), 0.1)
 *         except TimeoutError: ...
 *         await loop.getaddrinfo('localhost', 80, type=socket.SOCK_STREAM)
 *         await asyncio.to_thread(lambda: asyncio.run_coroutine_threadsafe(double(21), loop).result())
 *         await loop.shutdown_default_executor()
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cio.h>

static int ticks;
static int done;

static void *heartbeat(void *arg) {
    (void)arg;
    while (!done) {
        if (cio_sleep(0.01) < 0) return NULL;
        ticks++;
    }
    return NULL;
}

/* The blocking call: no cio in here, it runs in a worker thread. */
static void *slow_call(void *arg) {
    usleep((useconds_t)(intptr_t)arg);
    return arg;
}

static void *call_in_thread(void *arg) {
    void *r = NULL;
    int rc = cio_to_thread(slow_call, arg, &r);
    return rc < 0 ? cio_raise(rc) : r;
}

static void *doubled(void *arg) {
    cio_sleep(0.01);
    return (void *)((intptr_t)arg * 2);
}

/* A plain thread (no loop of its own) asking the loop for work. */
static void *foreign(void *loop) {
    cio_tsfuture *f;
    void *r = NULL;
    if (cio_run_coroutine_threadsafe(loop, doubled, (void *)21, &f) == 0) {
        if (cio_tsfuture_result(f, 5.0, &r) < 0) r = NULL;
        cio_tsfuture_free(f);
    }
    return r;
}

static void *join_thread(void *arg) {
    void *r = NULL;
    pthread_join(*(pthread_t *)arg, &r);
    return r;
}

static void *main_task(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *hb;
    cio_spawn(loop, heartbeat, NULL, &hb);

    printf("1. three blocking calls of 0.2 s in threads\n");
    double start = cio_loop_time(loop);
    cio_task *calls[3];
    for (int i = 0; i < 3; i++) cio_spawn(loop, call_in_thread, (void *)200000, &calls[i]);
    cio_future *all;
    cio_gather(loop, calls, 3, 0, &all);
    cio_await(all, NULL);
    double took = cio_loop_time(loop) - start;
    printf("   all three done together, in less than 0.6 s: %s\n", took < 0.55 ? "yes" : "no");
    printf("   the loop kept running meanwhile: %s\n", ticks >= 5 ? "yes" : "no");
    cio_future_unref(all);
    for (int i = 0; i < 3; i++) cio_future_unref(calls[i]);

    printf("2. a blocking call of 0.5 s under wait_for(0.1)\n");
    cio_task *slow;
    cio_spawn(loop, call_in_thread, (void *)500000, &slow);
    int rc = cio_wait_for(slow, 0.1, NULL);
    printf("   wait_for: %s; the call ends in its thread, its result dropped\n",
           cio_strerror(rc));
    cio_future_unref(slow);

    printf("3. name lookups\n");
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    const char *names[2] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        rc = cio_getaddrinfo(names[i], "80", &hints, &res);
        if (rc < 0) {
            printf("   %s: %s\n", names[i], cio_strerror(rc));
            continue;
        }
        char text[INET_ADDRSTRLEN];
        const struct sockaddr_in *sin = (const struct sockaddr_in *)res->ai_addr;
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
        printf("   %s:80 -> %s:%d\n", names[i], text, ntohs(sin->sin_port));
        freeaddrinfo(res);
    }
    rc = cio_getaddrinfo("localhost", "no-such-service", &hints, &res);
    printf("   localhost:no-such-service -> %s\n", cio_strerror(rc));

    printf("4. a plain thread runs a coroutine in this loop\n");
    pthread_t th;
    pthread_create(&th, NULL, foreign, loop);
    /* Joining would block the loop, which must run the coroutine: join in
     * a worker instead. */
    void *r = NULL;
    cio_to_thread(join_thread, &th, &r);
    printf("   the thread got %d\n", (int)(intptr_t)r);

    printf("5. shutting the pool down\n");
    rc = cio_pool_shutdown(5.0);
    printf("   shutdown: %s\n", cio_strerror(rc));
    rc = cio_to_thread(slow_call, (void *)0, NULL);
    printf("   a call after shutdown: %s\n", cio_strerror(rc));

    done = 1;
    cio_await(hb, NULL);
    cio_future_unref(hb);
    return NULL;
}

int main(void) {
    return cio_run(main_task, NULL, NULL) < 0;
}
