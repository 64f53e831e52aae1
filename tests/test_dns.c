/*
 * Name resolution on the thread pool: cio_getaddrinfo and cio_getnameinfo.
 * No test needs the network: "localhost" comes from /etc/hosts, services
 * from /etc/services, and a slow lookup is simulated with a blocking
 * function submitted as a lookup. Labelled "threads" (ThreadSanitizer).
 */
#include "test.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#define WAIT_UNTIL(cond)                                                  \
    do {                                                                  \
        while (!(cond)) CHECK_OK(cio_sleep(0.001));                       \
    } while (0)

static cio__pool_stats pool_stats(void) {
    cio__pool_stats s = {0};
    CHECK_OK(cio__loop_get_pool_stats(cio_running_loop(), &s));
    return s;
}

static void *numeric(void *arg) {
    (void)arg;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    CHECK_OK(cio_getaddrinfo("127.0.0.1", "8080", &hints, &res));
    CHECK(res != NULL);
    CHECK_EQ(res->ai_family, AF_INET);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)res->ai_addr;
    CHECK_EQ(ntohs(sin->sin_port), 8080);
    CHECK_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    freeaddrinfo(res);
    struct addrinfo hints6 = {.ai_family = AF_INET6, .ai_socktype = SOCK_DGRAM};
    CHECK_OK(cio_getaddrinfo("::1", NULL, &hints6, &res));
    CHECK_EQ(res->ai_family, AF_INET6);
    freeaddrinfo(res);
    /* No host: the wildcard address for a server. */
    struct addrinfo passive = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                               .ai_flags = AI_PASSIVE};
    CHECK_OK(cio_getaddrinfo(NULL, "0", &passive, &res));
    freeaddrinfo(res);
    /* Numbers to text, also without a thread. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(443)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char host[64], serv[16];
    CHECK_OK(cio_getnameinfo((struct sockaddr *)&a, sizeof a, NI_NUMERICHOST | NI_NUMERICSERV,
                             host, sizeof host, serv, sizeof serv));
    CHECK_STR(host, "127.0.0.1");
    CHECK_STR(serv, "443");
    /* None of this started a thread. */
    CHECK_EQ(pool_stats().workers, 0);
    return NULL;
}

TEST(numeric_requests_are_answered_without_a_thread) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, numeric, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
}

static void *by_name(void *arg) {
    (void)arg;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    CHECK_OK(cio_getaddrinfo("localhost", "http", &hints, &res));
    CHECK(res != NULL);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)res->ai_addr;
    CHECK_EQ(ntohs(sin->sin_port), 80);
    CHECK_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    freeaddrinfo(res);
    /* A name went to the pool. */
    CHECK_EQ(pool_stats().workers, 1);
    /* And back: the service name from /etc/services. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char serv[NI_MAXSERV];
    CHECK_OK(cio_getnameinfo((struct sockaddr *)&a, sizeof a, NI_NUMERICHOST, NULL, 0, serv,
                             sizeof serv));
    CHECK_STR(serv, "http");
    char host[NI_MAXHOST];
    CHECK_OK(cio_getnameinfo((struct sockaddr *)&a, sizeof a, NI_NUMERICSERV, host, sizeof host,
                             NULL, 0));
    CHECK_STR(host, "localhost");
    return NULL;
}

TEST(names_are_resolved_on_the_pool) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, by_name, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
}

static void *errors(void *arg) {
    (void)arg;
    struct addrinfo *res = (struct addrinfo *)1;
    struct addrinfo bad_family = {.ai_family = 12345};
    CHECK_ERR(cio_getaddrinfo("127.0.0.1", "80", &bad_family, &res), -CIO_EAI(EAI_FAMILY));
    CHECK(res == NULL);
    /* Each resolver code is its own cio code, named with the resolver's
     * text. */
    CHECK_STR(cio_strerror(-CIO_EAI(EAI_FAMILY)), gai_strerror(EAI_FAMILY));
    CHECK(-CIO_EAI(EAI_NONAME) != -CIO_EAI(EAI_SERVICE));
    struct addrinfo numeric_only = {.ai_flags = AI_NUMERICHOST};
    CHECK_ERR(cio_getaddrinfo("not-a-number", NULL, &numeric_only, &res),
              -CIO_EAI(EAI_NONAME));
    struct addrinfo tcp = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    CHECK_ERR(cio_getaddrinfo("127.0.0.1", "no-such-service-here", &tcp, &res),
              -CIO_EAI(EAI_SERVICE));
    /* getnameinfo's own codes travel the same way. */
    struct sockaddr_in a = {.sin_family = AF_INET};
    char host[2];
    CHECK_ERR(cio_getnameinfo((struct sockaddr *)&a, sizeof a, NI_NUMERICHOST, host, sizeof host,
                              NULL, 0),
              -CIO_EAI(EAI_OVERFLOW));
    /* A failure writes nothing, even where the C library wrote part of
     * the answer before it failed (here the address, then no room for the
     * scope's name). */
    struct sockaddr_in6 scoped = {.sin6_family = AF_INET6, .sin6_scope_id = 1};
    inet_pton(AF_INET6, "fe80::1", &scoped.sin6_addr);
    char buf[8], serv[4];
    memset(buf, 'X', sizeof buf);
    memset(serv, 'Y', sizeof serv);
    CHECK_ERR(cio_getnameinfo((struct sockaddr *)&scoped, sizeof scoped, NI_NUMERICHOST, buf,
                              sizeof buf, NULL, 0),
              -CIO_EAI(EAI_OVERFLOW));
    for (size_t i = 0; i < sizeof buf; i++) CHECK_EQ(buf[i], 'X');
    a.sin_port = htons(65535);
    CHECK_ERR(cio_getnameinfo((struct sockaddr *)&a, sizeof a, NI_NUMERICHOST | NI_NUMERICSERV, buf,
                              sizeof buf, serv, sizeof serv),
              -CIO_EAI(EAI_OVERFLOW));
    for (size_t i = 0; i < sizeof buf; i++) CHECK_EQ(buf[i], 'X');
    for (size_t i = 0; i < sizeof serv; i++) CHECK_EQ(serv[i], 'Y');
    /* A large buffer still gets a scope's name whole. */
    char whole[NI_MAXHOST];
    CHECK_OK(cio_getnameinfo((struct sockaddr *)&scoped, sizeof scoped, NI_NUMERICHOST, whole,
                             sizeof whole, NULL, 0));
    CHECK(strncmp(whole, "fe80::1%", 8) == 0);
    return NULL;
}

TEST(resolver_errors_map_to_distinct_named_codes) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, errors, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
}

/* Slow lookups may occupy at most half of the workers: with two workers
 * and three lookups stuck, other work still gets the second worker. The
 * stuck lookups are blocking functions submitted as lookups. */
static sem_t gate;
static atomic_int stuck;

static void *slow_lookup(void *arg) {
    atomic_fetch_add(&stuck, 1);
    while (sem_wait(&gate) != 0) {
    }
    return arg;
}

static void *lookup_task(void *arg) {
    int rc = cio__pool_run(slow_lookup, arg, 1, NULL, NULL);
    if (rc < 0) return cio_raise(rc);
    return NULL;
}

static void *quick(void *arg) {
    return arg;
}

static void *quick_task(void *arg) {
    void *r = NULL;
    int rc = cio_to_thread(quick, arg, &r);
    if (rc < 0) return cio_raise(rc);
    return r;
}

static void *no_starvation(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_pool_set_max_workers(loop, 2));
    cio_task *lookups[3];
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, lookup_task, NULL, &lookups[i]));
    WAIT_UNTIL(atomic_load(&stuck) == 1 && pool_stats().queued == 2);
    cio_task *q;
    CHECK_OK(cio_spawn(loop, quick_task, IPTR(5), &q));
    void *r = NULL;
    /* Without the bound both workers would hold lookups and this would
     * never end: the generous limit only turns a hang into a failure. */
    CHECK_OK(cio_wait_for(q, 30.0, &r));
    CHECK_EQ(PTRI(r), 5);
    /* Still only one lookup at a time. */
    CHECK_EQ(atomic_load(&stuck), 1);
    CHECK_EQ(pool_stats().lookups, 1);
    for (int i = 0; i < 3; i++) CHECK_OK(sem_post(&gate));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(cio_await(lookups[i], NULL));
        cio_future_unref(lookups[i]);
    }
    CHECK_EQ(atomic_load(&stuck), 3);
    cio_future_unref(q);
    return NULL;
}

TEST(slow_lookups_cannot_starve_other_work) {
    sem_init(&gate, 0, 0);
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, no_starvation, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
    sem_destroy(&gate);
}

/* A lookup cancelled from the awaiting task's side returns -ECANCELED;
 * whether it was still queued or already running, its request and result
 * are freed (LeakSanitizer and Valgrind check). */
static int cancelled_rc = 1;
static void *resolve_localhost(void *arg) {
    (void)arg;
    struct addrinfo *res = NULL;
    cancelled_rc = cio_getaddrinfo("localhost", "80", NULL, &res);
    if (cancelled_rc == 0) freeaddrinfo(res);
    return NULL;
}

static void *cancel_lookups(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    for (int round = 0; round < 20; round++) {
        cio_task *t;
        CHECK_OK(cio_spawn(loop, resolve_localhost, NULL, &t));
        CHECK_OK(cio_sleep(0)); /* it submits */
        CHECK_EQ(cio_task_cancel(t, NULL), 1);
        CHECK_ERR(cio_await(t, NULL), -ECANCELED);
        CHECK_ERR(cancelled_rc, -ECANCELED);
        cio_future_unref(t);
    }
    /* Let the lookups still running finish, so their results are dropped
     * by the loop rather than by close. */
    CHECK_OK(cio_pool_shutdown(CIO_NO_TIMEOUT));
    return NULL;
}

TEST(cancelled_lookups_free_everything) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, cancel_lookups, NULL, NULL));
    CHECK_OK(cio_loop_free(loop));
}

TEST(bad_arguments_and_calls_outside_a_task) {
    struct addrinfo *res = (struct addrinfo *)1;
    CHECK_ERR(cio_getaddrinfo("localhost", NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(cio_getaddrinfo("localhost", NULL, NULL, &res), -EPERM);
    CHECK(res == NULL);
    struct sockaddr_in a = {.sin_family = AF_INET};
    char host[64];
    CHECK_ERR(cio_getnameinfo(NULL, sizeof a, 0, host, sizeof host, NULL, 0), -EINVAL);
    CHECK_ERR(cio_getnameinfo((struct sockaddr *)&a, 0, 0, host, sizeof host, NULL, 0), -EINVAL);
    CHECK_ERR(cio_getnameinfo((struct sockaddr *)&a, 4096, 0, host, sizeof host, NULL, 0), -EINVAL);
    CHECK_ERR(cio_getnameinfo((struct sockaddr *)&a, sizeof a, 0, NULL, 0, NULL, 0), -EINVAL);
    CHECK_ERR(cio_getnameinfo((struct sockaddr *)&a, sizeof a, 0, host, sizeof host, NULL, 0),
              -EPERM);
}
