/*
 * Signals in the loop (cio_add_signal_handler, cio_remove_signal_handler)
 * and Ctrl-C in cio_run.
 *
 * A signal a thread sends to its own process with kill() while it has the
 * signal unblocked, and no other thread could take it, is delivered before
 * kill() returns (POSIX). The single-threaded tests rely on that to know
 * exactly when the handler ran; the threaded ones wait for outcomes with a
 * generous deadline that only a broken implementation would reach.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* The disposition's handler, as a plain pointer to compare. */
static void *disposition(int sig) {
    struct sigaction sa;
    CHECK_OK(sigaction(sig, NULL, &sa));
    return (sa.sa_flags & SA_SIGINFO) ? (void *)sa.sa_sigaction : (void *)sa.sa_handler;
}

static void set_disposition(int sig, void (*fn)(int)) {
    struct sigaction sa = {0};
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    CHECK_OK(sigaction(sig, &sa, NULL));
}

/* ---- callbacks run from the loop ---------------------------------------- */

static void *sleep_a_bit_first(void *arg) {
    (void)arg;
    return cio_sleep(0.001) == 0 ? NULL : cio_raise(-EIO);
}

typedef struct seen {
    cio_loop *loop;
    int calls;
    int after_kill;        /* the task's kill() had returned when it ran */
    void *arg;
    int sig;
} seen;

static int kill_returned;

static void on_usr1(cio_loop *loop, void *arg) {
    seen *s = arg;
    s->calls++;
    s->loop = loop;
    s->arg = arg;
    s->sig = SIGUSR1;
    s->after_kill = kill_returned;
    /* Not async-signal-safe: fine here, since this is no signal handler. */
    char *p = malloc(100);
    CHECK(p != NULL);
    snprintf(p, 100, "callback in loop %p", (void *)cio_running_loop());
    free(p);
    CHECK(cio_running_loop() == loop);
}

static void *kill_then_yield(void *arg) {
    (void)arg;
    kill_returned = 0;
    CHECK_OK(kill(getpid(), SIGUSR1));
    kill_returned = 1;
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(callback_runs_from_the_loop_not_the_handler) {
    cio_loop *loop = test_loop();
    seen s = {0};
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, on_usr1, &s));
    CHECK_OK(test_run(loop, kill_then_yield, NULL, NULL));
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.after_kill, 1);
    CHECK(s.loop == loop);
    CHECK(s.arg == &s);
    CHECK_OK(cio_loop_free(loop));
}

/* A signal that arrives while the loop is not running is called back once
 * it runs. */
TEST(signal_before_the_loop_runs_is_called_back_when_it_runs) {
    cio_loop *loop = test_loop();
    seen s = {0};
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, on_usr1, &s));
    CHECK_OK(kill(getpid(), SIGUSR1));
    CHECK_OK(kill(getpid(), SIGUSR1));
    CHECK_EQ(s.calls, 0);
    CHECK_OK(test_run(loop, sleep_a_bit_first, NULL, NULL));
    CHECK_EQ(s.calls, 1);
    CHECK(s.loop == loop);
    CHECK_OK(cio_loop_free(loop));
}

/* A signal that arrives while the loop sleeps wakes it. */
static void *send_later(void *arg) {
    /* The thread inherited the main thread's mask: it alone takes it. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, *(int *)arg);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(getpid(), *(int *)arg);
    return NULL;
}

static void stop_loop(cio_loop *loop, void *arg) {
    (*(int *)arg)++;
    cio_loop_stop(loop);
}

TEST(signal_wakes_a_sleeping_loop) {
    cio_loop *loop = test_loop();
    int calls = 0, sig = SIGUSR2;
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR2, stop_loop, &calls));
    /* The main thread blocks the signal, so the loop's poll is never cut
     * short by EINTR: the sender thread takes it, and only the wake-up the
     * handler writes can end the poll. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_t th;
    CHECK_OK(pthread_sigmask(SIG_BLOCK, &set, &old));
    CHECK_OK(pthread_create(&th, NULL, send_later, &sig));
    CHECK_OK(cio_run_forever(loop));
    CHECK_OK(pthread_join(th, NULL));
    CHECK_OK(pthread_sigmask(SIG_SETMASK, &old, NULL));
    CHECK_EQ(calls, 1);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- replace and remove --------------------------------------------------- */

static void count_a(cio_loop *loop, void *arg) { (void)loop; (*(int *)arg) += 1; }
static void count_b(cio_loop *loop, void *arg) { (void)loop; (*(int *)arg) += 100; }

static void *kill_usr1(void *arg) {
    (void)arg;
    CHECK_OK(kill(getpid(), SIGUSR1));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(adding_again_replaces_the_handler) {
    cio_loop *loop = test_loop();
    int a = 0, b = 0;
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &a));
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_b, &b));
    CHECK_OK(test_run(loop, kill_usr1, NULL, NULL));
    CHECK_EQ(a, 0);
    CHECK_EQ(b, 100);
    CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR1), 1);
    CHECK_OK(cio_loop_free(loop));
}

/* A signal taken but not yet called back, then the handler replaced: the
 * call happens, with the new callback. */
static void *kill_replace(void *arg) {
    int *counts = arg;
    CHECK_OK(kill(getpid(), SIGUSR1));
    CHECK_OK(cio_sleep(0)); /* the loop takes the signal and queues its call */
    CHECK_OK(cio_add_signal_handler(cio_running_loop(), SIGUSR1, count_b, &counts[1]));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(replacing_keeps_a_queued_call_with_the_new_callback) {
    cio_loop *loop = test_loop();
    int counts[2] = {0, 0};
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &counts[0]));
    CHECK_OK(test_run(loop, kill_replace, counts, NULL));
    CHECK_EQ(counts[0], 0);
    CHECK_EQ(counts[1], 100);
    CHECK_OK(cio_loop_free(loop));
}

static void *kill_remove(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    /* Another loop keeps SIGUSR1 caught, so removing ours does not bring
     * the default action (termination) back before the signal is taken. */
    CHECK_OK(kill(getpid(), SIGUSR1));
    CHECK_OK(cio_sleep(0));
    CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR1), 1);
    CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR1), 0);
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(remove_drops_a_queued_call_and_says_whether_it_removed) {
    cio_loop *loop = test_loop(), *keeper = test_loop();
    int calls = 0, kept = 0;
    CHECK_OK(cio_add_signal_handler(keeper, SIGUSR1, count_a, &kept));
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &calls));
    CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR2), 0);
    CHECK_OK(test_run(loop, kill_remove, NULL, NULL));
    CHECK_EQ(calls, 0);
    CHECK_OK(cio_loop_free(loop));
    CHECK_OK(cio_loop_free(keeper));
}

/* ---- errors ---------------------------------------------------------------- */

TEST(bad_signals_and_arguments_are_refused) {
    cio_loop *loop = test_loop();
    int n = 0;
    void *before[NSIG];
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        before[sig] = sigaction(sig, NULL, &sa) == 0 ? (void *)sa.sa_handler : NULL;
    }
    CHECK_ERR(cio_add_signal_handler(NULL, SIGUSR1, count_a, &n), -EINVAL);
    CHECK_ERR(cio_add_signal_handler(loop, SIGUSR1, NULL, &n), -EINVAL);
    const int bad[] = {0, -1, -SIGUSR1, SIGRTMAX + 1, NSIG, 1000, SIGKILL, SIGSTOP,
                       SIGSEGV, SIGBUS, SIGFPE, SIGILL, 32, 33};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_ERR(cio_add_signal_handler(loop, bad[i], count_a, &n), -EINVAL);
    CHECK_ERR(cio_remove_signal_handler(NULL, SIGUSR1), -EINVAL);
    CHECK_ERR(cio_remove_signal_handler(loop, 0), -EINVAL);
    CHECK_ERR(cio_remove_signal_handler(loop, SIGRTMAX + 1), -EINVAL);
    /* glibc's own two are no valid signal (asyncio: ValueError). */
    CHECK_ERR(cio_remove_signal_handler(loop, 32), -EINVAL);
    CHECK_ERR(cio_remove_signal_handler(loop, 33), -EINVAL);
    CHECK_EQ(cio_remove_signal_handler(loop, SIGRTMIN), 0);
    CHECK_EQ(cio_remove_signal_handler(loop, SIGKILL), 0);
    /* Nothing was touched by the refusals. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0) CHECK(before[sig] == (void *)sa.sa_handler);
    }
    CHECK_OK(cio_loop_close(loop));
    CHECK_ERR(cio_add_signal_handler(loop, SIGUSR1, count_a, &n), -CIO_ELOOPCLOSED);
    CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR1), 0);
    CHECK_STR(cio_strerror(-CIO_EINTERRUPTED), "Interrupted by SIGINT (KeyboardInterrupt)");
    CHECK_OK(cio_loop_free(loop));
}

/* ---- dispositions ---------------------------------------------------------- */

static void program_handler(int sig) { (void)sig; }

TEST(removing_the_last_handler_restores_the_previous_disposition) {
    cio_loop *a = test_loop(), *b = test_loop();
    int n = 0;
    set_disposition(SIGUSR2, program_handler);
    set_disposition(SIGHUP, SIG_IGN);
    CHECK_OK(cio_add_signal_handler(a, SIGUSR2, count_a, &n));
    CHECK_OK(cio_add_signal_handler(b, SIGUSR2, count_a, &n));
    CHECK_OK(cio_add_signal_handler(a, SIGHUP, count_a, &n));
    void *cios = disposition(SIGUSR2);
    CHECK(cios != (void *)program_handler);
    CHECK(disposition(SIGHUP) == cios);
    /* Still held by b. */
    CHECK_EQ(cio_remove_signal_handler(a, SIGUSR2), 1);
    CHECK(disposition(SIGUSR2) == cios);
    CHECK_EQ(cio_remove_signal_handler(b, SIGUSR2), 1);
    CHECK(disposition(SIGUSR2) == (void *)program_handler);
    CHECK_EQ(cio_remove_signal_handler(a, SIGHUP), 1);
    CHECK(disposition(SIGHUP) == (void *)SIG_IGN);
    /* A program that replaced cio's handler keeps its own. */
    CHECK_OK(cio_add_signal_handler(a, SIGUSR2, count_a, &n));
    set_disposition(SIGUSR2, SIG_IGN);
    CHECK_EQ(cio_remove_signal_handler(a, SIGUSR2), 1);
    CHECK(disposition(SIGUSR2) == (void *)SIG_IGN);
    set_disposition(SIGUSR2, SIG_DFL);
    set_disposition(SIGHUP, SIG_DFL);
    CHECK_OK(cio_loop_free(a));
    CHECK_OK(cio_loop_free(b));
}

TEST(loop_close_with_handlers_restores_dispositions) {
    cio_loop *loop = test_loop();
    int n = 0;
    set_disposition(SIGUSR2, program_handler);
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &n));
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR2, count_a, &n));
    CHECK_OK(cio_add_signal_handler(loop, SIGRTMIN + 1, count_a, &n));
    CHECK_OK(cio_add_signal_handler(loop, SIGRTMAX - 1, count_a, &n)); /* Valgrind keeps SIGRTMAX */
    CHECK(disposition(SIGUSR1) != (void *)SIG_DFL);
    /* A signal taken but not called back when the loop closes is dropped. */
    CHECK_OK(kill(getpid(), SIGUSR1));
    CHECK_OK(cio_loop_close(loop));
    CHECK(disposition(SIGUSR1) == (void *)SIG_DFL);
    CHECK(disposition(SIGUSR2) == (void *)program_handler);
    CHECK(disposition(SIGRTMIN + 1) == (void *)SIG_DFL);
    CHECK(disposition(SIGRTMAX - 1) == (void *)SIG_DFL);
    CHECK_EQ(n, 0);
    CHECK_OK(cio_loop_free(loop));
    set_disposition(SIGUSR2, SIG_DFL);
}

/* cio touches only the signals asked for: SIGCHLD in particular stays the
 * program's, with a loop made, run, and holding other signals. */
static void *sleep_a_bit(void *arg) {
    (void)arg;
    return cio_sleep(0.001) == 0 ? NULL : cio_raise(-EIO);
}

TEST(only_the_signals_asked_for_are_touched) {
    cio_loop *loop = test_loop();
    /* Running a loop once installs what cio always does (the overflow
     * report's SIGSEGV handler); the snapshot comes after. */
    CHECK_OK(test_run(loop, sleep_a_bit, NULL, NULL));
    void *before[NSIG];
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        before[sig] = sigaction(sig, NULL, &sa) == 0 ? (void *)sa.sa_handler : NULL;
    }
    int n = 0;
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &n));
    CHECK_OK(test_run(loop, sleep_a_bit, NULL, NULL));
    CHECK_OK(cio_run(sleep_a_bit, NULL, NULL));
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) != 0) continue;
        if (sig == SIGUSR1) CHECK(before[sig] != (void *)sa.sa_handler);
        else if (before[sig] != (void *)sa.sa_handler) FAIL("signal %d was changed", sig);
    }
    CHECK(disposition(SIGCHLD) == (void *)SIG_DFL);
    CHECK_OK(cio_loop_free(loop));
    CHECK(disposition(SIGUSR1) == (void *)SIG_DFL);
}

/* ---- several loops, several threads ----------------------------------------- */

typedef struct loop_thread {
    cio_loop *loop;
    atomic_int ready;
    int calls;
} loop_thread;

static void mark_ready(cio_loop *loop, void *arg) {
    (void)loop;
    atomic_store(&((loop_thread *)arg)->ready, 1);
}

static void *run_loop_thread(void *arg) {
    loop_thread *lt = arg;
    CHECK_OK(cio_call_soon(lt->loop, mark_ready, lt, NULL));
    CHECK_OK(cio_run_forever(lt->loop));
    return NULL;
}

TEST(two_loops_in_two_threads_both_get_the_signal) {
    loop_thread lt[2] = {0};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        lt[i].loop = test_loop();
        CHECK_OK(cio_add_signal_handler(lt[i].loop, SIGUSR1, stop_loop, &lt[i].calls));
    }
    for (int i = 0; i < 2; i++) CHECK_OK(pthread_create(&th[i], NULL, run_loop_thread, &lt[i]));
    while (!atomic_load(&lt[0].ready) || !atomic_load(&lt[1].ready)) sched_yield();
    /* Linux delivers it to one thread of three; both loops must hear. */
    CHECK_OK(kill(getpid(), SIGUSR1));
    for (int i = 0; i < 2; i++) CHECK_OK(pthread_join(th[i], NULL));
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(lt[i].calls, 1);
        CHECK_OK(cio_loop_free(lt[i].loop));
    }
    CHECK(disposition(SIGUSR1) == (void *)SIG_DFL);
}

/* ---- storms -------------------------------------------------------------------- */

#define STORM 10000

typedef struct storm {
    int calls;
    atomic_int sent_all;
    int calls_after_last;
    cio_event *after;
} storm;

static void storm_cb(cio_loop *loop, void *arg) {
    (void)loop;
    storm *s = arg;
    s->calls++;
    if (atomic_load(&s->sent_all)) {
        s->calls_after_last++;
        CHECK_OK(cio_event_set(s->after));
    }
}

static void *storm_in_task(void *arg) {
    storm *s = arg;
    /* Each kill is handled before it returns: 10,000 arrivals, no yield. */
    for (int i = 0; i < STORM; i++) CHECK_OK(kill(getpid(), SIGUSR1));
    atomic_store(&s->sent_all, 1);
    int rc = cio_event_wait_until(s->after, cio_loop_time(cio_running_loop()) + 30.0);
    return rc == 0 ? NULL : cio_raise(rc);
}

TEST(storm_of_ten_thousand_is_coalesced_and_followed_by_a_call) {
    cio_loop *loop = test_loop();
    storm s = {0};
    CHECK_OK(cio_event_new(&s.after));
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, storm_cb, &s));
    CHECK_OK(test_run(loop, storm_in_task, &s, NULL));
    /* All arrived between two drains: exactly one call, after the last. */
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.calls_after_last, 1);
    CHECK_OK(cio_event_free(s.after));
    CHECK_OK(cio_loop_free(loop));
}

static void *storm_sender(void *arg) {
    storm *s = arg;
    for (int i = 0; i < STORM; i++) kill(getpid(), SIGUSR1);
    atomic_store(&s->sent_all, 1);
    /* Sent after sent_all: whichever call takes it sees sent_all. */
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void *wait_after(void *arg) {
    storm *s = arg;
    double when = cio_loop_time(cio_running_loop()) + 30.0;
    int rc = cio_event_wait_until(s->after, when);
    return rc == 0 ? NULL : cio_raise(rc);
}

TEST(storm_from_another_thread_while_the_loop_runs) {
    cio_loop *loop = test_loop();
    storm s = {0};
    CHECK_OK(cio_event_new(&s.after));
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, storm_cb, &s));
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, storm_sender, &s));
    CHECK_OK(test_run(loop, wait_after, &s, NULL));
    CHECK_OK(pthread_join(th, NULL));
    CHECK(s.calls >= 1);
    CHECK(s.calls <= STORM + 1);
    CHECK(s.calls_after_last >= 1);
    CHECK_OK(cio_event_free(s.after));
    CHECK_OK(cio_loop_free(loop));
}

/* Loops made, given handlers, run and freed while another thread sends
 * signals without pause: the handler never reaches a freed loop (ASan and
 * Valgrind would say). A second loop holds SIGUSR1 throughout, so the
 * default action never comes back between two rounds. */
typedef struct churn {
    atomic_int stop;
    atomic_long sent;
} churn;

static void *churn_sender(void *arg) {
    churn *c = arg;
    /* A short pause between signals keeps them coming through every
     * round without starving the main thread (under Valgrind, which runs
     * one thread at a time, especially). */
    struct timespec pause = {0, 20 * 1000};
    while (!atomic_load(&c->stop)) {
        kill(getpid(), SIGUSR1);
        atomic_fetch_add(&c->sent, 1);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

TEST(loops_freed_while_signals_arrive_are_never_touched) {
    cio_loop *keeper = test_loop();
    int kept = 0;
    CHECK_OK(cio_add_signal_handler(keeper, SIGUSR1, count_a, &kept));
    churn c = {0};
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, churn_sender, &c));
    for (int round = 0; round < 50; round++) {
        cio_loop *loop = test_loop();
        int n = 0;
        CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &n));
        CHECK_OK(cio_add_signal_handler(loop, SIGUSR2, count_a, &n));
        CHECK_OK(test_run(loop, sleep_a_bit, NULL, NULL));
        if (round % 2) CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR1), 1);
        CHECK_OK(cio_loop_free(loop));
    }
    atomic_store(&c.stop, 1);
    CHECK_OK(pthread_join(th, NULL));
    CHECK(atomic_load(&c.sent) > 0);
    CHECK_OK(cio_loop_free(keeper));
}

/* ---- fork ------------------------------------------------------------------------- */

static void *child_kill_usr1(void *arg) {
    (void)arg;
    CHECK_OK(kill(getpid(), SIGUSR1));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    return NULL;
}

TEST(forked_child_gets_the_previous_dispositions_back) {
    cio_loop *loop = test_loop();
    int n = 0;
    set_disposition(SIGUSR2, program_handler);
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &n));
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR2, count_a, &n));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The parent's loop holds nothing here. */
        if (disposition(SIGUSR1) != (void *)SIG_DFL) _exit(10);
        if (disposition(SIGUSR2) != (void *)program_handler) _exit(11);
        if (cio_add_signal_handler(loop, SIGUSR1, count_a, &n) != -CIO_EFORKED) _exit(12);
        /* A loop of the child's own holds signals as usual. */
        cio_loop *mine;
        if (cio_loop_new(&mine) < 0) _exit(13);
        int calls = 0;
        if (cio_add_signal_handler(mine, SIGUSR1, count_a, &calls) != 0) _exit(14);
        if (test_run(mine, child_kill_usr1, NULL, NULL) != 0) _exit(15);
        if (calls != 1) _exit(16);
        if (cio_loop_free(mine) != 0) _exit(17);
        if (disposition(SIGUSR1) != (void *)SIG_DFL) _exit(18);
        /* The default action is back: SIGUSR1 ends the child. */
        kill(getpid(), SIGUSR1);
        _exit(19);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) FAIL("child exited with %d", WEXITSTATUS(status));
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGUSR1);
    /* The parent still holds both. */
    CHECK(disposition(SIGUSR1) != (void *)SIG_DFL);
    CHECK_OK(test_run(loop, child_kill_usr1, NULL, NULL));
    CHECK_EQ(n, 1);
    CHECK_OK(cio_loop_free(loop));
    CHECK(disposition(SIGUSR2) == (void *)program_handler);
    set_disposition(SIGUSR2, SIG_DFL);
}

/* ---- Ctrl-C in cio_run -------------------------------------------------------------- */

/* The child reports through a pipe: 'r' once its main task runs, 'c' when
 * the main task cleans up after -ECANCELED. */
static int report_fd = -1;

static void report(char c) {
    CHECK_EQ(write(report_fd, &c, 1), 1);
}

static char read_report(int fd) {
    char c = 0;
    ssize_t n;
    do {
        n = read(fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? c : 0;
}

enum { CLEANUP_RETURNS, CLEANUP_HANGS, CLEANUP_UNCANCELS };

static void *sleepy_main(void *arg) {
    int mode = PTRI(arg);
    /* While the main task runs, cio_run holds SIGINT. */
    CHECK(disposition(SIGINT) != (void *)SIG_DFL);
    report('r');
    int rc = cio_sleep(30);
    if (rc != -ECANCELED) return cio_raise(-EIO);
    report('c');
    if (mode == CLEANUP_HANGS) {
        /* Stuck in clean-up, loop and all: only the second SIGINT helps.
         * (sleep, not pause: ThreadSanitizer defers a signal to the
         * thread's next intercepted call, and one that came just before
         * pause() would wait for ever.) */
        for (;;) sleep(1);
    }
    if (mode == CLEANUP_UNCANCELS) {
        CHECK_EQ(cio_task_uncancel(cio_current_task()), 0);
        return IPTR(7);
    }
    return cio_raise(-ECANCELED);
}

/* Forks a child that runs cio_run(sleepy_main, mode); returns its pid and
 * the read end of its report pipe. The child exits 42 when cio_run said
 * -CIO_EINTERRUPTED, 43 when it returned 0 with result 7, else 1. */
static pid_t start_child(int mode, int *rd) {
    int p[2];
    CHECK_OK(pipe(p));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        report_fd = p[1];
        /* The test may have been started with SIGINT ignored (a shell's
         * background job): cio_run would rightly leave that alone. */
        set_disposition(SIGINT, SIG_DFL);
        void *result = NULL;
        int rc = cio_run(sleepy_main, IPTR(mode), &result);
        if (disposition(SIGINT) != (void *)SIG_DFL) _exit(2);
        if (rc == -CIO_EINTERRUPTED) _exit(42);
        if (rc == 0 && PTRI(result) == 7) _exit(43);
        fprintf(stderr, "child: cio_run returned %s\n", cio_strerror(rc));
        _exit(1);
    }
    close(p[1]);
    *rd = p[0];
    return pid;
}

TEST(sigint_cancels_the_main_task_and_cio_run_says_interrupted) {
    int rd;
    pid_t pid = start_child(CLEANUP_RETURNS, &rd);
    CHECK_EQ(read_report(rd), 'r');
    CHECK_OK(kill(pid, SIGINT));
    CHECK_EQ(read_report(rd), 'c');
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) FAIL("child died by signal %d", WTERMSIG(status));
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 42);
    close(rd);
}

TEST(second_sigint_during_cleanup_ends_the_process) {
    int rd;
    pid_t pid = start_child(CLEANUP_HANGS, &rd);
    CHECK_EQ(read_report(rd), 'r');
    CHECK_OK(kill(pid, SIGINT));
    CHECK_EQ(read_report(rd), 'c');
    CHECK_OK(kill(pid, SIGINT));
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) FAIL("child exited with %d", WEXITSTATUS(status));
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGINT);
    close(rd);
}

TEST(main_task_that_uncancels_keeps_its_result) {
    int rd;
    pid_t pid = start_child(CLEANUP_UNCANCELS, &rd);
    CHECK_EQ(read_report(rd), 'r');
    CHECK_OK(kill(pid, SIGINT));
    CHECK_EQ(read_report(rd), 'c');
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 43);
    close(rd);
}

/* SIGINT after the main task finished, before cio_run gave SIGINT back:
 * nothing is left to cancel, so the signal is raised again at the end and
 * the default action ends the process, after the clean-up ran. */
static void *leftover(void *arg) {
    (void)arg;
    if (cio_sleep(30) == -ECANCELED) report('l');
    return NULL;
}

static void *interrupt_self_then_return(void *arg) {
    (void)arg;
    CHECK_OK(cio_spawn(cio_running_loop(), leftover, NULL, NULL));
    CHECK_OK(cio_sleep(0));
    CHECK_OK(kill(getpid(), SIGINT));
    return IPTR(1);
}

TEST(sigint_after_the_main_task_ended_is_raised_again) {
    int p[2];
    CHECK_OK(pipe(p));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        report_fd = p[1];
        set_disposition(SIGINT, SIG_DFL);
        cio_run(interrupt_self_then_return, NULL, NULL);
        _exit(3);
    }
    close(p[1]);
    CHECK_EQ(read_report(p[0]), 'l');
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status)) FAIL("child exited with %d", WEXITSTATUS(status));
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGINT);
    close(p[0]);
}

/* asyncio's test_interrupt_cancelled_task: a task cancels the main task
 * and then sends SIGINT. Runner's handler runs at once, before the main
 * task resumes, and cancels it a second time; the main task ends
 * cancelled with two requests, uncancel() leaves one, and asyncio.run
 * raises CancelledError, not KeyboardInterrupt (nor dies by the signal). */
static void *cancel_main_then_interrupt(void *arg) {
    CHECK_OK(cio_sleep(0));
    CHECK_EQ(cio_task_cancel(arg, NULL), 1);
    CHECK_OK(kill(getpid(), SIGINT));
    return NULL;
}

static void *main_cancelled_then_interrupted(void *arg) {
    (void)arg;
    CHECK_OK(cio_spawn(cio_running_loop(), cancel_main_then_interrupt, cio_current_task(), NULL));
    CHECK_ERR(cio_sleep(10), -ECANCELED);
    return cio_raise(-ECANCELED);
}

TEST(sigint_on_a_main_task_already_cancelled_ends_it_cancelled) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        set_disposition(SIGINT, SIG_DFL);
        int rc = cio_run(main_cancelled_then_interrupted, NULL, NULL);
        _exit(rc == -ECANCELED ? 44 : rc == -CIO_EINTERRUPTED ? 42 : 1);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) FAIL("child died by signal %d", WTERMSIG(status));
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 44);
}

/* ---- cio_run leaves SIGINT alone when it should -------------------------------------- */

static atomic_int program_sigints;

static void counting_handler(int sig) {
    (void)sig;
    atomic_fetch_add(&program_sigints, 1);
}

static void *interrupt_self(void *arg) {
    void *expect = arg;
    CHECK(disposition(SIGINT) == expect);
    CHECK_OK(kill(getpid(), SIGINT));
    CHECK_OK(cio_sleep(0.001));
    return IPTR(5);
}

TEST(cio_run_leaves_a_program_handler_in_place) {
    set_disposition(SIGINT, counting_handler);
    void *r = NULL;
    CHECK_OK(cio_run(interrupt_self, (void *)counting_handler, &r));
    CHECK_EQ(PTRI(r), 5);
    CHECK_EQ(atomic_load(&program_sigints), 1);
    CHECK(disposition(SIGINT) == (void *)counting_handler);
    /* SIG_IGN likewise. */
    set_disposition(SIGINT, SIG_IGN);
    CHECK_OK(cio_run(interrupt_self, (void *)SIG_IGN, &r));
    CHECK(disposition(SIGINT) == (void *)SIG_IGN);
    set_disposition(SIGINT, SIG_DFL);
}

static void *check_sigint_held(void *arg) {
    CHECK((disposition(SIGINT) != (void *)SIG_DFL) == (arg != NULL));
    return NULL;
}

TEST(cio_run_gives_sigint_back_and_keep_sigint_turns_it_off) {
    set_disposition(SIGINT, SIG_DFL); /* whatever the test was started with */
    CHECK_OK(cio_run(check_sigint_held, IPTR(1), NULL));
    CHECK(disposition(SIGINT) == (void *)SIG_DFL);
    cio_loop_options opts = {.keep_sigint = 1};
    CHECK_OK(cio_run_with(check_sigint_held, NULL, &opts, NULL));
    CHECK(disposition(SIGINT) == (void *)SIG_DFL);
}

static void *run_in_thread(void *arg) {
    (void)arg;
    CHECK_OK(cio_run(check_sigint_held, NULL, NULL));
    return NULL;
}

TEST(cio_run_outside_the_main_thread_leaves_sigint_alone) {
    set_disposition(SIGINT, SIG_DFL); /* whatever the test was started with */
    pthread_t th;
    CHECK_OK(pthread_create(&th, NULL, run_in_thread, NULL));
    CHECK_OK(pthread_join(th, NULL));
    CHECK(disposition(SIGINT) == (void *)SIG_DFL);
}

/* A handler the program adds for SIGINT inside cio_run replaces cio_run's:
 * SIGINT then calls it and cancels nothing. */
static void *take_sigint_over(void *arg) {
    int *calls = arg;
    CHECK_OK(cio_add_signal_handler(cio_running_loop(), SIGINT, count_a, calls));
    CHECK_OK(kill(getpid(), SIGINT));
    CHECK_OK(kill(getpid(), SIGINT)); /* no "second SIGINT" kill either */
    for (int i = 0; i < 3; i++) CHECK_OK(cio_sleep(0));
    return IPTR(9);
}

TEST(program_handler_added_in_cio_run_replaces_the_ctrl_c_handling) {
    set_disposition(SIGINT, SIG_DFL); /* whatever the test was started with */
    int calls = 0;
    void *r = NULL;
    CHECK_OK(cio_run(take_sigint_over, &calls, &r));
    CHECK_EQ(PTRI(r), 9);
    CHECK_EQ(calls, 1);
    CHECK(disposition(SIGINT) == (void *)SIG_DFL);
}

/* ---- cost ------------------------------------------------------------------------------ */

/* Holding signals puts no operation in flight, so a busy loop still makes
 * no poll per iteration (docs/design.md §4, §14): cio_run's SIGINT hold
 * costs a program nothing until Ctrl-C comes. */
static void *in_flight_under_cio_run(void *arg) {
    (void)arg;
    CHECK(disposition(SIGINT) != (void *)SIG_DFL);
    CHECK_EQ(loop_stats(cio_running_loop()).io_in_flight, 0);
    return NULL;
}

TEST(holding_signals_puts_no_operation_in_flight) {
    cio_loop *loop = test_loop();
    int n = 0;
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &n));
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR2, count_a, &n));
    CHECK_EQ(loop_stats(loop).io_in_flight, 0);
    CHECK_OK(cio_loop_free(loop));
    set_disposition(SIGINT, SIG_DFL); /* whatever the test was started with */
    CHECK_OK(cio_run(in_flight_under_cio_run, NULL, NULL));
}

/* ---- out of memory ------------------------------------------------------------------------ */

#include "base/fault.h"

/* The loop's first handler allocates its record: failing that changes
 * nothing (convention 1). */
TEST(out_of_memory_changes_nothing) {
    cio_loop *loop = test_loop();
    int n = 0;
    cio__fault_arm(1);
    CHECK_ERR(cio_add_signal_handler(loop, SIGUSR1, count_a, &n), -ENOMEM);
    cio__fault_arm(0);
    CHECK(disposition(SIGUSR1) == (void *)SIG_DFL);
    CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR1), 0);
    CHECK_OK(cio_add_signal_handler(loop, SIGUSR1, count_a, &n));
    CHECK_EQ(cio_remove_signal_handler(loop, SIGUSR1), 1);
    CHECK_OK(cio_loop_free(loop));
}
