/* Task stacks: sizes, pooling, overflow reports, and 100,000 tasks. */
#include "test.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>


static void *report_stack_size(void *arg) {
    (void)arg;
    return IPTR(cio_task_stack_size(cio_current_task()));
}

TEST(stack_size_per_task) {
    cio_loop *loop = test_loop();
    cio_task_options opts = {.stack_size = 200 * 1024};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, report_stack_size, NULL, &opts, &t));
    void *r;
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_INT((size_t)(intptr_t)r, >=, 200 * 1024); /* rounded up to pages */
    CHECK_INT((size_t)(intptr_t)r, <, 200 * 1024 + 4096 * 4);
    cio_future_unref(t);
    cio_task_options tiny = {.stack_size = 1024};
    CHECK_ERR(cio_spawn_with(loop, report_stack_size, NULL, &tiny, &t), -EINVAL);
    cio_loop_free(loop);
}

/* The bytes of guard below a task's stack (0: a canary protects it). */
static size_t guard_of(cio_task *task) {
    cio__task_stack_info info;
    CHECK_OK(cio__task_get_stack(task, &info));
    return info.guard;
}

static void *record_stack_lo(void *arg) {
    void **out = arg;
    cio__task_stack_info info;
    CHECK_OK(cio__task_get_stack(cio_current_task(), &info));
    *out = info.lo;
    return NULL;
}

TEST(stacks_are_reused) {
    /* A finished task's stack goes back to the pool and serves the next. */
    cio_loop *loop = test_loop();
    void *first = NULL, *second = NULL;
    CHECK_OK(test_run(loop, record_stack_lo, &first, NULL));
    CHECK_OK(test_run(loop, record_stack_lo, &second, NULL));
    CHECK(first != NULL);
    CHECK(first == second);
    cio_loop_free(loop);
}

/* Recurses with 1 KiB frames until the stack runs out. */
__attribute__((noinline)) static int recurse(volatile char *prev, int depth) {
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[1023] = prev ? prev[0] : 0;
    if (depth > 1000000) return 0; /* far beyond any stack in this test */
    return recurse(frame, depth + 1) + frame[1023];
}

static void *overflow(void *arg) {
    (void)arg;
    return IPTR(recurse(NULL, 0));
}

static void *smash_canary(void *arg) {
    (void)arg;
    /* Simulates an overflow that went past the end of an unguarded stack
     * without faulting: the canary at its lowest address is overwritten. */
    cio__task_stack_info info;
    CHECK_OK(cio__task_get_stack(cio_current_task(), &info));
    CHECK(info.guard == 0);
    memset(info.lo, 0xa5, 8);
    cio_sleep(0);
    return NULL;
}

/* How run_in_child sets up the child before it runs the task "deep". */
typedef struct child_setup {
    size_t guard_budget;  /* (size_t)-1: leave the budget alone */
    bool no_regions;      /* use the guard-page fallback of older kernels */
    size_t stack_size;    /* of "deep"; 0: 64 KiB */
    void (*before)(void); /* runs first in the child (installs handlers) */
    cio_coro_fn first;    /* if set, run in a task of its own before "deep" */
    bool by_pointer;      /* spawn "deep" through a function pointer (no site) */
    const char *name;     /* the task's name instead of "deep" */
} child_setup;

/* Runs fn in a task named "deep" in a child process and returns what the
 * child wrote to stderr; *status gets its wait status. */
static void run_in_child(cio_coro_fn fn, const child_setup *setup, char *out, size_t cap,
                         int *status) {
    int fds[2];
    CHECK_OK(pipe(fds));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        if (setup->guard_budget != (size_t)-1) cio__stack_set_guard_budget(setup->guard_budget);
        if (setup->no_regions) cio__stack_disable_guard_regions(true);
        if (setup->before) setup->before();
        cio_loop *loop = test_loop();
        if (setup->first) CHECK_OK(test_run(loop, setup->first, NULL, NULL));
        cio_task_options opts = {.name = setup->name ? setup->name : "deep",
                                 .stack_size = setup->stack_size ? setup->stack_size : 64 * 1024};
        cio_task *t;
        if (setup->by_pointer)
            CHECK_OK((cio_spawn_with)(loop, fn, NULL, &opts, &t));
        else
            CHECK_OK(cio_spawn_with(loop, fn, NULL, &opts, &t));
        cio_run_until_complete(loop, t, NULL);
        fprintf(stderr, "child: the task ended\n");
        _exit(0); /* not reached when the overflow is caught */
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], out + len, cap - 1 - len)) > 0) len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    CHECK_EQ(waitpid(pid, status, 0), pid);
}

/* A fault in a guard ends the process by SIGSEGV (the fault repeats after
 * the report, as without cio); an overflow caught after the fact (canary,
 * red zone) by SIGABRT. */
static void check_report(const char *out, int status, size_t stack_size, int sig) {
    char want[128];
    snprintf(want, sizeof want, "cio: task 'deep' overflowed its %zu-byte stack", stack_size);
    if (!strstr(out, want)) FAIL("child said: %s", out);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != sig)
        FAIL("child ended with status %#x, not by signal %d; it said: %s", status, sig, out);
}

static void check_named_report(const char *out, int status, size_t stack_size) {
    check_report(out, status, stack_size, SIGSEGV);
}

static void *check_guard_region(void *arg) {
    (void)arg;
    CHECK_STR(cio_loop_stack_guard(cio_running_loop()), "guard-region");
    CHECK_INT(guard_of(cio_current_task()), >=, CIO_DEFAULT_STACK_GUARD_SIZE);
    return overflow(NULL);
}

TEST(overflow_into_guard_region_names_the_task) {
    if (!cio__stack_guard_regions_available())
        SKIP("this kernel has no MADV_GUARD_INSTALL (Linux 6.13+): its fallback is tested by the guard-page and canary tests");
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = (size_t)-1};
    run_in_child(check_guard_region, &setup, out, sizeof out, &status);
    check_named_report(out, status, 65536);
}

/* Guard regions installed one call per stack (the path of kernels that
 * lack process_madvise on the calling process) protect as well. */
static void install_guards_one_by_one(void) {
    cio__stack_disable_guard_batching(true);
}

TEST(overflow_into_guard_region_installed_one_by_one_names_the_task) {
    if (!cio__stack_guard_regions_available())
        SKIP("this kernel has no MADV_GUARD_INSTALL (Linux 6.13+): its fallback is tested by the guard-page and canary tests");
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = (size_t)-1, .before = install_guards_one_by_one};
    run_in_child(check_guard_region, &setup, out, sizeof out, &status);
    check_named_report(out, status, 65536);
}

/* Whether the page just below lo faults, tested without touching it: the
 * kernel refuses to read it for write(2) (EFAULT). */
static bool page_below_faults(const void *lo) {
    int fds[2];
    CHECK_OK(pipe(fds));
    bool faults = write(fds[1], (const char *)lo - 1, 1) < 0 && errno == EFAULT;
    close(fds[0]);
    close(fds[1]);
    return faults;
}

static void *wait_for_gate(void *arg) {
    return IPTR(cio_await((cio_future *)arg, NULL));
}

/* Every stack of a slab gets its guard, however it was installed: the first
 * 130 tasks of 16 KiB (three slabs of 64) each have a guard that faults
 * right below their stack. */
static void check_every_stack_guarded(bool one_by_one) {
    cio__stack_disable_guard_batching(one_by_one);
    cio_loop *loop = test_loop();
    cio_future *gate;
    CHECK_OK(cio_future_new(loop, &gate));
    enum { TASKS = 130 };
    cio_task *tasks[TASKS];
    cio_task_options opts = {.stack_size = 16 * 1024};
    for (int i = 0; i < TASKS; i++) CHECK_OK(cio_spawn_with(loop, wait_for_gate, gate, &opts, &tasks[i]));
    for (int i = 0; i < TASKS; i++) {
        cio__task_stack_info info;
        CHECK_OK(cio__task_get_stack(tasks[i], &info));
        CHECK_INT(info.guard, >=, CIO_DEFAULT_STACK_GUARD_SIZE);
        if (!page_below_faults(info.lo)) FAIL("task %d: the page below its stack does not fault", i);
        CHECK_INT(cio_task_cancel(tasks[i], NULL), ==, 1);
    }
    CHECK_INT(cio_run_until_complete(loop, tasks[TASKS - 1], NULL), ==, -ECANCELED);
    for (int i = 0; i < TASKS; i++) cio_future_unref(tasks[i]);
    cio_future_unref(gate);
    CHECK_OK(cio_loop_free(loop));
    cio__stack_disable_guard_batching(false);
}

TEST(every_stack_of_a_slab_gets_its_guard_region) {
    if (!cio__stack_guard_regions_available())
        SKIP("this kernel has no MADV_GUARD_INSTALL (Linux 6.13+)");
    check_every_stack_guarded(false);
}

TEST(every_stack_of_a_slab_gets_its_guard_region_one_by_one) {
    if (!cio__stack_guard_regions_available())
        SKIP("this kernel has no MADV_GUARD_INSTALL (Linux 6.13+)");
    check_every_stack_guarded(true);
}

static void *check_guard_page(void *arg) {
    (void)arg;
    CHECK_STR(cio_loop_stack_guard(cio_running_loop()), "guard-page");
    CHECK_INT(guard_of(cio_current_task()), >=, CIO_DEFAULT_STACK_GUARD_SIZE);
    return overflow(NULL);
}

TEST(overflow_into_guard_page_names_the_task) {
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = (size_t)-1, .no_regions = true};
    run_in_child(check_guard_page, &setup, out, sizeof out, &status);
    check_named_report(out, status, 65536);
}

/* The report names the task escaped (by the dump's UTF-8 rule): a name holding an
 * escape sequence or a newline cannot drive the terminal or forge a line
 * of the report (it was written raw). */
TEST(overflow_report_escapes_the_task_name) {
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = (size_t)-1, .no_regions = true,
                         .name = "deep\x1b[2J\ncio: fake"};
    run_in_child(check_guard_page, &setup, out, sizeof out, &status);
    if (!strstr(out, "cio: task 'deep\\x1b[2J\\x0acio: fake' overflowed its 65536-byte stack"))
        FAIL("child said: %s", out);
    CHECK(strchr(out, '\x1b') == NULL);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
}

TEST(overflow_of_unguarded_stack_is_caught_by_canary) {
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = 0, .no_regions = true};
    run_in_child(smash_canary, &setup, out, sizeof out, &status);
    check_report(out, status, 65536, SIGABRT);
}

/* A frame larger than the whole stack, of which only the lowest byte is
 * written (as a big buffer of which only the start is used): nothing
 * touches the pages in between, so with a one-page guard the write landed
 * in the neighbouring stack, silently. */
static volatile size_t lowest; /* 0, but the compiler cannot know it */

__attribute__((noinline)) static int big_frame(void) {
    /* An opaque index: with buf[0], clang keeps only the byte it uses. */
    volatile char buf[24 * 1024];
    buf[lowest] = 1;
    return buf[lowest];
}

static void *run_big_frame(void *arg) {
    (void)arg;
    return IPTR(big_frame());
}

static void *neighbour(void *arg) {
    (void)arg;
    return NULL;
}

static void big_frame_case(bool no_regions) {
    char out[4096];
    int status;
    /* The first task takes the lowest stack of the slab, so "deep" gets the
     * one above it and has a neighbour below its guard. */
    child_setup setup = {.guard_budget = (size_t)-1, .no_regions = no_regions,
                         .stack_size = 16 * 1024, .first = neighbour};
    run_in_child(run_big_frame, &setup, out, sizeof out, &status);
    check_named_report(out, status, 16384);
}

TEST(big_frame_hits_the_guard_region) {
    if (!cio__stack_guard_regions_available())
        SKIP("this kernel has no MADV_GUARD_INSTALL (Linux 6.13+): its fallback is tested by the guard-page and canary tests");
    big_frame_case(false);
}

TEST(big_frame_hits_the_guard_page) {
    big_frame_case(true);
}

TEST(loop_says_how_its_stacks_are_guarded) {
    CHECK(cio_loop_stack_guard(NULL) == NULL);
    cio_loop *loop = test_loop();
    CHECK_STR(cio_loop_stack_guard(loop),
              cio__stack_guard_regions_available() ? "guard-region" : "guard-page");
    cio_loop_free(loop);
    cio__stack_disable_guard_regions(true);
    CHECK(!cio__stack_guard_regions_available());
    CHECK_OK(cio_loop_new(&loop));
    CHECK_STR(cio_loop_stack_guard(loop), "guard-page");
    cio_loop_free(loop);
    cio__stack_disable_guard_regions(false);
}

/* The task dump names each task's protection. */
static char dump_text[1024];

static void *dump_self(void *arg) {
    (void)arg;
    FILE *f = fmemopen(dump_text, sizeof dump_text - 1, "w");
    CHECK(f != NULL);
    CHECK_EQ(cio_loop_dump_tasks(cio_running_loop(), f), 1);
    fclose(f);
    return NULL;
}

static void check_dump(const char *protection) {
    memset(dump_text, 0, sizeof dump_text);
    cio_loop *loop;
    CHECK_OK(cio_loop_new(&loop));
    CHECK_OK(test_run(loop, dump_self, NULL, NULL));
    cio_loop_free(loop);
    char want[64];
    snprintf(want, sizeof want, " bytes, %s\n", protection);
    if (!strstr(dump_text, want)) FAIL("dump says \"%s\", not \"%s\"", dump_text, want);
}

TEST(dump_shows_each_tasks_protection) {
    if (cio__stack_guard_regions_available()) check_dump("guard-region");
    cio__stack_disable_guard_regions(true);
    check_dump("guard-page");
    cio__stack_set_guard_budget(0);
    check_dump("canary");
    cio__stack_disable_guard_regions(false);
}

TEST(guard_size_is_configurable) {
    cio_loop_options o = {.stack_guard_size = 200 * 1024 + 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&o, &loop));
    void *lo;
    cio_task *t;
    CHECK_OK(cio_spawn(loop, record_stack_lo, &lo, &t));
    /* Rounded up to whole pages; a guard page only while the budget lasts. */
    size_t guard = guard_of(t);
    CHECK(guard == 204 * 1024 || guard == 0);
    if (cio__stack_guard_regions_available()) CHECK_EQ(guard, 204 * 1024);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    cio_loop_free(loop);
    o.stack_guard_size = CIO_MAX_STACK_SIZE + 1;
    CHECK_ERR(cio_loop_new_with(&o, &loop), -EINVAL);
    CHECK(loop == NULL);
}

TEST(stack_size_near_size_max_is_einval) {
    static const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX - 4096,
                                   SIZE_MAX / 2 + 1, CIO_MAX_STACK_SIZE + 1};
    cio_loop *loop = test_loop();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cio_task_options opts = {.stack_size = sizes[i]};
        cio_task *t = (cio_task *)&opts;
        CHECK_ERR(cio_spawn_with(loop, report_stack_size, NULL, &opts, &t), -EINVAL);
        CHECK(t == NULL);
        cio_loop_options lo = {.default_stack_size = sizes[i]};
        cio_loop *bad = (cio_loop *)&lo;
        CHECK_ERR(cio_loop_new_with(&lo, &bad), -EINVAL);
        CHECK(bad == NULL);
    }
    /* The largest size allowed works (it is address space only). */
    cio_task_options opts = {.stack_size = CIO_MAX_STACK_SIZE};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, report_stack_size, NULL, &opts, &t));
    void *r;
    CHECK_OK(cio_run_until_complete(loop, t, &r));
    CHECK_EQ((size_t)(intptr_t)r, CIO_MAX_STACK_SIZE);
    cio_future_unref(t);
    cio_loop_free(loop);
}

/* ---- SIGSEGV handlers of the program ------------------------------------------ */

/* The program's handler: it recovers from the faults it expects (a touch
 * of its own PROT_NONE page) with siglongjmp, and for any other fault it
 * either passes the fault on to the handler it replaced or puts the default
 * action back (a common way to write one). */
static sigjmp_buf recover;
static char *trap_page;
static int recovered;
static bool program_chains;
static struct sigaction program_previous;

static void program_handler(int sig, siginfo_t *info, void *uctx) {
    if (trap_page && (char *)info->si_addr == trap_page) {
        recovered++;
        siglongjmp(recover, 1);
    }
    if (program_chains && (program_previous.sa_flags & SA_SIGINFO) &&
        program_previous.sa_sigaction) {
        program_previous.sa_sigaction(sig, info, uctx);
        return;
    }
    signal(sig, SIG_DFL);
}

static void install_program_handler(void) {
    if (!trap_page) {
        trap_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(trap_page != MAP_FAILED);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = program_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    CHECK_OK(sigaction(SIGSEGV, &sa, &program_previous));
}

/* Touches the trap page, which the program's handler recovers from. */
static void *fault_and_recover(void *arg) {
    (void)arg;
    int before = recovered;
    if (sigsetjmp(recover, 1) == 0) {
        trap_page[0] = 1;
        FAIL("the trap page did not fault");
    }
    CHECK_EQ(recovered, before + 1);
    fprintf(stderr, "child: recovered %d\n", recovered);
    return NULL;
}

static void *recover_twice_then_overflow(void *arg) {
    fault_and_recover(arg);
    fault_and_recover(arg);
    return overflow(NULL);
}

TEST(program_handler_installed_before_cio_keeps_cios_report) {
    /* The program's handler recovers from two faults, passed on by cio's;
     * a task's overflow afterwards is still reported by name. */
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = (size_t)-1, .before = install_program_handler};
    run_in_child(recover_twice_then_overflow, &setup, out, sizeof out, &status);
    if (!strstr(out, "child: recovered 2")) FAIL("child said: %s", out);
    check_named_report(out, status, 65536);
}

/* Lets cio install its handler (the first loop run), then installs the
 * program's on top of it. */
static void *install_program_handler_task(void *arg) {
    (void)arg;
    install_program_handler();
    return NULL;
}

TEST(program_handler_installed_after_cio_keeps_cios_report) {
    /* The next loop run puts cio's handler in front again: the program's
     * handler still recovers from its faults, and overflows are named. */
    char out[4096];
    int status;
    program_chains = false;
    child_setup setup = {.guard_budget = (size_t)-1, .first = install_program_handler_task};
    run_in_child(recover_twice_then_overflow, &setup, out, sizeof out, &status);
    if (!strstr(out, "child: recovered 2")) FAIL("child said: %s", out);
    check_named_report(out, status, 65536);
}

static void *wild_fault(void *arg) {
    (void)arg;
    char *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(unmapped != MAP_FAILED);
    *(volatile char *)unmapped = 1;
    FAIL("no fault");
}

/* How a fault that no handler of the program claims must end: with SIGSEGV,
 * or with AddressSanitizer's report, whose handler was there before cio's. */
static void check_plain_segv(const char *out, int status) {
    CHECK(!strstr(out, "overflowed"));
    if (strstr(out, "AddressSanitizer: SEGV")) return;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV) FAIL("child said: %s", out);
}

TEST(fault_nobody_claims_ends_with_sigsegv) {
    /* Without a handler of the program's: the default action. */
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = (size_t)-1};
    run_in_child(wild_fault, &setup, out, sizeof out, &status);
    check_plain_segv(out, status);
}

TEST(handlers_passing_faults_to_each_other_end_with_sigsegv) {
    /* The program's handler passes what it does not claim to cio's, and cio's
     * (installed again in front of it) passes it back: the fault must still
     * end the process with SIGSEGV, not bounce between the two for ever. */
    char out[4096];
    int status;
    program_chains = true;
    child_setup setup = {.guard_budget = (size_t)-1, .first = install_program_handler_task};
    run_in_child(wild_fault, &setup, out, sizeof out, &status);
    check_plain_segv(out, status);
}

/* 100,000 concurrent tasks under the default mapping limit, with the
 * guard-page fallback of older kernels: the first ones get guard pages, the
 * rest canaries, and every one runs. */
#define MANY 100000
static long woke;

static void *sleeper(void *arg) {
    cio_future *gate = arg;
    CHECK_OK(cio_await(gate, NULL));
    woke++;
    return NULL;
}

static void open_gate(cio_loop *loop, void *arg) {
    (void)loop;
    CHECK_OK(cio_future_set_result(arg, NULL));
}

static void stop_loop(cio_loop *loop, void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_stop(loop));
}

TEST(hundred_thousand_tasks) {
    cio__stack_disable_guard_regions(true);
    cio_loop *loop = test_loop();
    CHECK_STR(cio_loop_stack_guard(loop), "guard-page");
    cio_future *gate;
    CHECK_OK(cio_future_new(loop, &gate));
    cio_task_options opts = {.stack_size = 32 * 1024};
    size_t guarded_before = cio__stack_guard_budget();
    for (int i = 0; i < MANY; i++) {
        int rc = cio_spawn_with(loop, sleeper, gate, &opts, NULL);
        if (rc < 0) FAIL("spawn %d failed: %s", i + 1, cio_strerror(rc));
    }
    /* Let them all start and block, then check they exist, then release. */
    CHECK_OK(cio_call_later(loop, 0.01, open_gate, gate, NULL));
    cio_task *list[1];
    CHECK_EQ(cio_all_tasks(loop, list, 0), MANY);
    /* Run until every task is done: all_tasks is then empty. */
    CHECK_OK(cio_run_until_complete(loop, gate, NULL));
    while (cio_all_tasks(loop, NULL, 0) > 0) {
        CHECK_OK(cio_call_soon(loop, stop_loop, NULL, NULL));
        CHECK_OK(cio_run_forever(loop));
    }
    CHECK_EQ(woke, MANY);
    CHECK_INT(guarded_before, <, MANY); /* so some really were unguarded */
    cio_future_unref(gate);
    cio_loop_free(loop);
}

/* A million concurrent tasks, each with its guard region: the slabs stay one
 * mapping each (or fewer, merged), far from vm.max_map_count. */
#define MILLION 1000000
static long guarded, alive;
static cio_future *million_gate;

static void *guarded_sleeper(void *arg) {
    (void)arg;
    if (guard_of(cio_current_task()) >= CIO_DEFAULT_STACK_GUARD_SIZE) guarded++;
    alive++;
    CHECK_OK(cio_await(million_gate, NULL));
    alive--;
    return NULL;
}

static long count_mappings(void) {
    FILE *f = fopen("/proc/self/maps", "re");
    CHECK(f != NULL);
    long lines = 0;
    int c;
    while ((c = fgetc(f)) != EOF) lines += c == '\n';
    fclose(f);
    return lines;
}

static void *spawn_million(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task_options opts = {.stack_size = CIO_MIN_STACK_SIZE};
    for (long i = 0; i < MILLION; i++) {
        int rc = cio_spawn_with(loop, guarded_sleeper, NULL, &opts, NULL);
        if (rc < 0) FAIL("spawn %ld failed: %s", i + 1, cio_strerror(rc));
    }
    CHECK_OK(cio_sleep(0)); /* they all run to their wait */
    CHECK_EQ(alive, MILLION);
    CHECK_EQ(guarded, MILLION);
    long mappings = count_mappings();
    if (mappings > MILLION / 64 + 1000) FAIL("%ld mappings for a million stacks", mappings);
    CHECK_OK(cio_future_set_result(million_gate, NULL));
    CHECK_OK(cio_sleep(0));
    CHECK_EQ(alive, 0);
    return NULL;
}

TEST(million_tasks_each_with_a_guard) {
    if (!cio__stack_guard_regions_available())
        SKIP("this kernel has no MADV_GUARD_INSTALL (Linux 6.13+): its fallback is tested by the guard-page and canary tests");
    cio_loop *loop = test_loop();
    CHECK_STR(cio_loop_stack_guard(loop), "guard-region");
    CHECK_OK(cio_future_new(loop, &million_gate));
    CHECK_OK(test_run(loop, spawn_million, NULL, NULL));
    cio_future_unref(million_gate);
    cio_loop_free(loop);
}

/* ---- overflow reports name the spawn site (issue 12, item 6) --------------- */

/* Acceptance test 10: a 16 KiB stack that recurses dies by SIGSEGV, and the
 * report names the task, its id, its spawn site and its stack size. */
TEST(overflow_report_names_task_spawn_site_and_size) {
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = (size_t)-1, .stack_size = 16 * 1024};
    run_in_child(overflow, &setup, out, sizeof out, &status);
    check_named_report(out, status, 16384);
    /* The spawn macro's file:line, and the task's id (the second task of
     * its loop, after none: the first spawn in the child). */
    if (!strstr(out, "(task 1, spawned at ") || !strstr(out, "test_stack.c:"))
        FAIL("no id or spawn site in: %s", out);
    if (!strstr(out, "; fault at 0x") || !strstr(out, ", guard 0x"))
        FAIL("no fault address in: %s", out);
}

/* Spawned through a function pointer there is no file:line: the report
 * names the module and offset of the spawning code instead, found without
 * any call that is unsafe in a signal handler. */
TEST(overflow_report_names_spawning_module_without_a_site) {
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = (size_t)-1, .stack_size = 16 * 1024, .by_pointer = true};
    run_in_child(overflow, &setup, out, sizeof out, &status);
    check_named_report(out, status, 16384);
    if (!strstr(out, "spawned at /") || !strstr(out, "test_stack+0x"))
        FAIL("no module+offset in: %s", out);
}

/* Acceptance test 12: with guard pages off, a task that writes 64 bytes past
 * the low end of its stack (the frames of an overflow that never moved the
 * stack pointer at a switch) is reported by name at its next switch, before
 * it runs again. */
static void *write_past_limit(void *arg) {
    (void)arg;
    cio__task_stack_info info;
    CHECK_OK(cio__task_get_stack(cio_current_task(), &info));
    CHECK(info.guard == 0);
    memset((char *)info.lo - 64, 0x5a, 64);
    cio_sleep(0);
    fprintf(stderr, "child: ran on after the overflow\n");
    return NULL;
}

TEST(canary_names_task_writing_past_its_limit_at_next_switch) {
    char out[4096];
    int status;
    child_setup setup = {.guard_budget = 0, .no_regions = true};
    run_in_child(write_past_limit, &setup, out, sizeof out, &status);
    check_report(out, status, 65536, SIGABRT);
    if (strstr(out, "ran on")) FAIL("caught too late: %s", out);
    if (!strstr(out, "spawned at ") || !strstr(out, "test_stack.c:") || !strstr(out, "canary"))
        FAIL("no spawn site or cause in: %s", out);
}

/* ---- high-water marks (issue 12, item 6; acceptance test 11) ------------- */

/* Touches n bytes of a local buffer, then suspends so the mark is read while
 * the task is alive and switched out. */
__attribute__((noinline)) static void touch_stack(size_t n) {
    volatile char buf[10 * 1024];
    if (n > sizeof buf) n = sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = 1;
    CHECK_OK(cio_sleep(0));
}

static void *deep_task(void *arg) {
    touch_stack(10 * 1024);
    (void)arg;
    return NULL;
}

static void *shallow_task(void *arg) {
    (void)arg;
    CHECK_OK(cio_sleep(0));
    return NULL;
}

/* Runs fn as a task spawned at one line (one census site) with a 64 KiB
 * stack; returns its exact mark, read while it waits in cio_sleep(0). */
static ssize_t mark_of(cio_loop *loop, cio_coro_fn fn, size_t *low_water) {
    cio_task_options opts = {.stack_size = 64 * 1024};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, fn, NULL, &opts, &t));
    /* One iteration: the task runs to its sleep and is switched out. */
    CHECK_OK(cio_call_soon(loop, stop_loop, NULL, NULL));
    CHECK_OK(cio_run_forever(loop));
    ssize_t mark = cio_task_stack_high_water(t);
    cio_task_info info;
    CHECK_OK(cio_task_get_info(t, &info));
    *low_water = info.stack_low_water;
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    /* Measured again at its end (debug mode): it went on after the sleep. */
    if (cio_loop_get_debug(loop)) CHECK_INT(cio_task_stack_high_water(t), >=, mark);
    else CHECK_ERR(cio_task_stack_high_water(t), -ENODATA);
    cio_future_unref(t);
    return mark;
}

TEST(high_water_mark_is_exact_and_a_reused_stack_reports_its_own) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_debug(loop, 1));
    size_t low;
    ssize_t deep = mark_of(loop, deep_task, &low);
    fprintf(stderr, "deep: exact %zd, low water %zu\n", deep, low);
    /* 10 KiB of buffer, plus the frames above it, under 4 KiB. */
    CHECK_INT(deep, >=, 10 * 1024);
    CHECK_INT(deep, <=, 14 * 1024);
    /* The low-water bound: the switch happens below the buffer. */
    CHECK_INT(low, >=, 10 * 1024);
    CHECK_INT(low, <=, deep);
    /* The same stack serves the next task (the pool is LIFO), wiped down to
     * the deep task's mark when it ended: the shallow task's mark is its
     * own, far below the deep one's. */
    ssize_t shallow = mark_of(loop, shallow_task, &low);
    fprintf(stderr, "shallow: exact %zd, low water %zu\n", shallow, low);
    CHECK_INT(shallow, >, 0);
    CHECK_INT(shallow, <, 4 * 1024);
    CHECK_INT(low, <=, shallow);
    CHECK_OK(cio_loop_free(loop));
}

TEST(high_water_mark_of_a_reused_stack_outside_debug_mode_is_an_upper_bound) {
    cio_loop *loop = test_loop();
    size_t low;
    ssize_t deep = mark_of(loop, deep_task, &low);
    ssize_t shallow = mark_of(loop, shallow_task, &low);
    /* Not wiped: the deep task's data is still there (give or take the
     * zero words the deep task's last switch saved). */
    CHECK_INT(deep, >=, 10 * 1024);
    CHECK_INT(shallow, >=, 10 * 1024);
    CHECK_OK(cio_loop_free(loop));
}

/* Every task of one census site: the deep one and then two shallow ones,
 * all spawned by the same line. */
static void *census_task(void *arg) {
    if (arg) touch_stack(10 * 1024);
    else CHECK_OK(cio_sleep(0));
    return NULL;
}

static void spawn_census_task(cio_loop *loop, bool deep, cio_task **t) {
    cio_task_options opts = {.stack_size = 64 * 1024};
    CHECK_OK(cio_spawn_with(loop, census_task, deep ? loop : NULL, &opts, t));
}

static char census_text[4096];

TEST(census_line_of_a_spawn_site_shows_its_maximum) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_debug(loop, 1));
    cio_task *t;
    spawn_census_task(loop, true, &t);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    ssize_t deep = cio_task_stack_high_water(t);
    cio_future_unref(t);
    for (int i = 0; i < 2; i++) {
        spawn_census_task(loop, false, &t);
        CHECK_OK(cio_run_until_complete(loop, t, NULL));
        CHECK_INT(cio_task_stack_high_water(t), <, 4096);
        cio_future_unref(t);
    }
    /* One more, alive while the census is taken. */
    spawn_census_task(loop, false, &t);
    FILE *f = fmemopen(census_text, sizeof census_text - 1, "w");
    CHECK(f != NULL);
    int lines = cio_loop_stack_census(loop, f);
    fclose(f);
    fprintf(stderr, "%s", census_text);
    CHECK_INT(lines, >=, 1);
    char want[128];
    snprintf(want, sizeof want, " max %zd of 65536 B (%zd%%), 4 tasks\n", deep, deep * 100 / 65536);
    if (!strstr(census_text, want)) FAIL("no \"%s\" in:\n%s", want, census_text);
    /* The deepest site comes first, and it is this file's. */
    CHECK(strstr(census_text, "test_stack.c:") != NULL);
    CHECK(strstr(census_text, want) < strchr(census_text, '\n') + 1);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    CHECK_ERR(cio_loop_stack_census(NULL, stderr), -EINVAL);
    CHECK_ERR(cio_loop_stack_census(loop, NULL), -EINVAL);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- giving memory back ---------------------------------------------------- */

#define TRIM_TASKS 200

typedef struct trim_slot {
    void *lo;
    size_t size, guard;
} trim_slot;

/* Writes 32 KiB deep into its stack (the pages stay resident when the
 * stack goes back to the pool) and records where the stack lies. */
__attribute__((noinline)) static void *touch_deep(void *arg) {
    trim_slot *slot = arg;
    cio__task_stack_info info;
    CHECK_OK(cio__task_get_stack(cio_current_task(), &info));
    slot->lo = info.lo;
    slot->size = info.size;
    slot->guard = info.guard;
    volatile char deep[32 * 1024];
    for (size_t i = 0; i < sizeof deep; i += 512) deep[i] = 1;
    return NULL;
}

/* Resident pages of a stack (mincore). */
static size_t resident_pages(const trim_slot *slot) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = slot->size / page, count = 0;
    unsigned char *vec = malloc(n);
    CHECK(vec != NULL);
    CHECK_OK(mincore(slot->lo, slot->size, vec) == 0 ? 0 : -errno);
    for (size_t i = 0; i < n; i++) count += vec[i] & 1;
    free(vec);
    return count;
}

static void *sleep_briefly(void *arg) {
    (void)arg;
    return IPTR(cio_sleep(0.01));
}

static trim_slot trim_slots[TRIM_TASKS], trim_again[TRIM_TASKS];

static void run_touching_tasks(cio_loop *loop, trim_slot *slots) {
    cio_task_options opts = {.stack_size = 64 * 1024};
    for (int i = 0; i < TRIM_TASKS; i++)
        CHECK_OK(cio_spawn_with(loop, touch_deep, &slots[i], &opts, NULL));
    CHECK_OK(test_run(loop, sleep_briefly, NULL, NULL));
}

/* Waits for the touching tasks to end without letting the loop block,
 * counts their resident stacks, then blocks in a sleep (the loop's idle
 * trim) and counts the stacks left with no resident page. */
static void *count_before_and_after_idle(void *arg) {
    size_t *counts = arg;
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    for (int i = 0; i < TRIM_TASKS; i++) counts[0] += resident_pages(&trim_slots[i]) >= 8;
    CHECK_OK(cio_sleep(0.01));
    for (int i = 0; i < TRIM_TASKS; i++) counts[1] += resident_pages(&trim_slots[i]) == 0;
    return NULL;
}

TEST(idle_loop_gives_freed_stacks_back) {
    /* 200 tasks each leave 32 KiB of their stack resident; once the loop
     * blocks (here in a sleep), it keeps CIO__STACK_KEEP_BYTES of free
     * stacks as they are and gives the pages of the others back. */
    cio_loop *loop = test_loop();
    cio_task_options opts = {.stack_size = 64 * 1024};
    for (int i = 0; i < TRIM_TASKS; i++)
        CHECK_OK(cio_spawn_with(loop, touch_deep, &trim_slots[i], &opts, NULL));
    size_t counts[2] = {0, 0};
    CHECK_OK(test_run(loop, count_before_and_after_idle, counts, NULL));
    CHECK_INT(counts[0], ==, TRIM_TASKS);
    size_t kept = CIO__STACK_KEEP_BYTES / (64 * 1024);
    CHECK_INT(counts[1], >=, TRIM_TASKS - kept);
    /* Trimmed stacks serve new tasks, with their guards, and no new slab
     * is mapped for them. */
    size_t slabs = loop->stacks.slab_count;
    run_touching_tasks(loop, trim_again);
    CHECK_INT(loop->stacks.slab_count, ==, slabs);
    int known = 0;
    for (int i = 0; i < TRIM_TASKS; i++)
        for (int j = 0; j < TRIM_TASKS; j++)
            known += trim_again[i].lo == trim_slots[j].lo && trim_again[i].guard == trim_slots[j].guard;
    CHECK_INT(known, >=, TRIM_TASKS - (int)kept);
    CHECK_OK(cio_loop_free(loop));
}

TEST(trim_gives_every_free_stack_back) {
    cio_loop *loop = test_loop();
    run_touching_tasks(loop, trim_slots);
    /* The loop's idle trim ran already (in the sleep); this takes the
     * rest. */
    CHECK_INT(cio__stack_pool_trim(&loop->stacks, 0, SIZE_MAX), >=, 1);
    for (int i = 0; i < TRIM_TASKS; i++) CHECK_INT(resident_pages(&trim_slots[i]), ==, 0);
    CHECK_INT(cio__stack_pool_trim(&loop->stacks, 0, SIZE_MAX), ==, 0);
    CHECK_OK(cio_loop_free(loop));
}
