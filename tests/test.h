/*
 * A minimal test harness. A test file defines cases with TEST(name); the
 * executable runs the one case named on its command line, so CTest runs
 * every case in a process of its own (a crash or a hang fails one case and
 * names it). Without arguments it lists its cases, which is how
 * tests/CMakeLists.txt registers them.
 *
 * Checks print both sides and abort at once. They are safe on a task's
 * stack: they only format to stderr and abort.
 */
#ifndef CIO_TEST_H
#define CIO_TEST_H

#include <cio.h>
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tests read the library's internals only through the debug layer's
 * counters (and base/fault.h for fault injection), never struct fields. */
#include "debug/introspection.h"

static inline cio__loop_stats loop_stats(const cio_loop *loop) {
    cio__loop_stats s = {0};
    cio__loop_get_stats(loop, &s);
    return s;
}

typedef void (*test_fn)(void);

static struct test_case {
    const char *name;
    test_fn fn;
} test_cases[256];
static int test_count;

#define TEST(case_)                                                       \
    static void test_##case_(void);                                       \
    __attribute__((constructor)) static void register_##case_(void) {     \
        test_cases[test_count].name = #case_;                             \
        test_cases[test_count].fn = test_##case_;                         \
        test_count++;                                                     \
    }                                                                     \
    static void test_##case_(void)

#define FAIL(...)                                                         \
    do {                                                                  \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                  \
        fprintf(stderr, __VA_ARGS__);                                     \
        fputc('\n', stderr);                                              \
        abort();                                                          \
    } while (0)

/* Ends the test as skipped (exit code 77, which CTest reports as "Not
 * Run (Skipped)", never as passed), saying why. Only for a feature the
 * machine lacks, never to hide a failure. */
#define SKIP(...)                                                         \
    do {                                                                  \
        fprintf(stderr, "SKIPPED: ");                                     \
        fprintf(stderr, __VA_ARGS__);                                     \
        fputc('\n', stderr);                                              \
        exit(77);                                                         \
    } while (0)

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) FAIL("check failed: %s", #cond);                     \
    } while (0)

#define CHECK_INT(a, op, b)                                               \
    do {                                                                  \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);   \
        if (!(check_a_ op check_b_))                                      \
            FAIL("check failed: %s %s %s (%lld vs %lld)", #a, #op, #b,    \
                 check_a_, check_b_);                                     \
    } while (0)

#define CHECK_EQ(a, b) CHECK_INT(a, ==, b)

/* An error code check that names both codes. */
#define CHECK_ERR(a, b)                                                   \
    do {                                                                  \
        int check_a_ = (int)(a), check_b_ = (int)(b);                     \
        if (check_a_ != check_b_)                                         \
            FAIL("check failed: %s == %s (%d \"%s\" vs %d \"%s\")", #a,   \
                 #b, check_a_, cio_strerror(check_a_), check_b_,          \
                 cio_strerror(check_b_));                                 \
    } while (0)

#define CHECK_OK(a) CHECK_ERR(a, 0)

#define CHECK_STR(a, b)                                                   \
    do {                                                                  \
        const char *check_a_ = (a), *check_b_ = (b);                      \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0)    \
            FAIL("check failed: %s == %s (\"%s\" vs \"%s\")", #a, #b,     \
                 check_a_ ? check_a_ : "(null)",                          \
                 check_b_ ? check_b_ : "(null)");                         \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                             \
    do {                                                                  \
        double check_a_ = (a), check_b_ = (b);                            \
        if (!(fabs(check_a_ - check_b_) <= (tol)))                        \
            FAIL("check failed: %s ~= %s (%.6f vs %.6f, tolerance %g)",   \
                 #a, #b, check_a_, check_b_, (double)(tol));              \
    } while (0)

#define IPTR(x) ((void *)(intptr_t)(x))
#define PTRI(x) ((int)(intptr_t)(x))

/* A loop that every test closes and frees at its end. */
static inline cio_loop *test_loop(void) {
    cio_loop *loop = NULL;
    int rc = cio_loop_new(&loop);
    if (rc < 0) FAIL("cio_loop_new: %s", cio_strerror(rc));
    return loop;
}

/* How many descriptors this process has open: the entries of
 * /proc/self/fd, less the directory's own. */
static inline int test_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) FAIL("opendir /proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

/* Runs fn(arg) as a task to completion and returns its outcome. */
static inline int test_run(cio_loop *loop, cio_coro_fn fn, void *arg, void **result) {
    cio_task *t = NULL;
    int rc = cio_spawn(loop, fn, arg, &t);
    if (rc < 0) return rc;
    rc = cio_run_until_complete(loop, t, result);
    cio_future_unref(t);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        for (int i = 0; i < test_count; i++) printf("%s\n", test_cases[i].name);
        return 0;
    }
    for (int i = 0; i < test_count; i++) {
        if (strcmp(test_cases[i].name, argv[1]) == 0) {
            test_cases[i].fn();
            return 0;
        }
    }
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
}

#endif
