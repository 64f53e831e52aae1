/*
 * The stall watchdog (issue 12, item 5; design: debuggability.md §7.5).
 *
 * Detection. Each loop counts its progress (core/loop.h: one relaxed store
 * per job, so a task step or a callback) and says whether it is busy (not
 * blocked waiting for I/O, and running at all). One thread for the whole
 * process wakes every threshold/2 and, for each watched loop, compares the
 * count with the one it saw last. A count that changed, or a loop that is
 * not busy, resets the loop's record to "seen moving now" (with the loop
 * thread's CPU time then); a busy loop whose count stayed the same for the
 * threshold is stalled. The estimate of the stall's start is the first
 * wake-up that saw it (never before it began), so the time reported is a
 * lower bound, late by at most threshold/2.
 *
 * What a report says, and how it is found without stopping the loop:
 *   - CPU against wall: the loop thread's CPU clock (the clock id that
 *     pthread_getcpuclockid gives, built from the thread id so a thread
 *     that ended cannot be mistaken for a live one: it just fails), read at
 *     the start and now. Near the wall time: it computes; far below: it
 *     blocks.
 *   - The system call: /proc/self/task/TID/syscall, its number named for
 *     the common blocking calls.
 *   - The running task and a backtrace: only the loop thread knows its
 *     current task, and only it can unwind its stack, so on the first
 *     report of a stall the watchdog sends it a real-time signal. The
 *     handler (on the stack the thread is on) copies the
 *     task's id, name, function and spawn site and the return addresses
 *     (backtrace(), warmed up when the watchdog thread starts so that it
 *     never loads libgcc_s inside the handler) into one preallocated
 *     record, and publishes it; the watchdog waits up to 100 ms for it and
 *     symbolizes the addresses with dladdr in its own thread. A thread that
 *     does not answer (a sanitizer that defers signals, a blocked signal)
 *     gives a report without them; a late answer finds the request
 *     withdrawn and does nothing.
 *
 * Back-off and rate limit (seastar): while the same stall lasts, reports
 * come at 1, 2, 4, 8... times the threshold, at most reports_per_minute a
 * minute per loop (the next report says how many were suppressed), and a
 * last line says when the loop moves again.
 *
 * Lifetime. The thread starts with the first watched loop and is joined
 * when the last one stops being watched (threshold 0, or loop close), so
 * it never outlives its use. A forked child starts with no watchdog.
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "base/fault.h"
#include "introspection.h"

#define MAX_FRAMES 48
#define ANSWER_WAIT_NS (100 * 1000000LL)

typedef struct cio__watchdog_entry {
    cio_loop *loop;
    cio_watchdog_options opts;
    int64_t threshold_ns;
    uint64_t seen_progress;  /* the count when last seen moving */
    int64_t seen_at;         /* when (monotonic ns) */
    int64_t cpu_at;          /* the loop thread's CPU time then, or -1 */
    int64_t queued_at;       /* its time runnable but waiting for a CPU then, or -1 */
    int seen_tid;
    int reports;             /* reports of the current stall */
    int64_t next_report;     /* stall age of the next report */
    int64_t window_start;    /* rate limit: the current minute ... */
    unsigned window_reports; /* ... and the reports written in it */
    unsigned suppressed;
    /* What the first report of the stall learned of the running task. */
    char task[256];
    struct cio__watchdog_entry *next;
} watchdog_entry;

/* The record the loop thread's handler fills. state: 0 free, 1 asked, 2
 * being written by the handler, 3 written. */
static struct {
    _Atomic int state;
    _Atomic int tid;
    int frames;
    void *pcs[MAX_FRAMES];
    void *pc;          /* where the signal interrupted the thread */
    int has_task;
    uint64_t id;
    char name[64];
    const char *site;
    const void *spawn_pc;
    void *fn;
} answer;

/* state protects entries and the thread's flags; life serializes starting
 * and stopping the thread (the join happens outside state). */
static pthread_mutex_t state = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t life = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static watchdog_entry *entries;
static pthread_t thread;
static bool thread_running, stopping;
static _Atomic int handler_signal; /* the signal the handler is installed on, or 0 */
/* True in the watchdog thread (on_stall runs there), checked before any
 * lock is taken. */
static CIO__TLS bool in_watchdog_thread;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The CPU time of thread tid of this process, or -1. The clock id is the
 * one glibc's pthread_getcpuclockid makes (CPUCLOCK_SCHED of a thread). */
static int64_t thread_cpu_ns(int tid) {
    if (tid <= 0) return -1;
    clockid_t id = (clockid_t)((~(unsigned)tid << 3) | 6);
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void in_forked_child(void) {
    /* The thread did not follow: nothing is watched in the child. */
    pthread_mutex_init(&state, NULL);
    pthread_mutex_init(&life, NULL);
    entries = NULL;
    thread_running = stopping = false;
    atomic_store(&answer.state, 0);
}

static void init_once(void) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &attr);
    pthread_condattr_destroy(&attr);
    (void)pthread_atfork(NULL, NULL, in_forked_child);
}

/* ---- the loop thread's side ------------------------------------------- */

static void on_signal(int sig, siginfo_t *info, void *uctx) {
    (void)sig;
    (void)info;
    int saved = errno;
    int asked = 1;
    if (atomic_load_explicit(&answer.tid, memory_order_relaxed) == (int)gettid() &&
        atomic_compare_exchange_strong(&answer.state, &asked, 2)) {
        cio__stack_owner owner;
        const cio__stack *stack = cio__running_stack(answer.name, sizeof answer.name, &owner);
        cio_task *task = cio_current_task();
        answer.has_task = stack != NULL && task != NULL;
        if (answer.has_task) {
            answer.id = owner.id;
            answer.site = owner.site;
            answer.spawn_pc = owner.pc;
            answer.fn = (void *)(uintptr_t)cio__task_of(task)->fn;
        }
        const ucontext_t *uc = uctx;
#if defined(__x86_64__)
        answer.pc = (void *)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
        answer.pc = (void *)uc->uc_mcontext.pc;
#else
        (void)uc;
        answer.pc = NULL;
#endif
        answer.frames = backtrace(answer.pcs, MAX_FRAMES);
        atomic_store_explicit(&answer.state, 3, memory_order_release);
    }
    errno = saved;
}

/* ---- formatting --------------------------------------------------------- */

typedef struct report {
    char text[8192];
    size_t len;
} report;

__attribute__((format(printf, 2, 3))) static void say(report *r, const char *fmt, ...) {
    if (r->len >= sizeof r->text - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->text + r->len, sizeof r->text - r->len, fmt, ap);
    va_end(ap);
    if (n > 0) r->len += (size_t)n;
    if (r->len >= sizeof r->text) r->len = sizeof r->text - 1;
}

/* "name+0xOFF (module)" for a code address, or "module+0xOFF". A symbol is
 * named only when the address lies inside it (dladdr alone would name the
 * nearest exported symbol below a static function). */
static void say_code(report *r, const void *pc) {
    cio__code_sym c;
    cio__code_lookup((uintptr_t)pc, 0, &c);
    const char *path = c.path ? c.path : "?";
    if (!c.found)
        say(r, "%p", pc);
    else if (c.name && c.off == 0)
        say(r, "%s (%s)", c.name, path);
    else if (c.name)
        say(r, "%s+0x%lx (%s)", c.name, (unsigned long)c.off, path);
    else
        say(r, "%s+0x%lx", path, (unsigned long)c.module_off);
}

static const char *syscall_name(long nr) {
    static const struct {
        long nr;
        const char *name;
    } names[] = {
#ifdef SYS_nanosleep
        {SYS_nanosleep, "nanosleep"},
#endif
        {SYS_clock_nanosleep, "clock_nanosleep"}, {SYS_read, "read"}, {SYS_write, "write"},
        {SYS_readv, "readv"}, {SYS_writev, "writev"}, {SYS_pread64, "pread64"},
        {SYS_pwrite64, "pwrite64"}, {SYS_futex, "futex"}, {SYS_epoll_pwait, "epoll_pwait"},
#ifdef SYS_epoll_wait
        {SYS_epoll_wait, "epoll_wait"},
#endif
#ifdef SYS_epoll_pwait2
        {SYS_epoll_pwait2, "epoll_pwait2"},
#endif
#ifdef SYS_io_uring_enter
        {SYS_io_uring_enter, "io_uring_enter"},
#endif
#ifdef SYS_poll
        {SYS_poll, "poll"},
#endif
#ifdef SYS_select
        {SYS_select, "select"},
#endif
        {SYS_ppoll, "ppoll"}, {SYS_pselect6, "pselect6"}, {SYS_accept, "accept"},
        {SYS_accept4, "accept4"}, {SYS_connect, "connect"}, {SYS_recvfrom, "recvfrom"},
        {SYS_sendto, "sendto"}, {SYS_recvmsg, "recvmsg"}, {SYS_sendmsg, "sendmsg"},
        {SYS_wait4, "wait4"}, {SYS_waitid, "waitid"}, {SYS_openat, "openat"},
        {SYS_fsync, "fsync"}, {SYS_fdatasync, "fdatasync"}, {SYS_flock, "flock"},
        {SYS_fcntl, "fcntl"}, {SYS_ioctl, "ioctl"}, {SYS_rt_sigtimedwait, "rt_sigtimedwait"},
        {SYS_rt_sigsuspend, "rt_sigsuspend"}, {SYS_sched_yield, "sched_yield"},
#ifdef SYS_pause
        {SYS_pause, "pause"},
#endif
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].nr == nr) return names[i].name;
    return NULL;
}

/* What /proc/self/task/TID/syscall says: the call's name (or number), or
 * "none" when the thread runs in user space. */
static void say_syscall(report *r, int tid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) {
        say(r, "unknown");
        return;
    }
    line[n] = '\0';
    if (strncmp(line, "running", 7) == 0) {
        say(r, "none (running in user space)");
        return;
    }
    long nr = strtol(line, NULL, 10);
    const char *name = nr >= 0 ? syscall_name(nr) : NULL;
    if (name)
        say(r, "%s", name);
    else if (nr >= 0)
        say(r, "number %ld", nr);
    else
        say(r, "none (blocked outside a system call)");
}

/* The time thread tid spent runnable but waiting for a CPU (the second
 * field of /proc/self/task/TID/schedstat), or -1. With the CPU time it
 * accounts for the whole wall time of a thread that computes, however
 * many threads share the CPUs: a stall's "cpu A of B ms" alone cannot
 * tell a spin on a loaded machine from a thread that blocks part of the
 * time. */
static int64_t thread_queued_ns(int tid) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) return -1;
    line[n] = '\0';
    unsigned long long run, wait;
    if (sscanf(line, "%llu %llu", &run, &wait) != 2) return -1;
    return (int64_t)wait;
}

/* The scheduler state of thread tid (/proc/self/task/TID/stat): 'R' for a
 * thread that runs or waits for a CPU, 'S' or 'D' for one that sleeps, or
 * '?'. It tells computing from waiting however loaded the machine is,
 * where the CPU time alone cannot (a computing thread gets little of a
 * CPU that many threads share). */
static char thread_state(int tid) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) return '?';
    line[n] = '\0';
    const char *p = strrchr(line, ')');
    return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

/* ---- the watchdog thread ------------------------------------------------ */

/* Asks the loop thread for its task and backtrace; true with answer filled
 * (and state left at 3 for the caller to free) if it answered in time. */
static bool ask_loop_thread(const watchdog_entry *e, int tid) {
    int sig = atomic_load(&handler_signal);
    if (!sig) return false;
    atomic_store_explicit(&answer.tid, tid, memory_order_relaxed);
    atomic_store_explicit(&answer.state, 1, memory_order_release);
    (void)e;
    if (syscall(SYS_tgkill, getpid(), tid, sig) != 0) {
        atomic_store(&answer.state, 0);
        return false;
    }
    int64_t until = mono_ns() + ANSWER_WAIT_NS;
    while (atomic_load_explicit(&answer.state, memory_order_acquire) != 3 && mono_ns() < until) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    int asked = 1;
    if (atomic_compare_exchange_strong(&answer.state, &asked, 0)) return false; /* withdrawn */
    /* Written, or being written right now: wait for the handler's end. */
    while (atomic_load_explicit(&answer.state, memory_order_acquire) != 3) sched_yield();
    return true;
}

/* How long a report waits for its descriptor to take the next piece. */
#define REPORT_WRITE_WAIT_MS 10

/*
 * Writes a report without ever blocking the watchdog thread for long: it
 * holds the lock every watchdog call takes, so a write that blocked (a
 * full pipe nobody reads) would hang every loop's cio_loop_set_watchdog
 * and cio_loop_free. Each piece of at most PIPE_BUF bytes goes only once
 * poll says the descriptor takes it (a pipe that is not full has room for
 * such a piece); a descriptor that takes nothing within
 * REPORT_WRITE_WAIT_MS loses the rest of the report.
 */
static void write_all(int fd, const char *text, size_t len) {
    while (len > 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int ready = poll(&p, 1, REPORT_WRITE_WAIT_MS);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0 || !(p.revents & POLLOUT)) return;
        ssize_t n = write(fd, text, len < PIPE_BUF ? len : PIPE_BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text += n;
        len -= (size_t)n;
    }
}

static void emit(watchdog_entry *e, report *r) {
    write_all(e->opts.fd ? e->opts.fd : STDERR_FILENO, r->text, r->len);
    if (e->opts.on_stall) e->opts.on_stall(e->loop, r->text, e->opts.on_stall_arg);
}

static void write_report(watchdog_entry *e, int64_t now, int tid) {
    int64_t age = now - e->seen_at;
    /* Rate limit: at most reports_per_minute per loop and minute. */
    if (now - e->window_start >= 60 * 1000000000LL) {
        e->window_start = now;
        e->window_reports = 0;
    }
    unsigned limit = e->opts.reports_per_minute ? e->opts.reports_per_minute : 10;
    if (e->window_reports >= limit) {
        e->suppressed++;
        return;
    }
    e->window_reports++;
    report *r = cio__malloc(sizeof *r);
    if (!r) return;
    r->len = 0;
    say(r, "cio: watchdog: loop %p stalled for %lld ms (threshold %u ms, report %d of this stall)\n",
        (void *)e->loop, (long long)(age / 1000000), e->opts.threshold_ms, e->reports + 1);
    if (e->suppressed) {
        say(r, "  (%u earlier reports suppressed by the rate limit)\n", e->suppressed);
        e->suppressed = 0;
    }
    /* The system call and the CPU time first: the signal below may
     * interrupt the call (a sleep returns early). */
    report *sys = cio__malloc(sizeof *sys);
    if (!sys) {
        cio__free(r);
        return;
    }
    sys->len = 0;
    sys->text[0] = '\0';
    int64_t cpu = thread_cpu_ns(tid);
    int64_t queued = thread_queued_ns(tid);
    char sched = thread_state(tid);
    const char *verdict = sched == 'R'                  ? "busy: computing"
                          : sched == 'S' || sched == 'D' ? "blocked: waiting"
                                                         : "state unknown";
    if (cpu >= 0 && e->cpu_at >= 0 && queued >= 0 && e->queued_at >= 0)
        say(sys,
            "  loop thread %d: cpu %lld ms of %lld ms wall (%lld ms more runnable, waiting for a "
            "CPU), state %c (%s)\n",
            tid, (long long)((cpu - e->cpu_at) / 1000000), (long long)(age / 1000000),
            (long long)((queued - e->queued_at) / 1000000), sched, verdict);
    else if (cpu >= 0 && e->cpu_at >= 0)
        say(sys, "  loop thread %d: cpu %lld ms of %lld ms wall, state %c (%s)\n", tid,
            (long long)((cpu - e->cpu_at) / 1000000), (long long)(age / 1000000), sched, verdict);
    else
        say(sys, "  loop thread %d: state %c (%s)\n", tid, sched, verdict);
    say(sys, "  system call: ");
    say_syscall(sys, tid);
    say(sys, "\n");
    int frames = 0;
    if (e->reports == 0) {
        e->task[0] = '\0';
        bool answered = !(e->opts.flags & CIO_WATCHDOG_NO_BACKTRACE) && ask_loop_thread(e, tid);
        /* An answer given after the stall ended (Valgrind delivers a signal
         * to a computing thread at its next system call) describes whatever
         * the thread did then: drop it. */
        if (answered && (atomic_load_explicit(&e->loop->progress, memory_order_relaxed) !=
                             e->seen_progress ||
                         !atomic_load_explicit(&e->loop->busy, memory_order_acquire))) {
            atomic_store_explicit(&answer.state, 0, memory_order_release);
            answered = false;
            snprintf(e->task, sizeof e->task,
                     "unknown (the loop thread answered the signal after the stall ended)");
        }
        if (answered) {
            report *t = cio__malloc(sizeof *t);
            if (t) {
                t->len = 0;
                if (answer.has_task) {
                    /* The name escaped as every report shows it
                     * (base/name_text.h): each byte may become \xNN. */
                    char shown[4 * sizeof answer.name];
                    cio__name_text(shown, sizeof shown, answer.name);
                    say(t, "task %llu '%s' running ", (unsigned long long)answer.id, shown);
                    say_code(t, answer.fn);
                    say(t, ", spawned at ");
                    if (answer.site)
                        say(t, "%s", answer.site);
                    else
                        say_code(t, answer.spawn_pc);
                } else {
                    say(t, "no task running (a callback, or the loop itself)");
                }
                size_t n = t->len < sizeof e->task - 1 ? t->len : sizeof e->task - 1;
                memcpy(e->task, t->text, n);
                e->task[n] = '\0';
                cio__free(t);
            }
            frames = answer.frames;
        } else if (e->task[0]) {
            /* Said above. */
        } else if (!(e->opts.flags & CIO_WATCHDOG_NO_BACKTRACE)) {
            snprintf(e->task, sizeof e->task, "unknown (the loop thread did not answer the signal)");
        } else {
            snprintf(e->task, sizeof e->task, "unknown (CIO_WATCHDOG_NO_BACKTRACE)");
        }
    }
    say(r, "  in: %s\n%s", e->task, sys->text);
    cio__free(sys);
    if (frames > 0) {
        /* The first frames are the handler's own and the signal return:
         * the thread's own begin at the address the signal interrupted. */
        int first = 0;
        for (int i = 0; i < frames; i++)
            if (answer.pcs[i] == answer.pc) {
                first = i;
                break;
            }
        say(r, "  backtrace of the loop thread (%d frames):\n", frames - first);
        for (int i = first; i < frames; i++) {
            say(r, "    #%d ", i - first);
            say_code(r, answer.pcs[i]);
            say(r, "\n");
        }
    }
    if (e->reports == 0) atomic_store_explicit(&answer.state, 0, memory_order_release);
    emit(e, r);
    cio__free(r);
}

static void check(watchdog_entry *e, int64_t now) {
    cio_loop *loop = e->loop;
    int busy = atomic_load_explicit(&loop->busy, memory_order_acquire);
    uint64_t progress = atomic_load_explicit(&loop->progress, memory_order_relaxed);
    int tid = atomic_load_explicit(&loop->tid, memory_order_relaxed);
    if (!busy || progress != e->seen_progress || tid != e->seen_tid) {
        if (e->reports > 0) {
            report r;
            r.len = 0;
            say(&r, "cio: watchdog: loop %p moved again after a stall of at least %lld ms\n",
                (void *)loop, (long long)((now - e->seen_at) / 1000000));
            emit(e, &r);
        }
        e->seen_progress = progress;
        e->seen_at = now;
        e->seen_tid = tid;
        e->cpu_at = busy ? thread_cpu_ns(tid) : -1;
        e->queued_at = busy ? thread_queued_ns(tid) : -1;
        e->reports = 0;
        e->next_report = e->threshold_ns;
        return;
    }
    if (now - e->seen_at < e->next_report) return;
    write_report(e, now, tid);
    e->reports++;
    /* The next report comes at twice the age of this one. A report that
     * came late (its signal was answered after the wait for it, or the
     * thread was held up) moves the next past the stall's present age,
     * instead of catching up in a burst, one per wake-up. */
    int64_t age = mono_ns() - e->seen_at;
    do e->next_report *= 2;
    while (e->next_report <= age && e->next_report < INT64_MAX / 2);
}

static void *watchdog_main(void *arg) {
    (void)arg;
    in_watchdog_thread = true;
    pthread_mutex_lock(&state);
    while (!stopping) {
        int64_t now = mono_ns();
        int64_t period = INT64_MAX;
        for (watchdog_entry *e = entries; e; e = e->next) {
            check(e, now);
            if (e->threshold_ns / 2 < period) period = e->threshold_ns / 2;
        }
        if (period == INT64_MAX) period = 100 * 1000000LL; /* nothing watched right now */
        if (period < 1000000) period = 1000000;
        int64_t until = mono_ns() + period;
        struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        pthread_cond_timedwait(&wake, &state, &ts);
    }
    pthread_mutex_unlock(&state);
    return NULL;
}

/* Installs the backtrace handler on sig (once; a second signal number
 * moves it). */
static void install_handler(int sig) {
    if (atomic_load(&handler_signal) == sig) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    /* SA_RESTART: calls that can be restarted are; a sleep cannot.
     * SA_ONSTACK: the loop's thread has an alternate stack while it runs
     * (loop.c), and the handler (backtrace and its signal frame, a few KB)
     * must not take them from a stalled task that has little stack left,
     * which it would overflow. After the run the stack is disabled and the
     * kernel uses the thread's own. Not under Valgrind, which keeps using
     * a disabled alternate stack, and delivers a signal late (at the
     * thread's next system call), when the run may be over. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | (CIO__ON_VALGRIND() ? 0 : SA_ONSTACK);
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) == 0) atomic_store(&handler_signal, sig);
}

static int start_thread(void) {
    /* backtrace() loads libgcc_s on its first call: do it here, never in
     * the handler (a dlopen there could deadlock). */
    void *warm[2];
    (void)backtrace(warm, 2);
    /* The thread takes no signal meant for the program's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    stopping = false;
    int rc = cio__sys_thread_start(&thread, watchdog_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) return -EAGAIN;
    /* Named before this call returns, so top, gdb and /proc/PID/task tell
     * it apart from the program's threads. */
    pthread_setname_np(thread, "cio-watchdog");
    thread_running = true;
    return 0;
}

/* Stops watching loop; the last loop takes the thread with it. Called
 * with life held. */
static void unwatch(cio_loop *loop) {
    pthread_mutex_lock(&state);
    watchdog_entry *e = loop->watchdog;
    if (e) {
        for (watchdog_entry **p = &entries; *p; p = &(*p)->next)
            if (*p == e) {
                *p = e->next;
                break;
            }
        cio__free(e);
        loop->watchdog = NULL;
        loop->watchdog_close = NULL;
    }
    bool stop = thread_running && !entries;
    if (stop) {
        stopping = true;
        pthread_cond_signal(&wake);
    }
    pthread_mutex_unlock(&state);
    if (stop) {
        pthread_join(thread, NULL);
        thread_running = false;
    }
}

static void watchdog_close(cio_loop *loop) {
    pthread_mutex_lock(&life);
    unwatch(loop);
    pthread_mutex_unlock(&life);
}

int cio_loop_set_watchdog_with(cio_loop *loop, const cio_watchdog_options *opts) {
    if (!loop || !opts || opts->fd < 0) return -EINVAL;
    if (opts->flags & ~CIO_WATCHDOG_NO_BACKTRACE) return -EINVAL; /* convention 2 */
    if (opts->signal && (opts->signal < SIGRTMIN || opts->signal > SIGRTMAX)) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    pthread_once(&once, init_once);
    if (in_watchdog_thread) return -EDEADLK;
    pthread_mutex_lock(&life);
    if (opts->threshold_ms == 0) {
        unwatch(loop);
        pthread_mutex_unlock(&life);
        return 0;
    }
    watchdog_entry *e = loop->watchdog;
    bool fresh = e == NULL;
    if (fresh) {
        e = cio__malloc(sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&life);
            return -ENOMEM;
        }
    }
    if (!(opts->flags & CIO_WATCHDOG_NO_BACKTRACE))
        install_handler(opts->signal ? opts->signal : SIGRTMIN + 3);
    /* The first report names frames from the .symtab (dump.c, symtab.c),
     * which is read on first use: read cio's own now, in the caller's
     * thread, not while a stall is being reported. */
    cio__code_sym warm;
    cio__code_lookup((uintptr_t)cio_loop_set_watchdog_with, 0, &warm);
    if (!thread_running && (rc = start_thread()) < 0) {
        if (fresh) cio__free(e);
        pthread_mutex_unlock(&life);
        return rc;
    }
    pthread_mutex_lock(&state);
    if (fresh) {
        memset(e, 0, sizeof *e);
        e->loop = loop;
        e->next = entries;
        entries = e;
        loop->watchdog = e;
        loop->watchdog_close = watchdog_close;
    }
    e->opts = *opts;
    e->threshold_ns = (int64_t)opts->threshold_ms * 1000000;
    /* Start afresh: the first look at the loop only records it. */
    e->seen_tid = -1;
    e->reports = 0;
    e->next_report = e->threshold_ns;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&state);
    pthread_mutex_unlock(&life);
    return 0;
}

int cio_loop_set_watchdog(cio_loop *loop, unsigned threshold_ms, unsigned flags) {
    cio_watchdog_options opts = {.threshold_ms = threshold_ms, .flags = flags};
    return cio_loop_set_watchdog_with(loop, &opts);
}
