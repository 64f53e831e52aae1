/*
 * cio: asyncio for C.
 *
 * This is the one public header. Every function is prefixed cio_, every
 * macro CIO_. Long-lived objects (loop, future, task) are opaque and live
 * until the point where docs/design.md ("Ownership") frees them.
 *
 * Every call that allocates can fail with -ENOMEM; each says so below
 * ("-ENOMEM" in its returns), and then nothing changed. Every call that
 * changes a loop or an object bound to one (a future, task, handle, timeout
 * scope, or a primitive or queue once a task waited on it) returns
 * -CIO_EFORKED in the child of a fork() for a loop of the parent, and in
 * debug mode -CIO_EWRONGTHREAD from a thread the loop does not belong to
 * (see cio_loop_options.debug).
 *
 * The behaviour follows Python 3.13's asyncio; docs/asyncio-mapping.md maps
 * each asyncio name to its cio name and lists every difference.
 *
 * Conventions (every function below follows them; docs/design.md §2 gives
 * the reasons):
 *
 *  1. Errors. Every call that can fail returns an int (or ssize_t) that is
 *     negative on failure, holding -errno or -CIO_E*. Cancellation is
 *     -ECANCELED, a timeout -ETIMEDOUT, a call that must suspend but runs
 *     outside a task -EPERM. cio_strerror() names every code. A call that
 *     takes a callback and fails never calls that callback. Programs use
 *     -CIO_EUSER(n) for their own errors: `return cio_raise(-CIO_EUSER(7));`.
 *  2. Bad arguments never crash. A NULL object or required pointer, a NaN
 *     time or an unknown flag gives: -EINVAL from a call returning int or
 *     ssize_t; 0 from a predicate (_is_*, _done, _cancelled, _locked,
 *     _empty, _full, _broken, _expired, get_debug); NULL from a getter
 *     returning a pointer; 0 from one returning size_t; NaN from one
 *     returning double; nothing at all from a void call. Pointers that may
 *     be NULL are marked so. Arguments are checked first: a bad one is
 *     -EINVAL even outside a task, where a valid suspending call is -EPERM.
 *  3. Constructors take their inputs first and the out-parameter last:
 *     cio_queue_new(maxsize, &q). On failure the out-parameter (when it is
 *     not NULL itself) is set to NULL and nothing is left allocated.
 *  4. Every _free returns int: 0 once freed (and for NULL), or a negative
 *     code when it refuses and leaves the object intact and usable: -EBUSY
 *     while a task is still inside a call on the object (also reported
 *     through the exception handler); for a loop, the refusal of
 *     cio_loop_close (-CIO_ELOOPRUNNING while it runs, -EBUSY, -CIO_EFORKED).
 *  5. "release" means unlocking only (lock, condition, semaphore), as in
 *     asyncio. Futures and tasks are reference counted with
 *     cio_future_ref() and cio_future_unref().
 *  6. Time. Relative timeouts and delays are seconds (double); deadlines
 *     are absolute loop times (cio_loop_time()), CIO_NO_TIMEOUT for never.
 *     Every suspending call that accepts a deadline has a twin named
 *     <call>_until(..., double when). The twin behaves exactly as its base
 *     call with the timeout given as a deadline. When the base call has a
 *     timeout of its own (cio_wait_for, cio_wait, cio_timeout_enter), the
 *     twin does what that timeout does: cio_wait_for_until CANCELS fut as
 *     cio_wait_for does. When the base call has none (cio_await, cio_sleep,
 *     acquire, wait, get, put, join, descriptor and socket operations), the
 *     deadline only gives up the wait with -ETIMEDOUT and cancels nothing
 *     else: cio_await_until LEAVES fut running. The one exception to the
 *     name is cio_call_at, which keeps asyncio's name because it schedules
 *     a callback rather than suspending.
 */
#ifndef CIO_H
#define CIO_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility: only what this header
 * declares is exported from libcio.so. */
#if defined(CIO_BUILDING_LIBRARY) && defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define CIO_VERSION_MAJOR 0
#define CIO_VERSION_MINOR 2
#define CIO_VERSION_PATCH 0

#define CIO__STRINGIFY2(x) #x
#define CIO__STRINGIFY(x) CIO__STRINGIFY2(x)

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

/* cio's own error codes, returned negated like errno values. They start far
 * above any errno Linux defines, so they never collide with one. */
enum {
    CIO_EBASE = 10000,
    CIO_ELOOPCLOSED,   /* the loop is closed (asyncio: "Event loop is closed") */
    CIO_ELOOPRUNNING,  /* the loop is already running, or another loop runs in this thread */
    CIO_ESTOPPED,      /* run_until_complete: the loop stopped before the future completed */
    CIO_EINVALSTATE,   /* asyncio.InvalidStateError: result of a pending future, or set twice */
    CIO_EWRONGLOOP,    /* the object belongs to another loop */
    CIO_EWRONGTHREAD,  /* debug mode: the loop was used from a thread that does not run it */
    CIO_EGROUP,        /* a task group ended with errors (asyncio's ExceptionGroup) */
    CIO_EGROUPDONE,    /* spawning into a task group that is finished */
    CIO_EGROUPABORTING,/* spawning into a task group that is shutting down */
    CIO_EBROKEN,       /* asyncio.BrokenBarrierError */
    CIO_ESHUTDOWN,     /* asyncio.QueueShutDown */
    CIO_EFORKED,       /* the loop was created by the parent of this (forked) process */
    CIO_ELIMITOVERRUN, /* asyncio.LimitOverrunError: no separator within the stream's limit */
    CIO_EINCOMPLETE,   /* asyncio.IncompleteReadError: end of stream before the data asked for */
    CIO_ECLOSED,       /* the stream was closed by this program (a read cannot go on) */
    CIO_ELAST
};

/* Codes for the application's own errors: CIO_EUSER(0) to CIO_EUSER(9999),
 * returned negated like every other code, e.g.
 *
 *     enum { E_BAD_REQUEST = 1, E_NO_ROUTE = 2 };
 *     return cio_raise(-CIO_EUSER(E_BAD_REQUEST));
 *
 * cio never returns one of its own accord, so a program can tell its errors
 * from cio's and errno's by range. cio_strerror() names them "application
 * error N". */
#define CIO_EUSER_FIRST 20000
#define CIO_EUSER_LAST 29999
#define CIO_EUSER(n) (CIO_EUSER_FIRST + (n))

/* Text for a negative (or positive) cio, errno or application code. Never
 * NULL; the text stays valid for the life of the process and may be used
 * from any thread. */
const char *cio_strerror(int err);
/* 1 if err (negative or positive) is an application code CIO_EUSER(n),
 * else 0. Its n is then -err - CIO_EUSER_FIRST (or err - CIO_EUSER_FIRST). */
int cio_error_is_user(int err);

/* A timeout meaning "no timeout" (asyncio's None). */
#define CIO_NO_TIMEOUT (__builtin_inf())

/* ------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------ */

typedef struct cio_loop cio_loop;

/* A future and a task share one type, as in asyncio where Task is a
 * subclass of Future: every cio_future_* call accepts a task. cio_task is
 * kept as a separate name so signatures say which one they expect. */
typedef struct cio_future cio_future;
typedef struct cio_future cio_task;

/* A coroutine: the function a task runs on its own stack. Whatever it
 * returns becomes the task's result. To end the task with an error
 * instead, return cio_raise(err). */
typedef void *(*cio_coro_fn)(void *arg);

/* A plain callback for call_soon, call_later and call_at. */
typedef void (*cio_callback_fn)(cio_loop *loop, void *arg);

/* A done callback: called (deferred, from the loop) once fut is done. */
typedef void (*cio_done_fn)(cio_future *fut, void *arg);

/* A handle to a scheduled callback (asyncio.Handle / TimerHandle). It is a
 * small value rather than an opaque pointer so that call_soon and call_later
 * allocate nothing the caller must free: the loop recycles the node behind it,
 * and a handle whose callback already ran or was cancelled is recognised by
 * its id and simply ignored. The handle also names its loop by a slot and a
 * generation, so cancelling or querying it after the callback ran, after
 * the loop closed, or after the loop was freed is safe and does nothing
 * (cio_handle_cancel returns 0). A zero-initialised handle is valid and
 * inert. */
typedef struct cio_handle {
    void *node;        /* the loop's node, valid only while id matches it */
    uint64_t id;       /* top bit set once this handle was cancelled */
    int64_t when_ns;   /* a timer handle's deadline; INT64_MIN for call_soon */
    uint64_t loop_key; /* the loop's slot and generation (see src/handle.c) */
} cio_handle;

/* What the exception handler receives about an error nobody handled
 * (asyncio's context dict). Pointers are valid only during the call. */
typedef struct cio_error_context {
    const char *message; /* what happened, always set */
    int error;           /* the negative error code, or 0 */
    cio_future *future;  /* the future or task concerned, or NULL */
} cio_error_context;

typedef void (*cio_exception_handler_fn)(cio_loop *loop, const cio_error_context *ctx,
                                         void *arg);

/* ------------------------------------------------------------------------
 * The event loop
 * ------------------------------------------------------------------------ */

typedef struct cio_loop_options {
    size_t default_stack_size; /* bytes per task stack; 0 = CIO_DEFAULT_STACK_SIZE */
    /* asyncio debug mode: wrong-thread checks and slow-callback reports. A
     * loop belongs to the thread running it, else to the one that last ran
     * it (or created it); every call that changes the loop or an object
     * bound to it from any other thread returns -CIO_EWRONGTHREAD (closing
     * a transport, stream or server included). Not guaranteed: the loop's
     * own close and free, the free calls, a stream whose connection is gone
     * or a server that never served (their loop may be gone), and a
     * primitive or queue no task waited on yet (it is bound to no loop). */
    int debug;
    double slow_callback_duration; /* seconds; 0 = 0.1 as asyncio */
    /* "epoll", "uring" (or "io_uring"), "auto", or NULL: the environment
     * variable CIO_BACKEND, else epoll. See "I/O backends" below. */
    const char *backend;
    size_t stack_guard_size;   /* bytes of guard below each task stack (rounded up
                                * to pages); 0 = CIO_DEFAULT_STACK_GUARD_SIZE */
    /* A virtual clock, for tests (Trio's MockClock with autojump): the loop
     * time stands still while callbacks run, and whenever nothing is
     * runnable, no I/O operation is in flight (a transport, server or
     * watcher keeps one) and no call is out on the thread pool,
     * it jumps to the next timer's deadline: a sleep of an hour ends at
     * once, timers fire in deadline order, and cio_loop_time() reads
     * exactly each deadline. While I/O is in flight the loop waits for
     * real and the clock moves by the real time waited. */
    int virtual_clock;
    /* cio_run_with only: nonzero leaves SIGINT to the program (no Ctrl-C
     * cancellation of the main task, see cio_run). */
    int keep_sigint;
} cio_loop_options;

/* Stack sizes (per loop or per task) outside [CIO_MIN_STACK_SIZE,
 * CIO_MAX_STACK_SIZE] are -EINVAL; so is a guard above CIO_MAX_STACK_SIZE. */
#define CIO_DEFAULT_STACK_SIZE ((size_t)64 * 1024)
#define CIO_MIN_STACK_SIZE ((size_t)16 * 1024)
#define CIO_MAX_STACK_SIZE ((size_t)1024 * 1024 * 1024)

/* Overflow protection. Below every task stack lies a guard: memory that
 * faults when touched, so an overflow stops at once with "cio: task 'NAME'
 * overflowed its N-byte stack". The guard holds no pages of its own, and
 * is made larger than a frame is likely to be, so that a big local array
 * cannot jump over it into the neighbouring stack; a program with frames
 * larger still should be built with -fstack-clash-protection, which makes
 * the compiler touch every page of a big frame in order. What it costs is
 * address space and page tables (about 2 bytes of page table per KiB of
 * guard and stack: 160 bytes for a 16 KiB task with the default guard, 40
 * with a one-page guard) and, once per new stack, the system call that
 * installs it; a program that needs the smallest footprint per task and
 * controls its frames can set a smaller stack_guard_size.
 *
 * The report comes from a SIGSEGV handler that cio installs when a loop
 * starts running. Every fault that is not a task's overflow goes on to the
 * handler that was installed before (or to the default action). A handler
 * the program installs while cio's is in place is put behind cio's the next
 * time a loop starts running, and receives the faults that are not cio's. */
#define CIO_DEFAULT_STACK_GUARD_SIZE ((size_t)64 * 1024)

/* How the loop's task stacks are protected: "guard-region" (Linux 6.13+:
 * every stack has its guard, installed with MADV_GUARD_INSTALL inside one
 * mapping per slab of stacks), or "guard-page" (older kernels: each guard
 * is a PROT_NONE mapping of its own, so only the first vm.max_map_count / 4
 * stacks of the process get one; later stacks are checked by a canary word
 * and a stack-pointer check at each switch, which catch an overflow late).
 * cio_loop_dump_tasks shows each task's protection. NULL for a NULL loop. */
const char *cio_loop_stack_guard(const cio_loop *loop);

/* Creates a loop; opts may be NULL. On failure *loopp is NULL and the
 * error is returned: -EINVAL, -ENOTSUP (unknown backend), -ENOMEM, or the
 * backend's error (-EMFILE...). An explicit "uring" that the kernel cannot
 * serve fails with -ENOSYS, -EPERM or -EACCES (io_uring_setup refused:
 * no io_uring, kernel.io_uring_disabled, a seccomp filter) or -ENOTSUP (a
 * needed flag, feature or opcode missing, or cio built without io_uring),
 * and says why on stderr; "auto" falls back to epoll quietly.
 *
 * fork(): as in asyncio, the child of a fork starts with no running loop
 * and no current task, even if it forked inside one, and the parent's
 * loops (with everything bound to them) refuse to be used in it with
 * -CIO_EFORKED, close and free included: their memory is the parent's
 * copy, and their epoll instance is shared with the parent, whose events
 * the child would steal. The child makes loops of its own (cio_run works). */
int cio_loop_new(cio_loop **loopp);
int cio_loop_new_with(const cio_loop_options *opts, cio_loop **loopp);

/* Runs until fut is done and returns its outcome: 0 with *result set (result
 * may be NULL), the future's error, or -ECANCELED. If the loop is stopped
 * before fut is done, returns -CIO_ESTOPPED and fut goes on existing. Also
 * -CIO_ELOOPCLOSED, -CIO_ELOOPRUNNING, -CIO_EWRONGLOOP, -CIO_EFORKED. */
int cio_run_until_complete(cio_loop *loop, cio_future *fut, void **result);

/* Runs until cio_loop_stop() is called. Returns 0, or an error if the loop
 * is closed or already running, or -CIO_EFORKED. */
int cio_run_forever(cio_loop *loop);

/* Asks the loop to stop once the callbacks of the current iteration have
 * run. Called before run_forever, the next run does one iteration. Like
 * asyncio's loop.stop() it is not thread-safe: from another thread, post a
 * callback that calls it with cio_call_soon_threadsafe (debug mode refuses
 * the direct call with -CIO_EWRONGTHREAD; without debug mode it is a data
 * race). */
int cio_loop_stop(cio_loop *loop);

/* Predicates: 0 for NULL (convention 2). */
int cio_loop_is_running(const cio_loop *loop);
int cio_loop_is_closed(const cio_loop *loop);

/* Closes the loop: -CIO_ELOOPRUNNING if it is running, otherwise drops every
 * pending callback and timer, reports a pending task as destroyed while
 * pending (its remaining code never runs) and releases the stacks. Futures
 * and tasks nobody references any more are freed (errors nobody retrieved
 * are reported). Those the program still references stay valid, also after
 * cio_loop_free(): each reads as done, or cancelled if it was pending,
 * answers every call with its final state or -CIO_ELOOPCLOSED (where the
 * loop would be needed), has cio_future_loop() NULL, and is freed at its
 * last release. Calling close twice is harmless. The loop object itself
 * stays valid (every call on it then returns -CIO_ELOOPCLOSED) until
 * cio_loop_free(). An exception handler that calls it (or cio_loop_free)
 * while close reports is refused with -EBUSY: the close under way finishes
 * the job. */
int cio_loop_close(cio_loop *loop);

/* Closes the loop if needed and frees it; returns 0 (NULL is accepted).
 * Refused, leaving the loop intact, with the error of cio_loop_close: from
 * inside the running loop (-CIO_ELOOPRUNNING), from an exception handler
 * while cio_loop_close reports (-EBUSY), or in a forked child for a loop
 * of the parent (-CIO_EFORKED). */
int cio_loop_free(cio_loop *loop);

/* The loop's monotonic clock in seconds (asyncio loop.time()); and the same
 * in nanoseconds. Read afresh on each call, as asyncio does (the loop keeps
 * its own copy per iteration for timer checks). NaN and -EINVAL for NULL. */
double cio_loop_time(const cio_loop *loop);
int64_t cio_loop_time_ns(const cio_loop *loop);

/* The loop running in the calling thread, or NULL (asyncio
 * get_running_loop, without the exception). */
cio_loop *cio_running_loop(void);

/* Schedules fn(loop, arg) for the next iteration, FIFO, never inline.
 * These return 0, -EINVAL, -CIO_ELOOPCLOSED or -ENOMEM. */
int cio_call_soon(cio_loop *loop, cio_callback_fn fn, void *arg, cio_handle *handle);
/* Same, after delay seconds (>= 0) or at an absolute loop time. Callbacks
 * with the same deadline run in the order they were scheduled. handle may
 * be NULL. cio_call_at keeps asyncio's name (convention 6): it schedules,
 * it does not suspend. */
int cio_call_later(cio_loop *loop, double delay, cio_callback_fn fn, void *arg,
                   cio_handle *handle);
int cio_call_at(cio_loop *loop, double when, cio_callback_fn fn, void *arg, cio_handle *handle);

/* Cancels a scheduled callback. Returns 1 if it was pending and is now
 * cancelled, 0 if it already ran, was already cancelled, is inert (a
 * zero-initialised handle), or its loop is closed or freed (never touching
 * freed memory); -EINVAL for NULL.
 * cio_handle_cancelled() is 1 once cio_handle_cancel was called through
 * this handle (a non-inert one), as asyncio's Handle.cancelled(): also
 * when the callback had already run and the cancel returned 0. */
int cio_handle_cancel(cio_handle *handle);
int cio_handle_cancelled(const cio_handle *handle);
/* The deadline of a timer handle in loop time (negative for a time before
 * the loop clock's origin, e.g. call_at(-20)); -1 for call_soon; NaN for
 * NULL. Deadlines are kept in nanoseconds: a time beyond about 9.2e9 s
 * either way (infinity included) reads as that bound. */
double cio_handle_when(const cio_handle *handle);

/* The handler for errors nobody handled; NULL restores the default, which
 * prints the context to stderr. */
int cio_loop_set_exception_handler(cio_loop *loop, cio_exception_handler_fn fn, void *arg);
/* Calls the current handler (asyncio call_exception_handler); does nothing
 * when loop or ctx is NULL. */
void cio_loop_call_exception_handler(cio_loop *loop, const cio_error_context *ctx);
/* The default handler, for custom handlers that want to fall back to it.
 * loop may be NULL. */
void cio_loop_default_exception_handler(cio_loop *loop, const cio_error_context *ctx);

/* Turns the loop's debug mode (see cio_loop_options.debug) on or off
 * (asyncio loop.set_debug): 0 or -EINVAL. get_debug reads it: 1 or 0, and
 * 0 for NULL. */
int cio_loop_set_debug(cio_loop *loop, int enabled);
int cio_loop_get_debug(const cio_loop *loop);

/* The name of the I/O backend the loop uses ("epoll" or "io_uring");
 * NULL for NULL. */
const char *cio_loop_backend(const cio_loop *loop);

/* ------------------------------------------------------------------------
 * Futures
 * ------------------------------------------------------------------------ */

/* Creates a pending future on loop. The caller holds one reference.
 * -EINVAL, -CIO_ELOOPCLOSED or -ENOMEM. */
int cio_future_new(cio_loop *loop, cio_future **futp);

/* Drops the caller's reference (convention 5: "release" is for locks). The
 * future (or task) is freed once it is done and nothing else refers to it;
 * cio_loop_close() frees what nobody references and leaves what is still
 * referenced valid until its last unref (see cio_loop_close). A pending
 * task keeps running after its last reference is dropped (it is then
 * detached). NULL is accepted. After its last unref the caller's pointer
 * is dead: using it is undefined (a task's record may already serve
 * another task, so not even AddressSanitizer sees such a use). */
void cio_future_unref(cio_future *fut);
/* Takes one more reference; returns fut (NULL for NULL). */
cio_future *cio_future_ref(cio_future *fut);

/* Completes the future. A second completion returns -CIO_EINVALSTATE.
 * set_error takes a negative code; -ECANCELED is stored as an error (the
 * future is then done, not cancelled, as asyncio's set_exception). */
int cio_future_set_result(cio_future *fut, void *result);
int cio_future_set_error(cio_future *fut, int err);

/* Requests cancellation. Returns 1 if the request was taken, 0 if the
 * future is already done. For a plain future this cancels it at once; for a
 * task see cio_task_cancel. msg may be NULL; it is copied. */
int cio_future_cancel(cio_future *fut, const char *msg);

/* Predicates (0 for NULL): done is 1 once the future has a result or an
 * error or was cancelled; cancelled is 1 only in the last case. */
int cio_future_done(const cio_future *fut);
int cio_future_cancelled(const cio_future *fut);

/* The outcome of a done future: 0 and *result (if result is not NULL); the
 * stored error; or -ECANCELED. -CIO_EINVALSTATE if it is still pending.
 * Reading the outcome marks an error as retrieved. */
int cio_future_result(cio_future *fut, void **result);
/* The error of a done future (0 if it has a result), -ECANCELED if it was
 * cancelled, -CIO_EINVALSTATE if pending. */
int cio_future_error(cio_future *fut);
/* The message given to cancel, or NULL. Valid while the future lives. */
const char *cio_future_cancel_message(const cio_future *fut);
/* The message attached to an error (cio_raise_msg, cio_future_set_error_msg),
 * or NULL. */
const char *cio_future_error_message(const cio_future *fut);
int cio_future_set_error_msg(cio_future *fut, int err, const char *msg);

/* Registers fn(fut, arg) to run (through call_soon, in registration order)
 * once fut is done; at once-scheduled if it is already done. -ENOMEM. */
int cio_future_add_done_callback(cio_future *fut, cio_done_fn fn, void *arg);
/* Removes every registration of (fn, arg); returns how many were removed. */
int cio_future_remove_done_callback(cio_future *fut, cio_done_fn fn, void *arg);

/* The future's loop; NULL once that loop closed while fut was referenced. */
cio_loop *cio_future_loop(const cio_future *fut);
int cio_future_is_task(const cio_future *fut);

/* ------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------ */

typedef struct cio_task_options {
    const char *name;   /* NULL: "Task-N" */
    size_t stack_size;  /* 0: the loop's default */
    int eager_start;    /* run until the first suspension inside spawn, if the loop runs */
} cio_task_options;

/* Wraps fn(arg) in a task scheduled to start on the next iteration
 * (asyncio.create_task). If taskp is not NULL the caller holds one
 * reference to the task (drop it with cio_future_unref); if it is
 * NULL the task is detached and frees itself when done. opts may be NULL.
 * Returns 0, -EINVAL, -CIO_ELOOPCLOSED, or -ENOMEM (the task, its stack or
 * its name). */
int cio_spawn(cio_loop *loop, cio_coro_fn fn, void *arg, cio_task **taskp);
int cio_spawn_with(cio_loop *loop, cio_coro_fn fn, void *arg, const cio_task_options *opts,
                   cio_task **taskp);
/* cio_spawn_with that names the spawn site the task dump shows: site is a
 * string that outlives the task, such as CIO_HERE ("file.c:42"), or NULL
 * for the caller's code address. cio_spawn and cio_spawn_with are macros
 * that pass CIO_HERE, so every spawn records where it was written; the
 * functions themselves (called as (cio_spawn)(...) or through a pointer)
 * record their caller's address instead. */
int cio_spawn_at(const char *site, cio_loop *loop, cio_coro_fn fn, void *arg,
                 const cio_task_options *opts, cio_task **taskp);
#define CIO_HERE __FILE__ ":" CIO__STRINGIFY(__LINE__)
#define cio_spawn(loop, fn, arg, taskp) cio_spawn_at(CIO_HERE, loop, fn, arg, NULL, taskp)
#define cio_spawn_with(loop, fn, arg, opts, taskp) \
    cio_spawn_at(CIO_HERE, loop, fn, arg, opts, taskp)

/* Requests cancellation of a task (asyncio Task.cancel): counts the request,
 * and -ECANCELED is delivered at the task's current or next suspension point;
 * the future it awaits is cancelled too. Returns 1, or 0 if the task is done.
 * A task that returns while requests are outstanding ends cancelled; a task
 * that means to go on after a cancellation calls cio_task_uncancel(). */
int cio_task_cancel(cio_task *task, const char *msg);
/* The number of outstanding cancellation requests (-EINVAL if task is NULL
 * or not a task). */
int cio_task_cancelling(const cio_task *task);
/* Decrements the count and returns the new value (never below 0). */
int cio_task_uncancel(cio_task *task);

/* The name (NULL for NULL or a plain future); the stack size (0 likewise). */
const char *cio_task_name(const cio_task *task);
/* Renames the task (name is copied): 0, -EINVAL or -ENOMEM. */
int cio_task_set_name(cio_task *task, const char *name);
size_t cio_task_stack_size(const cio_task *task);

/* What the runtime knows about a task (the task dump prints the same). */
typedef enum cio_task_state {
    CIO_TASK_SCHEDULED = 0, /* in the ready queue: created, or woken */
    CIO_TASK_RUNNING,       /* running now (it is the current task) */
    CIO_TASK_WAITING,       /* suspended: awaiting something */
    CIO_TASK_DONE           /* finished, cancelled or failed */
} cio_task_state;

typedef struct cio_task_info {
    uint64_t id;             /* unique in its loop, from 1, never reused */
    uint64_t parent_id;      /* the task that spawned it; 0 if none did */
    cio_task_state state;
    const char *name;        /* valid while the task is */
    const char *spawn_site;  /* "file.c:42" (CIO_HERE), or NULL: see spawn_pc */
    const void *spawn_pc;    /* the code address that spawned it, if no site */
    double started;          /* loop time (cio_loop_time) at spawn */
    uint64_t switches;       /* how many times it was resumed */
    /* CPU time it ran, in seconds, counted in debug mode only (reading the
     * thread's CPU clock costs more than a switch); -1 when not counted. */
    double cpu_time;
    size_t stack_size;
    /* Bytes between the top of its stack and the lowest stack pointer seen
     * when it was switched out: a lower bound of its high-water mark, kept
     * at no cost (cio_task_stack_high_water measures the exact mark). 0
     * once the task is done. */
    size_t stack_low_water;
} cio_task_info;

/* Fills *out for task (a task of any state): 0, or -EINVAL for NULL or a
 * plain future. */
int cio_task_get_info(const cio_task *task, cio_task_info *out);

/* The task running in the calling thread, or NULL. */
cio_task *cio_current_task(void);

/* Fills tasks[] with up to cap tasks of loop that are not done and returns
 * how many there are in all (asyncio.all_tasks); tasks may be NULL to count
 * them. 0 for a NULL loop. */
size_t cio_all_tasks(cio_loop *loop, cio_task **tasks, size_t cap);

/* Ends the current coroutine with an error: `return cio_raise(-EIO);`, or
 * an application code: `return cio_raise(-CIO_EUSER(7));`. An err that is
 * not negative is stored as -EINVAL. In a function cio_to_thread runs, it
 * makes cio_to_thread return err (the message is dropped); anywhere else
 * outside a task it does nothing. Always returns NULL. cio_raise_msg also attaches a message (copied; msg may be
 * NULL), read back with cio_future_error_message. */
void *cio_raise(int err);
void *cio_raise_msg(int err, const char *msg);

/* ------------------------------------------------------------------------
 * Suspending calls (only inside a task; elsewhere they return -EPERM)
 * ------------------------------------------------------------------------ */

/* Waits for fut and returns its outcome like cio_future_result. If the
 * waiting task is cancelled meanwhile, fut is cancelled too and the call
 * returns fut's outcome (normally -ECANCELED). A task cannot await itself
 * (-EDEADLK). */
int cio_await(cio_future *fut, void **result);

/* asyncio.sleep: delay <= 0 yields for exactly one loop iteration; > 0 waits
 * on a timer. Returns 0, -ECANCELED, or -ENOMEM (no room for the timer). */
int cio_sleep(double delay);
/* Sleeps until an absolute loop time. */
int cio_sleep_until(double when);

/* asyncio.wait_for: waits for fut at most timeout seconds. On timeout fut is
 * cancelled and awaited, then -ETIMEDOUT is returned, unless fut produced an
 * outcome meanwhile, which is then returned. Cancelling the caller cancels
 * fut. timeout may be CIO_NO_TIMEOUT. With timeout <= 0 a done fut gives
 * its outcome at once; otherwise fut is cancelled at once and awaited (as
 * asyncio 3.12+), so a task that has not started never runs its body.
 * -ENOMEM if the timer cannot be armed. */
int cio_wait_for(cio_future *fut, double timeout, void **result);

/* Deadline forms (convention 6): each waits at most until an absolute loop
 * time `when` (CIO_NO_TIMEOUT for never) and then returns -ETIMEDOUT. They
 * differ as their base calls do:
 *   - cio_await_until gives up WAITING and leaves fut running (cio_await has
 *     no timeout of its own; asyncio.wait on one future);
 *   - cio_wait_for_until CANCELS fut at the deadline and waits for it to
 *     end, exactly as cio_wait_for does with a timeout.
 * Deadlines compose: pass the same `when` down a chain of calls. Every
 * deadline form (here and below) can return -ENOMEM when the timer cannot
 * be armed. */
int cio_await_until(cio_future *fut, double when, void **result);
int cio_wait_for_until(cio_future *fut, double when, void **result);

/* ------------------------------------------------------------------------
 * Timeout scopes (asyncio.timeout / timeout_at)
 *
 *     cio_timeout scope;
 *     cio_timeout_enter(&scope, 1.5);          // async with timeout(1.5):
 *     rc = do_things();                        //     ...
 *     rc = cio_timeout_exit(&scope, rc);       // -ETIMEDOUT if it expired
 *
 * When the deadline passes, the task is cancelled: the suspending call in
 * progress returns -ECANCELED, which the code passes on to the exit.
 * cio_timeout_exit turns that -ECANCELED into -ETIMEDOUT only when the
 * cancellation was the scope's own: an outer cancellation or an outer
 * scope's timeout passes through as -ECANCELED. Scopes nest. The scope is a
 * small struct on the task's stack, whose timer lives in a node of the
 * loop's callback pool (so entering one allocates only while that pool
 * grows); it must be exited in the task that entered it, before it goes out
 * of scope. A task that returns with scopes still entered has them dropped
 * (their deadlines can no longer strike whatever uses its stack next) and
 * is reported through the exception handler, with its name. Entering a
 * scope the task entered and has not exited is -CIO_EINVALSTATE; once
 * exited, the same cio_timeout may be entered again.
 * ------------------------------------------------------------------------ */
typedef struct cio_timeout {
    uint64_t cio_private[12];
} cio_timeout;

/* Enters a scope expiring after delay seconds (CIO_NO_TIMEOUT: never), or at
 * an absolute loop time (asyncio.timeout_at). Inside a task only. A deadline
 * that has already passed (delay <= 0, a past `when`, or
 * cio_timeout_reschedule to a past time) expires before the task's next
 * step, as asyncio's call_soon: the first suspending call inside the scope
 * returns -ECANCELED and the exit returns -ETIMEDOUT. Returns 0, -EINVAL
 * (NULL or NaN), -EPERM (outside a task), -CIO_EINVALSTATE (the scope is
 * entered already) or -ENOMEM. */
int cio_timeout_enter(cio_timeout *scope, double delay);
int cio_timeout_enter_until(cio_timeout *scope, double when);
/* Leaves the scope; rc is the outcome of the code inside it. Returns rc,
 * with -ECANCELED turned into -ETIMEDOUT if the scope expired;
 * -CIO_EINVALSTATE if the scope is not entered, or not by this task. */
int cio_timeout_exit(cio_timeout *scope, int rc);
/* Moves the deadline (absolute loop time, CIO_NO_TIMEOUT: never): 0,
 * -EINVAL, -CIO_EINVALSTATE (not entered, or expiring) or -ENOMEM. */
int cio_timeout_reschedule(cio_timeout *scope, double when);
/* The deadline as given to enter_until or reschedule, bit for bit as
 * asyncio's when() (loop time plus the delay for cio_timeout_enter);
 * CIO_NO_TIMEOUT if none; NaN for NULL or a scope never entered. And
 * whether it passed. */
double cio_timeout_when(const cio_timeout *scope);
int cio_timeout_expired(const cio_timeout *scope);

/* ------------------------------------------------------------------------
 * shield and as_completed
 * ------------------------------------------------------------------------ */

/* asyncio.shield: returns (one reference) an outer future that follows
 * inner. Cancelling the outer future leaves inner running; inner's outcome
 * is then marked retrieved. If inner is cancelled the outer is too.
 * -EINVAL, -CIO_ELOOPCLOSED or -ENOMEM. */
int cio_shield(cio_future *inner, cio_future **outerp);

/* asyncio.as_completed: yields the futures in the order they finish.
 * cio_as_completed_next suspends until the next one is done and returns 1
 * with *donep set (the original future, as 3.13's async for), 0 once all
 * were yielded. When the timeout (seconds from creation; 0 included) has
 * passed, the futures that finished before it are still yielded first,
 * then each future not finished by then is one -ETIMEDOUT, then 0 (3.13's
 * one TimeoutError per remaining awaitable); also -ECANCELED, -CIO_EWRONGLOOP from a task of another loop, -EPERM outside
 * a task, or -ENOMEM (no room for the timeout's timer). _new returns 0,
 * -EINVAL, -CIO_EWRONGLOOP, -CIO_ELOOPCLOSED or -ENOMEM. */
typedef struct cio_as_completed cio_as_completed;
int cio_as_completed_new(cio_loop *loop, cio_future *const *fs, size_t n, double timeout,
                         cio_as_completed **acp);
int cio_as_completed_next(cio_as_completed *ac, cio_future **donep);
/* Frees the iterator (the futures stay the caller's): 0, also for NULL;
 * -EBUSY while a task waits in cio_as_completed_next (also one woken that
 * has not run yet): the refusal is reported as the synchronisation
 * primitives' are and the iterator stays intact (convention 4). */
int cio_as_completed_free(cio_as_completed *ac);

/* ------------------------------------------------------------------------
 * Task groups (asyncio.TaskGroup)
 *
 *     cio_task_group *g;
 *     rc = cio_task_group_enter(&g);                 // async with TaskGroup() as g:
 *     cio_task_group_spawn(g, child, arg, NULL);     //     g.create_task(child(arg))
 *     rc = body();                                   //     ...
 *     rc = cio_task_group_exit(g, rc);               // waits for every child
 *     ... inspect cio_task_group_error() if rc == -CIO_EGROUP ...
 *     cio_task_group_free(g);
 *
 * A body that fails says why with cio_task_group_exit_msg(g, rc, "why").
 *
 * The first child that fails cancels the other children and the body (the
 * task that entered the group). Exit waits for every child, also when the
 * task is cancelled again meanwhile. It returns 0; -CIO_EGROUP when children
 * (or the body, through rc) failed, every error kept; or -ECANCELED when the
 * task itself was cancelled from outside and nothing failed.
 * ------------------------------------------------------------------------ */
typedef struct cio_task_group cio_task_group;
/* Enters a group in the current task: 0, -EINVAL, -EPERM or -ENOMEM. */
int cio_task_group_enter(cio_task_group **gp);
/* Spawns a child: -CIO_EGROUPDONE once the group finished,
 * -CIO_EGROUPABORTING while it shuts down after an error, or what
 * cio_spawn_with returns (-ENOMEM...). taskp may be NULL. */
int cio_task_group_spawn(cio_task_group *g, cio_coro_fn fn, void *arg, cio_task **taskp);
int cio_task_group_spawn_with(cio_task_group *g, cio_coro_fn fn, void *arg,
                              const cio_task_options *opts, cio_task **taskp);
/* cio_task_group_spawn_with with a spawn site, as cio_spawn_at; the two
 * calls above are macros that pass CIO_HERE. */
int cio_task_group_spawn_at(const char *site, cio_task_group *g, cio_coro_fn fn, void *arg,
                            const cio_task_options *opts, cio_task **taskp);
#define cio_task_group_spawn(g, fn, arg, taskp) \
    cio_task_group_spawn_at(CIO_HERE, g, fn, arg, NULL, taskp)
#define cio_task_group_spawn_with(g, fn, arg, opts, taskp) \
    cio_task_group_spawn_at(CIO_HERE, g, fn, arg, opts, taskp)
/* Leaves the group (the end of asyncio's async with): rc is the body's own
 * outcome; waits for every child and returns as the section above says. */
int cio_task_group_exit(cio_task_group *g, int rc);
/* Same, attaching msg (copied; may be NULL) to the body's own error rc, if
 * rc is an error other than -ECANCELED; cio_task_group_error shows it. */
int cio_task_group_exit_msg(cio_task_group *g, int rc, const char *msg);
/* The errors kept by the group, in the order they happened (0 for NULL). */
size_t cio_task_group_error_count(const cio_task_group *g);
/* Entry i of those errors: returns 0 and sets *err to its (negative) error
 * code, *task to the child that failed (NULL for the body's own error) and
 * *message to its message (the child's cio_raise_msg, or the body's
 * cio_task_group_exit_msg), or NULL. Returns -EINVAL, with *err 0 and
 * *task and *message NULL, when g is NULL or i is out of range, so a bad
 * index is never mistaken for a child's error. Any out-pointer may be
 * NULL. The task and message are valid until cio_task_group_free. */
int cio_task_group_error(const cio_task_group *g, size_t i, int *err, cio_task **task,
                         const char **message);
/* Frees the group: 0 (also for NULL); -EBUSY while the body still waits in
 * cio_task_group_exit (convention 4). A group freed before exit first
 * cancels its children and leaves them to finish detached. */
int cio_task_group_free(cio_task_group *g);

/* ------------------------------------------------------------------------
 * Runner (asyncio.run)
 * ------------------------------------------------------------------------ */

/* Makes a loop, runs main(arg) as a task to its end, then cancels the tasks
 * that are left and waits for them, reports their errors nobody retrieved
 * through the exception handler, and closes and frees the loop. Returns
 * main's outcome like cio_run_until_complete; -CIO_ELOOPRUNNING inside a
 * running loop; or what cio_loop_new_with and cio_spawn return (-ENOMEM...).
 * opts may be NULL. Futures and tasks the program took a reference to stay
 * readable after it returns (see cio_loop_close).
 *
 * Ctrl-C, as asyncio.Runner since 3.11: when cio_run is called from the
 * main thread and SIGINT is at SIG_DFL (and opts->keep_sigint is 0), it
 * holds SIGINT while the main task runs. The first SIGINT cancels the main
 * task, which sees -ECANCELED and may clean up; if it then ends cancelled
 * by that request alone, cio_run returns -CIO_EINTERRUPTED once the
 * clean-up above is done (a task that calls cio_task_uncancel and returns
 * normally gets its result returned). A second SIGINT before the main task
 * has ended kills the process by SIGINT at once, even if the loop is
 * stuck. A SIGINT that came after the main task had finished is raised
 * again once cio_run is done, under the restored disposition. The
 * previous SIGINT disposition is back before the left-over tasks are
 * cancelled; a program that installed its own SIGINT handler (or
 * SIG_IGN), or added one with cio_add_signal_handler, keeps it. */
int cio_run(cio_coro_fn main, void *arg, void **result);
int cio_run_with(cio_coro_fn main, void *arg, const cio_loop_options *opts, void **result);

/* ------------------------------------------------------------------------
 * Synchronisation primitives (asyncio.Lock, Event, Condition, Semaphore,
 * BoundedSemaphore, Barrier)
 *
 * All are fair: waiters are served first come, first served, and a newcomer
 * never barges past a waiter. All are cancellation-safe: a cancelled waiter
 * never takes the lock, a permit or a wake-up with it, and a waiter that was
 * woken and then cancelled passes its wake-up on. Like asyncio's, they are
 * not thread-safe, and bind to the loop of the first task that waits on
 * them (a task of another loop gets -CIO_EWRONGLOOP). Each has an _until
 * form of its waiting call. Releasing something not held is
 * -CIO_EINVALSTATE (asyncio: RuntimeError). The _new calls return 0,
 * -EINVAL or -ENOMEM; the _until forms can return -ENOMEM (no room for the
 * deadline's timer). Calls that wake tasks or change what waiters see
 * (release, set, clear, notify, reset, abort) are refused as the header's
 * opening says: -CIO_EFORKED, and -CIO_EWRONGTHREAD in debug mode. Each
 * _free returns 0, or -EBUSY (reported, the object left intact) while a
 * task is still inside a call on it, woken tasks that have yet to run
 * included.
 * ------------------------------------------------------------------------ */
/* asyncio.Lock. new makes an unlocked lock. acquire takes it, suspending
 * while another task holds it (0, -ECANCELED, -ETIMEDOUT for the _until
 * form, -EPERM outside a task); a lock is not reentrant: a task acquiring
 * a lock it holds waits forever, as in asyncio. release unlocks it and
 * hands it to the first waiter (-CIO_EINVALSTATE when it is not locked).
 * locked is 1 while a task holds it. */
typedef struct cio_lock cio_lock;
int cio_lock_new(cio_lock **lockp);
int cio_lock_free(cio_lock *lock);
int cio_lock_acquire(cio_lock *lock);
int cio_lock_acquire_until(cio_lock *lock, double when);
int cio_lock_release(cio_lock *lock);
int cio_lock_locked(const cio_lock *lock);

/* asyncio.Event. new makes a clear event. wait returns 0 at once when the
 * event is set, else suspends until set is called (-ECANCELED, -ETIMEDOUT
 * for the _until form, -EPERM outside a task). set wakes every waiter;
 * clear makes later waits suspend again; is_set reads the flag. */
typedef struct cio_event cio_event;
int cio_event_new(cio_event **eventp);
int cio_event_free(cio_event *event);
int cio_event_wait(cio_event *event);
int cio_event_wait_until(cio_event *event, double when);
int cio_event_set(cio_event *event);
int cio_event_clear(cio_event *event);
int cio_event_is_set(const cio_event *event);

/* A condition uses lock, or a lock of its own when lock is NULL. wait
 * releases the lock, waits for a notify, and always re-acquires the lock
 * before returning, also when cancelled or timed out. notify without
 * holding the lock is -CIO_EINVALSTATE. */
typedef struct cio_condition cio_condition;
int cio_condition_new(cio_lock *lock, cio_condition **condp);
int cio_condition_free(cio_condition *cond);
int cio_condition_acquire(cio_condition *cond);
int cio_condition_release(cio_condition *cond);
int cio_condition_locked(const cio_condition *cond);
int cio_condition_wait(cio_condition *cond);
int cio_condition_wait_until(cio_condition *cond, double when);
/* Waits until pred(arg) is true (asyncio wait_for); returns 0 or an error. */
int cio_condition_wait_for(cio_condition *cond, int (*pred)(void *arg), void *arg);
int cio_condition_notify(cio_condition *cond, int n);
int cio_condition_notify_all(cio_condition *cond);

/* Semaphore: value < 0 is -EINVAL. A bounded semaphore released above its
 * initial value returns -CIO_EINVALSTATE (asyncio: ValueError). locked() is
 * true when acquire would wait: value 0, or waiters queued (no barging).
 * value() is -EINVAL for NULL. */
typedef struct cio_semaphore cio_semaphore;
int cio_semaphore_new(int value, cio_semaphore **semp);
int cio_bounded_semaphore_new(int value, cio_semaphore **semp);
int cio_semaphore_free(cio_semaphore *sem);
int cio_semaphore_acquire(cio_semaphore *sem);
int cio_semaphore_acquire_until(cio_semaphore *sem, double when);
int cio_semaphore_release(cio_semaphore *sem);
int cio_semaphore_locked(const cio_semaphore *sem);
int cio_semaphore_value(const cio_semaphore *sem);

/* Barrier for `parties` tasks: wait returns this task's arrival index
 * (0..parties-1), -CIO_EBROKEN once the barrier is broken (abort, or reset
 * while tasks wait), or -ECANCELED. A waiter that is cancelled just leaves,
 * as in asyncio: the barrier is not broken. parties() and n_waiting() are
 * -EINVAL for NULL. */
typedef struct cio_barrier cio_barrier;
int cio_barrier_new(int parties, cio_barrier **barrierp);
int cio_barrier_free(cio_barrier *barrier);
int cio_barrier_wait(cio_barrier *barrier);
int cio_barrier_wait_until(cio_barrier *barrier, double when);
int cio_barrier_reset(cio_barrier *barrier);
int cio_barrier_abort(cio_barrier *barrier);
int cio_barrier_parties(const cio_barrier *barrier);
int cio_barrier_n_waiting(const cio_barrier *barrier);
int cio_barrier_broken(const cio_barrier *barrier);

/* ------------------------------------------------------------------------
 * Queues (asyncio.Queue, LifoQueue, PriorityQueue)
 *
 * Items are pointers, owned by whoever put them until someone gets them.
 * maxsize 0 means unbounded. The _nowait forms return -EAGAIN when full or
 * empty. shutdown (3.13): puts fail with -CIO_ESHUTDOWN at once; gets drain
 * what is left, then fail with -CIO_ESHUTDOWN; an immediate shutdown also
 * discards the items left, passing each to the dispose callback if one is
 * set (so nothing is lost silently), and counts them as done for join.
 * The _new calls return 0, -EINVAL or -ENOMEM; a put (any form) returns
 * -ENOMEM, changing nothing, when the buffer cannot grow, and the _until
 * forms also when the deadline's timer cannot be armed.
 * ------------------------------------------------------------------------ */
typedef struct cio_queue cio_queue;
typedef int (*cio_compare_fn)(const void *a, const void *b);

/* Makes a FIFO queue (asyncio.Queue) or a LIFO one (asyncio.LifoQueue)
 * holding at most maxsize items (0: no bound). */
int cio_queue_new(size_t maxsize, cio_queue **queuep);
int cio_lifo_queue_new(size_t maxsize, cio_queue **queuep);
/* Smallest item first by cmp; equal items come out in insertion order. */
int cio_priority_queue_new(size_t maxsize, cio_compare_fn cmp, cio_queue **queuep);
/* Frees the queue; items left are passed to the dispose callback. 0 (also
 * for NULL), or -EBUSY, the queue left intact, while a task is inside a
 * blocking put, get or join (convention 4). */
int cio_queue_free(cio_queue *queue);
/* Sets the callback that receives each item the queue discards (at free,
 * and at an immediate shutdown): dispose(item, arg). NULL removes it. */
int cio_queue_set_dispose(cio_queue *queue, void (*dispose)(void *item, void *arg), void *arg);

/* put adds item, suspending while the queue is full; get takes the next
 * item into *itemp, suspending while the queue is empty. Both return 0,
 * -CIO_ESHUTDOWN once the queue is shut down (a get only once no item is
 * left), -ECANCELED, -ETIMEDOUT for the _until forms, -EPERM outside a
 * task, -EINVAL. The _nowait forms never
 * suspend and work outside a task: -EAGAIN when full or empty (asyncio's
 * QueueFull and QueueEmpty). A cancelled get takes no item and a cancelled
 * put adds none. */
int cio_queue_put(cio_queue *queue, void *item);
int cio_queue_put_until(cio_queue *queue, void *item, double when);
int cio_queue_put_nowait(cio_queue *queue, void *item);
int cio_queue_get(cio_queue *queue, void **itemp);
int cio_queue_get_until(cio_queue *queue, void **itemp, double when);
int cio_queue_get_nowait(cio_queue *queue, void **itemp);
/* task_done more often than items were put: -CIO_EINVALSTATE. */
int cio_queue_task_done(cio_queue *queue);
int cio_queue_join(cio_queue *queue);
int cio_queue_join_until(cio_queue *queue, double when);
int cio_queue_shutdown(cio_queue *queue, int immediate);
/* size and maxsize are 0 for NULL; empty and full are 0 for NULL (a NULL
 * queue is not a queue, empty or not: convention 2). */
size_t cio_queue_size(const cio_queue *queue);
size_t cio_queue_maxsize(const cio_queue *queue);
int cio_queue_empty(const cio_queue *queue);
int cio_queue_full(const cio_queue *queue);

/* ------------------------------------------------------------------------
 * gather and wait
 * ------------------------------------------------------------------------ */

/* One child's outcome in a gather: error 0 means value holds its result. */
typedef struct cio_outcome {
    int error;
    void *value;
} cio_outcome;

#define CIO_RETURN_EXCEPTIONS 1u

/* asyncio.gather: returns (in *outp, one reference) a future that completes
 * when every child is done. Its result is a cio_outcome array in argument
 * order, owned by the gather future: the array dies with the gather
 * future's last release, so hold a reference while reading it. Without
 * CIO_RETURN_EXCEPTIONS the first child error completes the gather future
 * with that error at once, and the other children go on. Cancelling the
 * gather future cancels every child. The caller's references to the
 * children are not taken; gather holds its own. -EINVAL, -CIO_EWRONGLOOP,
 * -CIO_ELOOPCLOSED or -ENOMEM. */
int cio_gather(cio_loop *loop, cio_future *const *children, size_t n, unsigned flags,
               cio_future **outp);
/* The outcome array of a gather future (n entries; n may be NULL), or NULL
 * (and *n 0) if fut is not a gather future. Entries of children not done
 * yet have error -CIO_EINVALSTATE. The array is part of the gather future
 * and is freed with it (at its last unref, which may be after its loop
 * closed). */
const cio_outcome *cio_gather_outcomes(const cio_future *fut, size_t *n);

typedef enum cio_wait_mode {
    CIO_ALL_COMPLETED = 0,
    CIO_FIRST_COMPLETED = 1,
    CIO_FIRST_EXCEPTION = 2
} cio_wait_mode;

/* asyncio.wait: waits (inside a task) until the condition holds or timeout
 * passes; never cancels the futures and never fails on timeout. On return,
 * done[0..*ndone) and pending[0..*npending) hold the two sets in argument
 * order; either array may be NULL when not wanted (each needs room for n).
 * Returns 0, -EINVAL for n == 0 or a NULL future, -ECANCELED, or -ENOMEM
 * (its waiter records, or the timeout's timer). */
int cio_wait(cio_future *const *fs, size_t n, cio_wait_mode mode, double timeout,
             cio_future **done, size_t *ndone, cio_future **pending, size_t *npending);

/* ------------------------------------------------------------------------
 * File descriptors and sockets (asyncio's loop.sock_* family)
 *
 * These take non-blocking descriptors (asyncio requires the same: accept
 * and connect refuse a blocking socket with -EINVAL) and suspend the calling
 * task until the operation completes; outside a task they return -EPERM.
 * Any number of tasks may read, write or wait on one descriptor at once:
 * they are served in the order they asked, per direction.
 *
 * Cancelling a task (or a deadline passing) while its operation is in
 * flight cancels the operation, and the call returns only once the kernel
 * is done with it and its buffer: -ECANCELED (-ETIMEDOUT for a deadline).
 * If the operation completed first, its result is returned instead, so no
 * received byte is ever lost, and the cancellation arrives at the task's
 * next suspension. Every one of these calls can also return -ENOMEM: the
 * loop's table of descriptors may have to grow, and a deadline needs a
 * timer.
 * ------------------------------------------------------------------------ */

struct sockaddr;
struct iovec;

/* Waits until fd is readable (or writable). Returns 0 or -ECANCELED. */
int cio_wait_readable(int fd);
int cio_wait_writable(int fd);

/* Receives up to len bytes: the count, 0 at end of stream, or -errno. */
ssize_t cio_sock_recv(int fd, void *buf, size_t len);
/* Sends what the kernel takes at once (at least one byte): the count. */
ssize_t cio_sock_send(int fd, const void *buf, size_t len);
/* Sends all len bytes: len, or -errno. If the task is cancelled midway, the
 * call returns -ECANCELED and the bytes already sent stay sent. */
ssize_t cio_sock_sendall(int fd, const void *buf, size_t len);
/* Accepts a connection: the new descriptor (non-blocking, close-on-exec). */
int cio_sock_accept(int fd, struct sockaddr *addr, unsigned int *addrlen);
/* Connects a non-blocking socket: 0 or -errno (e.g. -ECONNREFUSED). */
int cio_sock_connect(int fd, const struct sockaddr *addr, unsigned int addrlen);

/* Closes fd. Every loop of this thread (the one it runs, and those it made
 * or ran last) forgets it first: operations in flight on fd end with -EBADF
 * and its watchers are removed. Loops of other threads are not touched.
 * Use it for every descriptor cio has seen; a plain close() is harmless
 * only once nothing waits on the descriptor, and never meant for a socket
 * given to cio_sock_adopt (see there for what it costs). */
int cio_close(int fd);

/* Hands the socket fd over to loop (no asyncio counterpart: asyncio's
 * sock_* calls re-register per wait too, see docs/asyncio-mapping.md). The
 * program promises to close fd only with cio_close from now on; in return
 * the loop keeps fd registered for its whole life instead of arming it
 * before every wait, which saves a system call per wait (epoll; on
 * io_uring, which registers nothing, only the checks below run). Nothing
 * else changes: every call above works on fd as before, and tasks already
 * waiting on it go on waiting. Use it on sockets from cio_sock_accept or
 * socket(2) that tasks read and write for a while. If fd is closed with
 * close(2) anyway, a wait on it, or on a later descriptor with its number,
 * may take up to about two seconds to notice (-EBADF, or the wait goes on
 * properly), never longer; a number that cio_sock_accept gives out again
 * is known to be new at once. Returns 0, -EINVAL (NULL loop), -EBADF (fd
 * is not open), -EBUSY (adopted already, or a watcher or a transport has
 * it), -EPERM (fd cannot be polled: a regular file), -ENOMEM, or
 * -CIO_ELOOPCLOSED. */
int cio_sock_adopt(cio_loop *loop, int fd);

/* asyncio's loop.add_reader / add_writer: calls fn(loop, arg) from the loop,
 * once per iteration, for as long as fd is readable (writable) and the
 * watcher stays (level-triggered). A second add for the same fd and
 * direction replaces the callback. Returns 0, -EBADF, -EPERM for a
 * descriptor that cannot be polled (a regular file), -ENOMEM, or
 * -CIO_ELOOPCLOSED. The remove calls return 1 if a watcher was removed, 0 if
 * there was none; a removed callback that was already scheduled does not
 * run. Closing the loop removes every watcher. */
int cio_add_reader(cio_loop *loop, int fd, cio_callback_fn fn, void *arg);
int cio_add_writer(cio_loop *loop, int fd, cio_callback_fn fn, void *arg);
int cio_remove_reader(cio_loop *loop, int fd);
int cio_remove_writer(cio_loop *loop, int fd);

/* Deadline forms of the calls above (see cio_await_until). */
int cio_wait_until(cio_future *const *fs, size_t n, cio_wait_mode mode, double when,
                   cio_future **done, size_t *ndone, cio_future **pending, size_t *npending);
int cio_wait_readable_until(int fd, double when);
int cio_wait_writable_until(int fd, double when);
ssize_t cio_sock_recv_until(int fd, void *buf, size_t len, double when);
ssize_t cio_sock_send_until(int fd, const void *buf, size_t len, double when);
ssize_t cio_sock_sendall_until(int fd, const void *buf, size_t len, double when);
int cio_sock_accept_until(int fd, struct sockaddr *addr, unsigned int *addrlen, double when);
int cio_sock_connect_until(int fd, const struct sockaddr *addr, unsigned int addrlen,
                           double when);

/* ------------------------------------------------------------------------
 * Transports and protocols (asyncio's loop.create_connection,
 * create_server, create_unix_connection, create_unix_server)
 *
 * The callback path: no task per connection. A protocol is a table of
 * callbacks the loop calls; a transport is the connection they act on.
 * Every callback gets the transport and its context pointer (the ctx given
 * when the transport or server was made, which connection_made may replace
 * with cio_transport_set_context). Callbacks run from the loop and must not
 * suspend; they may call any transport function, including close.
 *
 * Lifetime: a transport is valid from connection_made until
 * connection_lost returns; the loop frees it then (asyncio has no free
 * call either). connection_lost runs exactly once per transport that saw
 * connection_made, with 0 for a clean close or a negative errno. A
 * transport still open when its loop closes is closed and freed by the
 * close, without callbacks.
 * ------------------------------------------------------------------------ */

typedef struct cio_transport cio_transport;
typedef struct cio_server cio_server;

typedef struct cio_protocol {
    void (*connection_made)(cio_transport *t, void *ctx);
    /* data is valid only during the call. */
    void (*data_received)(cio_transport *t, const void *data, size_t len, void *ctx);
    /* The peer shut down its sending side. Return nonzero to keep the
     * transport open for writing (half-close), 0 to close it; NULL closes. */
    int (*eof_received)(cio_transport *t, void *ctx);
    void (*connection_lost)(cio_transport *t, int error, void *ctx);
    /* The write buffer went over the high-water mark / back to the low one.
     * Either may be NULL. */
    void (*pause_writing)(cio_transport *t, void *ctx);
    void (*resume_writing)(cio_transport *t, void *ctx);
} cio_protocol;

/* Options of a server; NULL means every default. */
typedef struct cio_server_options {
    int backlog;              /* listen() backlog; 0: 100, as asyncio */
    int reuse_port;           /* SO_REUSEPORT */
    int no_start_serving;     /* bound but, as asyncio, not listening (connections
                               * are refused) until cio_server_start_serving */
} cio_server_options;

/* Connects to host:port (numeric or a name: every address is tried in
 * turn) and makes a transport driven by proto. connection_made has run
 * when the call returns. Must run in a task. Returns 0, -EINVAL, the
 * connect error of the last address tried (e.g. -ECONNREFUSED),
 * -ETIMEDOUT for the _until form's deadline, -ECANCELED, a resolver error,
 * or -ENOMEM. */
int cio_create_connection(cio_loop *loop, const cio_protocol *proto, void *ctx, const char *host,
                          const char *port, cio_transport **out);
int cio_create_connection_until(cio_loop *loop, const cio_protocol *proto, void *ctx,
                                const char *host, const char *port, double when,
                                cio_transport **out);
int cio_create_unix_connection(cio_loop *loop, const cio_protocol *proto, void *ctx,
                               const char *path, cio_transport **out);

/* Listens on host:port (NULL or "" host: every interface, IPv4 and IPv6; port
 * "0": a free port, see cio_server_sockets) and makes a transport driven
 * by proto for each connection, with ctx as its first context. Callable
 * outside a task. Returns 0, -EINVAL, -EADDRINUSE and the other errors of
 * socket/bind/listen, a resolver error, -ENOMEM or -CIO_ELOOPCLOSED. */
int cio_create_server(cio_loop *loop, const cio_protocol *proto, void *ctx, const char *host,
                      const char *port, const cio_server_options *opts, cio_server **out);
/* The same on a Unix socket path (a leading '@' names an abstract socket).
 * An existing socket file at path is replaced, as asyncio does. */
int cio_create_unix_server(cio_loop *loop, const cio_protocol *proto, void *ctx,
                           const char *path, const cio_server_options *opts, cio_server **out);

/* Writes data: sends what the socket takes at once and buffers the rest
 * (never blocks). Returns 0, -EINVAL, -CIO_EINVALSTATE after write_eof or
 * close, or -EPIPE once the connection is lost; an error of the socket
 * closes the transport and reaches connection_lost. */
int cio_transport_write(cio_transport *t, const void *data, size_t len);
int cio_transport_writelines(cio_transport *t, const struct iovec *iov, int iovcnt);
/* Shuts down the sending side once the buffer is flushed (a write pipe:
 * closes it). Again after that, or once closing, does nothing (0). */
int cio_transport_write_eof(cio_transport *t);
int cio_transport_can_write_eof(cio_transport *t);
/* Closes once the buffer is flushed; connection_lost(0) follows from the
 * loop. A second close does nothing. */
int cio_transport_close(cio_transport *t);
/* Closes at once, dropping the buffer; connection_lost(0) follows. */
int cio_transport_abort(cio_transport *t);
/* is_closing: 1 once close or abort was called or the connection was
 * lost, and on a write pipe once write_eof was called (its end closes it,
 * as asyncio's). pause_reading and resume_reading stop and restart data_received
 * (asyncio's flow control); is_reading tells which. */
int cio_transport_is_closing(cio_transport *t);
int cio_transport_pause_reading(cio_transport *t);
int cio_transport_resume_reading(cio_transport *t);
int cio_transport_is_reading(cio_transport *t);
/* asyncio's set_write_buffer_limits(high, low): a negative value means
 * asyncio's None (high: 64 KiB, or 4 * low if low is given; low: high / 4);
 * high 0 pauses writing whenever anything is buffered. New limits may
 * call pause_writing at once; resume_writing comes only when the buffer
 * drains, as in asyncio. low > high is -EINVAL. (Before 2026-12-02 the limits were size_t, with 0 for the
 * default high and (size_t)-1 for the default low.) */
int cio_transport_set_write_buffer_limits(cio_transport *t, ssize_t high, ssize_t low);
int cio_transport_get_write_buffer_limits(cio_transport *t, size_t *low, size_t *high);
size_t cio_transport_get_write_buffer_size(cio_transport *t);
/* get_extra_info: the socket's own and its peer's address (*len in: room,
 * out: size), and the descriptor (owned by the transport: do not close). */
int cio_transport_sockname(cio_transport *t, struct sockaddr *addr, unsigned int *len);
int cio_transport_peername(cio_transport *t, struct sockaddr *addr, unsigned int *len);
int cio_transport_socket(cio_transport *t);
/* The context the callbacks get (NULL for NULL), changing it, and the
 * transport's loop. */
void *cio_transport_context(cio_transport *t);
int cio_transport_set_context(cio_transport *t, void *ctx);
cio_loop *cio_transport_loop(cio_transport *t);

/* Stops accepting and closes the listening sockets; connections stay
 * (asyncio 3.13). Returns 0; a second close does nothing. */
int cio_server_close(cio_server *s);
/* Closes every connection of the server (close, or abort). In debug
 * mode -CIO_EWRONGTHREAD from a thread the loop does not belong to. */
int cio_server_close_clients(cio_server *s);
int cio_server_abort_clients(cio_server *s);
/* In a task: waits until the server is closed and its last connection is
 * gone. Returns 0 or -ECANCELED. */
int cio_server_wait_closed(cio_server *s);
/* Starts listening and accepting (a server made with no_start_serving): 0
 * (also when it serves already), -CIO_EINVALSTATE once closed,
 * -CIO_ELOOPCLOSED once its loop is closed or freed (a server that never
 * served outlives its loop: close and free it as usual), or listen's
 * error. is_serving is 1 while it accepts. */
int cio_server_start_serving(cio_server *s);
int cio_server_is_serving(cio_server *s);
/* In a task: serves until cancelled (or until the server is closed); then,
 * as asyncio 3.12+, closes the server, waits as wait_closed until its last
 * connection is gone (a second cancellation cuts that wait short), and
 * returns -ECANCELED. -CIO_EINVALSTATE if already serving forever or
 * closed. */
int cio_server_serve_forever(cio_server *s);
/* Copies up to n listening descriptors into fds; returns how many the
 * server has (0 once closed). */
int cio_server_sockets(cio_server *s, int *fds, size_t n);
/* Frees a server: closes it first if needed. -EBUSY while a task waits in
 * wait_closed or serve_forever. */
int cio_server_free(cio_server *s);

/* ------------------------------------------------------------------------
 * Streams (asyncio's open_connection, start_server and their Unix forms,
 * StreamReader and StreamWriter)
 *
 * A stream is asyncio's reader and writer pair in one object, built on a
 * transport as asyncio builds them. The reading calls suspend the calling
 * task until data is there (one reading task at a time: a second gets
 * -EBUSY, as asyncio raises RuntimeError); the writing calls buffer and
 * never suspend, and cio_stream_drain waits for the buffer to go below
 * its low-water mark. Reading pauses the connection while more than twice
 * the limit (default 64 KiB) is buffered and unread.
 *
 * Outcomes of reading: a count of bytes; 0 at end of stream (read) ;
 * -CIO_EINCOMPLETE when the stream ended before what readexactly or
 * readuntil needed (the partial data stays readable, nothing is lost);
 * -CIO_ELIMITOVERRUN when readuntil finds no separator within the limit
 * (the data stays readable); -CIO_ECLOSED once this program closed the
 * stream (a task blocked in a read is woken with it); the connection's
 * error (-ECONNRESET, ...) once it failed; -ECANCELED (a read under
 * cio_wait_for or a timeout scope ends with it, and the scope turns it
 * into -ETIMEDOUT; the data read so far stays in the stream).
 *
 * Lifetime: a stream from cio_open_connection is freed by cio_stream_free
 * (which closes it first if needed). The stream a server hands to its
 * handler belongs to the server: it is closed and freed when the handler
 * returns.
 * ------------------------------------------------------------------------ */

typedef struct cio_stream cio_stream;
/* A connection handler of cio_start_server: runs as a task per connection. */
typedef void *(*cio_stream_handler_fn)(cio_stream *stream, void *arg);

/* In a task: connects to host:port (every resolved address in turn) or to
 * a Unix socket path. Returns 0 or the errors of cio_create_connection. */
int cio_open_connection(const char *host, const char *port, cio_stream **out);
int cio_open_connection_until(const char *host, const char *port, double when,
                              cio_stream **out);
int cio_open_unix_connection(const char *path, cio_stream **out);
/* Starts a server whose every connection runs handler(stream, arg) in a
 * task of its own. The task starts eagerly, in the loop step that accepted
 * the connection (asyncio schedules the callback as a new task): its code
 * up to the first suspension runs before other ready tasks. Returns as
 * cio_create_server. */
int cio_start_server(cio_loop *loop, cio_stream_handler_fn handler, void *arg, const char *host,
                     const char *port, const cio_server_options *opts, cio_server **out);
int cio_start_unix_server(cio_loop *loop, cio_stream_handler_fn handler, void *arg,
                          const char *path, const cio_server_options *opts, cio_server **out);

/* Reads up to n bytes (at least 1 unless at end of stream: then 0).
 * Tasks left blocked in a call on a server's stream (read, drain,
 * wait_closed) when its handler returns are woken (-CIO_ECLOSED for a
 * reader or drainer); the stream is freed once they have left. */
ssize_t cio_stream_read(cio_stream *s, void *buf, size_t n);
/* Reads everything to the end of stream into a buffer the call allocates
 * (*data, to free with free(); NULL and 0 for an empty stream). Returns
 * the length. */
ssize_t cio_stream_read_to_eof(cio_stream *s, void **data);
/* Reads exactly n bytes: n, or -CIO_EINCOMPLETE (the bytes that came stay
 * readable). */
ssize_t cio_stream_readexactly(cio_stream *s, void *buf, size_t n);
/* Reads up to and including the separator into buf (cap bytes): the
 * length. As asyncio, the limit bounds the data before the separator (the
 * separator is not counted). -CIO_ELIMITOVERRUN if no separator within the
 * limit, -ENOBUFS if
 * the data up to it does not fit in cap; in both cases nothing is
 * consumed. -EINVAL for an empty separator. */
ssize_t cio_stream_readuntil(cio_stream *s, const void *sep, size_t seplen, void *buf,
                             size_t cap);
/* readuntil with several separators (asyncio 3.13's tuple): seps[i] of
 * seplens[i] bytes, nseps of them. Reads up to and including the one that
 * ends first in the stream (on a tie, the shorter: the data is the same,
 * and the limit bounds what precedes it). Outcomes as readuntil; -EINVAL
 * for no separator or an empty one. */
ssize_t cio_stream_readuntil_any(cio_stream *s, const void *const *seps, const size_t *seplens,
                                 size_t nseps, void *buf, size_t cap);
/* asyncio's readline: a line with its '\n'; at end of stream the last
 * partial line (or 0). On a limit overrun the line is discarded (as
 * asyncio does) and -CIO_ELIMITOVERRUN returned. */
ssize_t cio_stream_readline(cio_stream *s, void *buf, size_t cap);
/* 1 once the end of stream was reached and everything buffered was read;
 * as asyncio, a connection that failed (reset) has an error, not an end of
 * stream, so this stays 0. */
int cio_stream_at_eof(cio_stream *s);
/* The limit (asyncio's limit argument); 0 is refused. */
int cio_stream_set_limit(cio_stream *s, size_t limit);

/* Buffers data to send (never suspends). Returns 0, -CIO_ECLOSED after
 * close, -CIO_EINVALSTATE after write_eof, or the connection's error. */
int cio_stream_write(cio_stream *s, const void *data, size_t len);
/* In a task: waits until the write buffer is at its low-water mark.
 * Returns 0, the connection's error (-ECONNRESET once it is lost), or
 * -ECANCELED. */
int cio_stream_drain(cio_stream *s);
/* Shuts down the sending side once the buffer is sent (asyncio
 * write_eof; again after that does nothing, 0); can_write_eof is 1 when
 * the stream can (every socket stream can), -EINVAL for NULL. */
int cio_stream_write_eof(cio_stream *s);
int cio_stream_can_write_eof(cio_stream *s);
/* Closes the stream (buffered data is still sent). */
int cio_stream_close(cio_stream *s);
/* 1 once closed, or once its transport is closing (cio_transport_is_closing). */
int cio_stream_is_closing(cio_stream *s);
/* In a task: waits until the connection is gone. Returns 0, or the
 * connection's error. */
int cio_stream_wait_closed(cio_stream *s);
/* get_extra_info "sockname" and "peername": the addresses (*len in: room,
 * out: size). */
int cio_stream_sockname(cio_stream *s, struct sockaddr *addr, unsigned int *len);
int cio_stream_peername(cio_stream *s, struct sockaddr *addr, unsigned int *len);
/* The transport under the stream (NULL once the connection is gone). */
cio_transport *cio_stream_transport(cio_stream *s);
/* Frees a stream from cio_open_connection (or a pipe's), closing it at
 * once (abort) if it is still open. -EBUSY while a task waits on it;
 * -CIO_EINVALSTATE for a stream a server handed to its handler or a child
 * process's pipe (cio_process_free frees those). */
int cio_stream_free(cio_stream *s);

/* ------------------------------------------------------------------------
 * Pipes (asyncio's loop.connect_read_pipe and connect_write_pipe)
 *
 * A pipe transport works on one end of a pipe, a character device (a
 * terminal) or a socket: it reads with read(2) or writes with write(2),
 * never both. It takes the descriptor over, as asyncio's does: the call
 * makes it non-blocking (also when it then fails), and the transport closes
 * it when it is done; on failure the descriptor stays the caller's. A
 * regular file is -EINVAL (it is always ready: use a thread, cio_to_thread);
 * a device that epoll cannot watch (/dev/null) gives -EPERM.
 *
 * Reading side: at the end of stream eof_received is called and the
 * transport closes (its return value does not keep a pipe open);
 * connection_lost(0) follows. Writing side: write_eof closes the pipe once
 * the buffer is flushed; when the reader goes away, connection_lost gets 0,
 * or -EPIPE if data was still unsent. No write raises SIGPIPE. The calls
 * of the other direction are -ENOTSUP (write on a read pipe, pause_reading
 * on a write pipe); can_write_eof says 0 for a read pipe.
 * ------------------------------------------------------------------------ */

/* Callable outside a task; connection_made has run when they return.
 * Return 0, -EINVAL (NULL loop, protocol or out; a read pipe's protocol
 * without data_received; a regular file), -EBADF, -EPERM, -ENOMEM,
 * -CIO_ELOOPCLOSED or -CIO_EWRONGTHREAD. */
int cio_connect_read_pipe(cio_loop *loop, const cio_protocol *proto, void *ctx, int fd,
                          cio_transport **out);
int cio_connect_write_pipe(cio_loop *loop, const cio_protocol *proto, void *ctx, int fd,
                           cio_transport **out);
/* The same as a stream (asyncio builds one with StreamReaderProtocol): a
 * read pipe's stream only reads and a write pipe's only writes (the other
 * calls are -ENOTSUP). Freed by cio_stream_free. */
int cio_open_read_pipe(cio_loop *loop, int fd, cio_stream **out);
int cio_open_write_pipe(cio_loop *loop, int fd, cio_stream **out);

/* ------------------------------------------------------------------------
 * Subprocesses (asyncio's create_subprocess_exec, create_subprocess_shell,
 * asyncio.subprocess.Process, and loop.subprocess_exec / subprocess_shell
 * with a SubprocessProtocol)
 *
 * A child is started with posix_spawn (no copy of the parent's memory)
 * and watched through a pidfd: cio reaps only the children it started and
 * never installs a SIGCHLD handler. (Where pidfd_open is missing, a thread
 * per child waits for its exit, as asyncio's ThreadedChildWatcher.) A
 * program that sets SIGCHLD to SIG_IGN makes the kernel reap its children
 * itself: their status is lost, and their returncode reads 255 (asyncio's
 * answer too), with a report.
 *
 * The calls that start a child are callable outside a task; the program
 * file is searched in the parent's PATH when it has no '/'. argv is
 * NULL-terminated (NULL: just the file). A returncode is the exit status,
 * or minus the signal that ended the child (-9 for SIGKILL), as asyncio's.
 *
 * Lifetime: a process is freed by cio_process_free. A child still running
 * then is killed (asyncio's transport kills it on close) and reaped by the
 * loop in the background. Closing the loop kills and reaps the children
 * still running; a process object stays valid after the close, reading as
 * exited, until it is freed.
 * ------------------------------------------------------------------------ */

typedef struct cio_process cio_process;

/* Where a child's stdin, stdout or stderr goes. */
enum {
    CIO_STDIO_INHERIT = 0, /* the parent's own (asyncio's None) */
    CIO_STDIO_PIPE,        /* a pipe to the parent: a stream (or a pipe transport) */
    CIO_STDIO_DEVNULL,     /* /dev/null */
    CIO_STDIO_STDOUT,      /* stderr only: wherever stdout goes */
    CIO_STDIO_FD           /* the descriptor in stdio_fd (duplicated; still the caller's) */
};

/* Options of a child; NULL (or zeroed) means asyncio's defaults: every
 * standard descriptor inherited, the parent's directory and environment,
 * and every other descriptor closed in the child. */
typedef struct cio_process_options {
    int stdio[3];            /* stdin, stdout, stderr: CIO_STDIO_* */
    int stdio_fd[3];         /* for CIO_STDIO_FD */
    const char *cwd;         /* NULL: the parent's */
    char *const *env;        /* NULL-terminated "NAME=value"; NULL: the parent's */
    const int *pass_fds;     /* descriptors the child keeps, at their numbers */
    size_t n_pass_fds;
    int inherit_fds;         /* asyncio's close_fds=False */
    int start_new_session;   /* setsid() in the child */
    size_t limit;            /* the stdout and stderr streams' limit; 0: 64 KiB */
} cio_process_options;

/* asyncio's SubprocessProtocol. fd is 0, 1 or 2. process_exited may come
 * before the last pipe_data_received (as asyncio documents); connection_lost
 * comes once the child exited and every pipe is closed. Any may be NULL. */
typedef struct cio_subprocess_protocol {
    void (*connection_made)(cio_process *p, void *ctx);
    void (*pipe_data_received)(cio_process *p, int fd, const void *data, size_t len, void *ctx);
    void (*pipe_connection_lost)(cio_process *p, int fd, int error, void *ctx);
    void (*process_exited)(cio_process *p, void *ctx);
    void (*connection_lost)(cio_process *p, int error, void *ctx);
    void (*pause_writing)(cio_process *p, void *ctx);
    void (*resume_writing)(cio_process *p, void *ctx);
} cio_subprocess_protocol;

/* Starts file with argv (or "/bin/sh -c cmd"); the pipes become streams
 * (cio_process_stdin/stdout/stderr). Returns 0, -EINVAL (NULL or empty
 * file, NULL loop or out, a bad CIO_STDIO_* value, CIO_STDIO_STDOUT for
 * stdin or stdout), -EBADF (a negative descriptor in the options), the
 * error of starting the program (-ENOENT, -EACCES, ...), -EMFILE, -ENOMEM,
 * -CIO_ELOOPCLOSED or -CIO_EWRONGTHREAD. */
int cio_create_subprocess_exec(cio_loop *loop, const char *file, char *const argv[],
                               const cio_process_options *opts, cio_process **out);
int cio_create_subprocess_shell(cio_loop *loop, const char *cmd, const cio_process_options *opts,
                                cio_process **out);
/* The same with a protocol: the pipes are pipe transports whose data and
 * closing reach proto (cio_process_pipe_transport gives them; write to
 * stdin's). connection_made has run when the call returns. A callback may
 * free the process: no callback of it comes after that. */
int cio_subprocess_exec(cio_loop *loop, const cio_subprocess_protocol *proto, void *ctx,
                        const char *file, char *const argv[], const cio_process_options *opts,
                        cio_process **out);
int cio_subprocess_shell(cio_loop *loop, const cio_subprocess_protocol *proto, void *ctx,
                         const char *cmd, const cio_process_options *opts, cio_process **out);

/* The child's process id (asyncio's Process.pid); -EINVAL for NULL. */
int cio_process_pid(cio_process *p);
/* 1 with *code set once the child exited and was reaped, 0 while it runs
 * (asyncio's None). code may be NULL. */
int cio_process_returncode(cio_process *p, int *code);
/* In a task: waits for the child to exit (code may be NULL). Returns 0,
 * -ECANCELED (the child runs on; wait again), -EPERM outside a task. Once
 * the exit is known, a task of any loop gets it at once (as asyncio's). */
int cio_process_wait(cio_process *p, int *code);
/* In a task (streams only): writes input to stdin and closes it, reads
 * stdout and stderr to their end and waits for the exit. *out and *err
 * (either may be NULL) get malloc'd copies of what came (NULL if nothing
 * did or the stream is no pipe); free them with free(). No deadlock
 * however large input and output are. Returns 0, -EINVAL, -EBUSY (another
 * task is in communicate, or reads the streams), -CIO_EINVALSTATE for a
 * protocol process, -ECANCELED: the child runs on and every byte it wrote
 * stays in the streams (a later communicate returns it; input is sent
 * only once). A child that does not read its input, or a stdin already
 * closed, is no error; any other error of writing the input (-ENOMEM,
 * -EFAULT...) is returned before anything else, with stdin left open. A
 * cio_process_close meanwhile ends the outputs there: what came before is
 * returned, as asyncio's communicate returns it. */
int cio_process_communicate(cio_process *p, const void *input, size_t len, void **out,
                            size_t *out_len, void **err, size_t *err_len);
/* Signals the child (through its pidfd: never another process that took
 * its number). Once it exited: 0 without signalling while a pipe to it is
 * still connected (asyncio's Popen skips a child it knows is dead), then
 * -ESRCH (asyncio's ProcessLookupError once its transport has finished).
 * -EINVAL for a bad signal number. */
int cio_process_send_signal(cio_process *p, int sig);
int cio_process_terminate(cio_process *p);   /* SIGTERM */
int cio_process_kill(cio_process *p);        /* SIGKILL */
/* The child's pipes as streams (NULL where there is no pipe, and for a
 * protocol process). They belong to the process: cio_process_free frees
 * them. */
cio_stream *cio_process_stdin(cio_process *p);
cio_stream *cio_process_stdout(cio_process *p);
cio_stream *cio_process_stderr(cio_process *p);
/* asyncio's get_pipe_transport(fd): the transport of pipe fd (0, 1, 2), or
 * NULL. */
cio_transport *cio_process_pipe_transport(cio_process *p, int fd);
/* SubprocessTransport.close: closes the pipes and kills the child if it
 * still runs. */
int cio_process_close(cio_process *p);
/* Frees the process (killing a child still running, see above). -EBUSY
 * while a task waits on it or on one of its streams.
 *
 * In a process forked after the child started, the child is not the fork's:
 * cio_process_wait, _send_signal (and terminate, kill), _close and _free
 * there return -CIO_EFORKED and touch nothing. */
int cio_process_free(cio_process *p);

/* ------------------------------------------------------------------------
 * Files (asyncio has none; these are the calls aiofiles users reach for)
 *
 * In a task: each call runs its system call without blocking the loop: on
 * an io_uring loop as a ring request (regular files and block devices;
 * each kind whose opcode the kernel has), else on the loop's thread pool
 * (a regular file is always "ready", so readiness cannot help). The answers
 * are the same on both paths. The buffer may live on the task's stack: a
 * cancellation never leaves the call running behind the task's back. A
 * call cancelled before it started returns -ECANCELED and did nothing; one
 * cancelled while running returns its real result (bytes read or written
 * are never lost) and the task sees the cancellation at its next
 * suspension. On io_uring the kernel may stop a call that waits (an open
 * of a FIFO, a read still queued): it returns -ECANCELED and did nothing.
 * cio_file_close is never cancelled half-way.
 * Closing the loop waits for a call already running in a worker, as for
 * cio_to_thread (an open of a FIFO waits there for the other end); a
 * descriptor opened for a task that never resumes is closed with the loop.
 * Errors are the system call's (-ENOENT, -EISDIR, -EBADF...);
 * -EPERM outside a task; -CIO_EPOOLSHUTDOWN after cio_pool_shutdown (for
 * the calls that run on the pool);
 * -EINVAL for a NULL path or buffer. The descriptors are ordinary ones,
 * opened with O_CLOEXEC.
 * ------------------------------------------------------------------------ */

struct statx;

/* open(2) / openat(2): the new descriptor, or -errno. As openat(2),
 * cio_file_openat and cio_file_statx ignore dirfd for an absolute path
 * (-EBADF for a negative one other than AT_FDCWD with a relative path). */
int cio_file_open(const char *path, int flags, unsigned int mode);
int cio_file_openat(int dirfd, const char *path, int flags, unsigned int mode);
/* pread(2) / pwrite(2) at offset; a negative offset reads or writes at the
 * file position, as read(2) / write(2). The count (0 at the end of the
 * file), or -errno. len 0 returns 0 at once. */
ssize_t cio_file_read(int fd, void *buf, size_t len, int64_t offset);
ssize_t cio_file_write(int fd, const void *buf, size_t len, int64_t offset);
/* fsync(2), or fdatasync(2) when datasync is nonzero. */
int cio_file_fsync(int fd, int datasync);
/* statx(2) (include <sys/stat.h> with _GNU_SOURCE for struct statx). */
int cio_file_statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *out);
/* Closes fd (as cio_close: the loops of this thread forget it first; on
 * io_uring in a task the close(2) itself is a ring request, and the
 * file calls of fd in flight on the ring end first, with their result or
 * -EBADF). In a task it first waits for the file calls of this loop on fd
 * that run on the thread pool (every file call on epoll, FIFOs on
 * io_uring), so the number is never reused under a call still queued or
 * running in a worker. That wait is not cancelled: a cancellation that
 * arrives during it is delivered at the task's next suspension, after the
 * descriptor is closed. -EBADF, and nothing closed, if another task of the
 * loop is already waiting to close fd. Outside a task it closes at once. */
int cio_file_close(int fd);

/* ------------------------------------------------------------------------
 * Introspection
 * ------------------------------------------------------------------------ */

/* Writes one line per task of loop that is not done: its name, its state,
 * what it waits on, its stack size and protection ("guard-region",
 * "guard-page" or "canary"). Returns the number of tasks listed. */
int cio_loop_dump_tasks(cio_loop *loop, FILE *out);

/* ------------------------------------------------------------------------
 * Datagrams and messages on sockets (asyncio's loop.sock_recvfrom,
 * sock_recvfrom_into, sock_sendto; and recvmsg/sendmsg, which asyncio
 * lacks)
 *
 * The rules of the socket calls above hold: non-blocking descriptors, any
 * number of tasks per descriptor served in order per direction, -EPERM
 * outside a task, -EBADF for a negative descriptor, -ENOMEM, and the
 * two-phase cancel. A receive that was cancelled or timed out took no
 * datagram: the next receive gets it. A send that was cancelled or timed
 * out sent nothing (a datagram goes out whole or not at all). No send
 * raises SIGPIPE: a peer that went away gives -EPIPE (or -ECONNRESET).
 * ------------------------------------------------------------------------ */

struct msghdr;

/* Receives one datagram (or, on a stream, up to len bytes) into buf: the
 * count, or -errno. The sender's address goes to addr (at most *addrlen
 * bytes; addr may be NULL, then addrlen is ignored) and its real length to
 * *addrlen, as recvfrom(2); neither is written when the call fails. A
 * datagram longer than len is cut to len bytes, the rest lost, as in
 * recvfrom(2): use recvmsg for MSG_TRUNC in msg_flags. asyncio's
 * sock_recvfrom_into is this call. addr without addrlen is -EINVAL. */
ssize_t cio_sock_recvfrom(int fd, void *buf, size_t len, struct sockaddr *addr,
                          unsigned int *addrlen);
/* Sends buf as one datagram to addr (addrlen bytes), or to the connected
 * peer when addr is NULL and addrlen 0: the count, or -errno (-EMSGSIZE,
 * -ECONNREFUSED on a connected socket after an ICMP port unreachable...).
 * A NULL addr with a non-zero addrlen, or an addr with addrlen 0, is
 * -EINVAL. */
ssize_t cio_sock_sendto(int fd, const void *buf, size_t len, const struct sockaddr *addr,
                        unsigned int addrlen);
/* recvmsg(2) and sendmsg(2) for tasks: the count, or -errno; msg_flags and
 * msg_namelen and msg_controllen are updated as the kernel does. flags may
 * hold MSG_PEEK, MSG_TRUNC, MSG_WAITALL, MSG_OOB, MSG_CMSG_CLOEXEC and
 * MSG_ERRQUEUE (recvmsg), MSG_CONFIRM, MSG_DONTROUTE, MSG_EOR, MSG_MORE and
 * MSG_OOB (sendmsg); MSG_DONTWAIT and MSG_NOSIGNAL are accepted and implied.
 * Any other flag, a NULL msg, or a NULL iov, name or control buffer with a
 * non-zero length is -EINVAL. */
ssize_t cio_sock_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t cio_sock_sendmsg(int fd, const struct msghdr *msg, int flags);

/* Deadline forms (see cio_await_until). */
ssize_t cio_sock_recvfrom_until(int fd, void *buf, size_t len, struct sockaddr *addr,
                                unsigned int *addrlen, double when);
ssize_t cio_sock_sendto_until(int fd, const void *buf, size_t len, const struct sockaddr *addr,
                              unsigned int addrlen, double when);
ssize_t cio_sock_recvmsg_until(int fd, struct msghdr *msg, int flags, double when);
ssize_t cio_sock_sendmsg_until(int fd, const struct msghdr *msg, int flags, double when);

/* ------------------------------------------------------------------------
 * Datagram endpoints (asyncio's loop.create_datagram_endpoint,
 * DatagramProtocol and DatagramTransport)
 *
 * A protocol is a struct of callbacks; each gets the transport and the
 * endpoint's context (the ctx given at creation, changed with
 * cio_datagram_transport_set_context). Every callback may be NULL (the
 * default of asyncio's DatagramProtocol: do nothing), and every one is
 * called from the loop, never from inside the create call, except
 * error_received and pause_writing, which asyncio (and cio) may call from
 * inside cio_datagram_transport_sendto. Callbacks may call any transport
 * function.
 *
 *  - connection_made: soon after creation, once, before anything else.
 *  - datagram_received: once per datagram, with the sender's address (NULL
 *    and 0 when the kernel gives none). data is valid during the call only
 *    (it is the loop's shared receive buffer).
 *  - error_received: an error of a send or receive that does not end the
 *    endpoint: -ECONNREFUSED (an ICMP port unreachable, on a connected
 *    socket), -EMSGSIZE (a datagram too long to send, or a received one
 *    longer than 65,536 bytes, which is dropped), ...
 *  - connection_lost: once, last: error 0 after close (once the buffered
 *    datagrams are sent) or abort; the error that ended the endpoint
 *    otherwise (-EBADF: its socket was closed with cio_close; -EBUSY: the
 *    program watches the socket with cio_add_reader or cio_add_writer).
 *  - pause_writing, resume_writing: the write buffer went above the
 *    high-water mark, and back to the low-water mark or below.
 *
 * Lifetime (asyncio has no free; this is the C rule): a transport belongs
 * to its loop and is valid from its creation until its connection_lost
 * callback returns. The loop frees it right after, and closes its socket;
 * the program must not use the pointer afterwards. An endpoint still open
 * when its loop closes is closed and freed by cio_loop_close without
 * callbacks (as stream transports are), its buffered datagrams dropped;
 * the pointer is then invalid too.
 * Between close (or abort) and connection_lost the transport still
 * answers: sendto is -CIO_EINVALSTATE, close and abort are 0 and do
 * nothing more, the getters work.
 * ------------------------------------------------------------------------ */

typedef struct cio_datagram_transport cio_datagram_transport;

typedef struct cio_datagram_protocol {
    void (*connection_made)(cio_datagram_transport *t, void *ctx);
    void (*datagram_received)(cio_datagram_transport *t, const void *data, size_t len,
                              const struct sockaddr *addr, unsigned int addrlen, void *ctx);
    void (*error_received)(cio_datagram_transport *t, int error, void *ctx);
    void (*connection_lost)(cio_datagram_transport *t, int error, void *ctx);
    void (*pause_writing)(cio_datagram_transport *t, void *ctx);
    void (*resume_writing)(cio_datagram_transport *t, void *ctx);
} cio_datagram_protocol;

/* Flags of cio_create_datagram_endpoint (asyncio's reuse_port and
 * allow_broadcast): SO_REUSEPORT, SO_BROADCAST. */
#define CIO_DATAGRAM_REUSE_PORT 0x1u
#define CIO_DATAGRAM_ALLOW_BROADCAST 0x2u

/* Creates a datagram socket of the family of local (or remote; both given
 * must agree): AF_INET, AF_INET6 or AF_UNIX, else -EAFNOSUPPORT. Binds it
 * to local if given (for a Unix path, a stale socket file there is removed
 * first, as asyncio does), connects it to remote if given (then sendto
 * takes no address, and the kernel delivers only the peer's datagrams),
 * and wraps it in a transport running proto (copied; ctx is passed to its
 * callbacks). One of local and remote is required. Returns 0, -EINVAL,
 * the socket's, bind's or connect's error (-EADDRINUSE, -ECONNREFUSED,
 * -ENOENT...), -ENOMEM, or -CIO_ELOOPCLOSED. */
int cio_create_datagram_endpoint(cio_loop *loop, const cio_datagram_protocol *proto, void *ctx,
                                 const struct sockaddr *local, unsigned int local_len,
                                 const struct sockaddr *remote, unsigned int remote_len,
                                 unsigned flags, cio_datagram_transport **transportp);
/* The same over a datagram socket the program made (asyncio's sock=): the
 * transport takes fd over, makes it non-blocking and closes it at the end.
 * A socket that is not SOCK_DGRAM is -EINVAL; on failure fd stays the
 * program's. */
int cio_create_datagram_endpoint_from_socket(cio_loop *loop, const cio_datagram_protocol *proto,
                                             void *ctx, int fd,
                                             cio_datagram_transport **transportp);

/* Sends data (len bytes, 0 allowed) as one datagram to addr, or to the
 * remote peer when addr is NULL (a connected endpoint accepts only NULL or
 * the peer's address: -EINVAL otherwise; an unconnected one needs an
 * address: -EDESTADDRREQ). Sent at once when nothing is buffered, else
 * copied into the write buffer and sent in order from the loop. Returns 0
 * once sent or buffered; an error of the send itself goes to
 * error_received (asyncio's rule), also from inside this call.
 * -CIO_EINVALSTATE once closing; -ENOMEM (nothing buffered). */
int cio_datagram_transport_sendto(cio_datagram_transport *t, const void *data, size_t len,
                                  const struct sockaddr *addr, unsigned int addrlen);
/* close: stops receiving; connection_lost(0) follows from the loop once
 * the write buffer is sent. abort: drops the buffer; connection_lost(0)
 * follows from the loop. Both return 0 (also when called again). */
int cio_datagram_transport_close(cio_datagram_transport *t);
int cio_datagram_transport_abort(cio_datagram_transport *t);
/* 1 once close or abort was called or a fatal error came (asyncio's
 * is_closing). */
int cio_datagram_transport_is_closing(const cio_datagram_transport *t);
/* Bytes waiting in the write buffer, each datagram counting 8 bytes more
 * (asyncio's get_write_buffer_size). */
size_t cio_datagram_transport_get_write_buffer_size(const cio_datagram_transport *t);
/* asyncio's set_write_buffer_limits(high, low): a negative value means
 * asyncio's None (high: 64 KiB, or 4 * low if low is given; low: high / 4).
 * low > high is -EINVAL. */
int cio_datagram_transport_set_write_buffer_limits(cio_datagram_transport *t, ssize_t high,
                                                   ssize_t low);
/* get_extra_info: "sockname" and "peername" as getsockname(2) (addr gets at
 * most *addrlen bytes, *addrlen the real length; -ENOTCONN for the peer of
 * an unconnected endpoint), "socket" as the descriptor, which stays the
 * transport's: a datagram read from it behind the transport's back never
 * reaches the protocol, a watcher on it (cio_add_reader) is -EBUSY, and
 * closing it (cio_close) ends the endpoint with connection_lost(-EBADF).
 * -EINVAL for NULL. */
int cio_datagram_transport_sockname(const cio_datagram_transport *t, struct sockaddr *addr,
                                    unsigned int *addrlen);
int cio_datagram_transport_peername(const cio_datagram_transport *t, struct sockaddr *addr,
                                    unsigned int *addrlen);
int cio_datagram_transport_socket(const cio_datagram_transport *t);
/* The context the callbacks get (NULL for NULL), and changing it. */
void *cio_datagram_transport_context(const cio_datagram_transport *t);
int cio_datagram_transport_set_context(cio_datagram_transport *t, void *ctx);

/* ------------------------------------------------------------------------
 * Threads: cross-thread calls, the thread pool, name resolution
 *
 * A loop and its objects belong to one thread (see cio_loop_options.debug);
 * the calls of this section are the ways other threads reach it, and the
 * ways a task runs blocking C code without stalling its loop. Each loop
 * has its own pool; nothing is shared between loops, so one loop per
 * thread works. docs/design.md ("Threads: the inbox and the pool") gives
 * the reasons.
 * ------------------------------------------------------------------------ */

/* The loop's thread pool was shut down (asyncio's RuntimeError "Executor
 * shutdown has been called"). */
#define CIO_EPOOLSHUTDOWN 10400
/* A resolver error: getaddrinfo/getnameinfo's EAI_* code eai is returned
 * as -CIO_EAI(eai), one distinct code per EAI value, named by cio_strerror
 * with gai_strerror's text (rc == -CIO_EAI(EAI_NONAME) tests for one).
 * EAI_SYSTEM is returned as its -errno and EAI_MEMORY as -ENOMEM. */
#define CIO_EAI_BASE 10500
#define CIO_EAI_LAST 10699
#define CIO_EAI(eai) (CIO_EAI_BASE - (eai))
/* The largest cio_pool_set_max_workers accepts. */
#define CIO_POOL_MAX_WORKERS 1024

/* Schedules fn(loop, arg) on loop from any thread, the loop's own included
 * (asyncio call_soon_threadsafe). It runs in the loop's thread, in the
 * batch of the iteration that follows the call, after callbacks already
 * scheduled; a sleeping loop is woken. From the loop's own thread it joins
 * the ready queue at once, FIFO with cio_call_soon's callbacks (asyncio
 * appends both to one queue). Returns 0, -EINVAL, -ENOMEM,
 * -CIO_ELOOPCLOSED once cio_loop_close has begun, or -CIO_EFORKED. Calls
 * accepted but not run when the loop closes are dropped without running
 * (and their memory freed), as asyncio drops them; a call racing close is
 * either refused or accepted and dropped. Debug mode's thread rule does
 * not apply to it. Calling it with a loop already freed is the caller's
 * bug, as for any freed object. */
int cio_call_soon_threadsafe(cio_loop *loop, cio_callback_fn fn, void *arg);

/* A thread-safe future (asyncio's concurrent.futures.Future): the outcome
 * of cio_run_coroutine_threadsafe, waited on from any thread. */
typedef struct cio_tsfuture cio_tsfuture;

/* From any thread but the loop's: starts fn(arg) as a task of loop (from
 * the loop's thread, through call_soon_threadsafe's inbox) and gives a
 * thread-safe future for its outcome in *out (asyncio
 * run_coroutine_threadsafe). Returns 0, -EINVAL, -ENOMEM, -CIO_ELOOPCLOSED,
 * -CIO_EFORKED. If the task cannot be spawned, or the loop closes before
 * it starts, the future completes with that error (-CIO_ELOOPCLOSED); a
 * task destroyed pending by loop close leaves it cancelled. Free it with
 * cio_tsfuture_free. Loop close first waits for the functions running on
 * its own thread pool: one of them that waits without a timeout for a
 * coroutine of that same loop keeps close waiting for ever (the task is
 * destroyed only after), as asyncio's interpreter then hangs at exit; wait
 * with a timeout there. */
int cio_run_coroutine_threadsafe(cio_loop *loop, cio_coro_fn fn, void *arg, cio_tsfuture **out);
/* Blocks the calling thread until f is done or timeout seconds passed
 * (CIO_NO_TIMEOUT: no limit; <= 0: just look). 0 once done, -ETIMEDOUT,
 * -EINVAL (NULL, NaN), or -EDEADLK when called from the thread running f's
 * loop while f is pending (it could never complete). */
int cio_tsfuture_wait(cio_tsfuture *f, double timeout);
/* concurrent.futures.Future.result(timeout): waits as cio_tsfuture_wait,
 * then returns 0 and the task's result in *result (result may be NULL),
 * the task's error, -ECANCELED if f or the task was cancelled, or the
 * errors of cio_tsfuture_wait. */
int cio_tsfuture_result(cio_tsfuture *f, double timeout, void **result);
/* Cancels f at once (waiters wake with -ECANCELED) and asks the loop to
 * cancel the task; a task that has not started never starts. 1 if f was
 * pending, 0 if it was already done, -EINVAL. Any thread. */
int cio_tsfuture_cancel(cio_tsfuture *f);
/* Predicates: 0 for NULL. */
int cio_tsfuture_done(const cio_tsfuture *f);
int cio_tsfuture_cancelled(const cio_tsfuture *f);
/* Drops the caller's reference; the loop keeps its own until it is done
 * with the task. Returns 0 (also for NULL). Do not free f while another
 * thread waits on it. */
int cio_tsfuture_free(cio_tsfuture *f);

/* From a task: runs fn(arg) in a worker thread of the task's loop's pool
 * and suspends the task until it returns (asyncio to_thread /
 * run_in_executor(None, ...)); *result (result may be NULL) gets fn's
 * return value. Workers start on demand up to the pool's bound (default
 * min(32, CPUs + 4)); calls beyond it wait their turn, first come first
 * served. Cancelling the task while fn waits in the queue removes it (fn
 * never runs); while fn runs, the task gets -ECANCELED at once and fn runs
 * to its end in its thread, its result dropped: arg must stay valid until
 * fn returns, which may be after cio_to_thread returned -ECANCELED, so it
 * must not live on the task's stack if the task can be cancelled. Closing
 * the loop waits for functions already running. fn reports an error as a
 * coroutine does, by returning cio_raise(err) (its message, if any, is
 * dropped): cio_to_thread then returns err and leaves *result alone, as
 * asyncio re-raises the function's exception in the awaiting task.
 * Returns 0, that error, -ECANCELED, -EINVAL, -EPERM outside a task,
 * -ENOMEM, -CIO_ELOOPCLOSED, -CIO_EPOOLSHUTDOWN after cio_pool_shutdown, or
 * -EAGAIN when the pool has no worker and none could be started
 * (pthread_create failed). */
typedef void *(*cio_thread_fn)(void *arg);
int cio_to_thread(cio_thread_fn fn, void *arg, void **result);
/* Sets the bound of loop's pool to max_workers (1 to
 * CIO_POOL_MAX_WORKERS): at most that many calls run at once, and name
 * lookups may use at most half of them (at least one). A lower bound holds
 * at once for calls not yet started (workers already started stay, the
 * surplus idle); a higher one starts workers for the calls that wait. From
 * the loop's thread.
 * Returns 0, -EINVAL, -ENOMEM, -CIO_ELOOPCLOSED. */
int cio_pool_set_max_workers(cio_loop *loop, size_t max_workers);
/* From a task: shuts the pool of its loop down (asyncio
 * shutdown_default_executor): later cio_to_thread and lookups that need a
 * thread get -CIO_EPOOLSHUTDOWN, work already queued still runs, and the
 * task waits until every worker has finished and been joined, at most
 * timeout seconds (CIO_NO_TIMEOUT: no limit) or until the loop time when.
 * Returns 0, -ETIMEDOUT (the workers go on; loop close waits for them),
 * -ECANCELED, -EINVAL, -EPERM, -ENOMEM, -CIO_ELOOPCLOSED. */
int cio_pool_shutdown(double timeout);
int cio_pool_shutdown_until(double when);

/* From a task: getaddrinfo(3) without blocking the loop (asyncio
 * loop.getaddrinfo). A numeric host (or none) with a numeric port (or
 * none), and no AI_CANONNAME, is answered at once in the loop's thread;
 * any other runs on the pool, where at most half the workers resolve at a
 * time so slow lookups cannot starve other work. On 0, *res holds the
 * list: free it with freeaddrinfo(3). Cancelling the task returns
 * -ECANCELED at once (a lookup already running finishes on its worker and
 * its list is freed). Returns 0, -CIO_EAI(code), -errno (EAI_SYSTEM),
 * -ENOMEM, -ECANCELED, -EINVAL (res NULL), -EPERM, -CIO_ELOOPCLOSED,
 * -CIO_EPOOLSHUTDOWN, -EAGAIN (as cio_to_thread). */
struct addrinfo;
int cio_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res);
/* From a task: getnameinfo(3) (asyncio loop.getnameinfo) into host and
 * serv (either may be NULL, not both). With NI_NUMERICHOST and
 * NI_NUMERICSERV (or the other buffer NULL) it is answered at once; any
 * other runs on the pool as cio_getaddrinfo. The buffers are written only
 * on success, and never after the call returned. Returns as
 * cio_getaddrinfo; -EINVAL for a NULL or oversized address. */
int cio_getnameinfo(const struct sockaddr *addr, unsigned int addrlen, int flags, char *host,
                    size_t hostlen, char *serv, size_t servlen);

/* ------------------------------------------------------------------------
 * Signals (asyncio loop.add_signal_handler / remove_signal_handler) and
 * Ctrl-C in cio_run
 *
 * A signal a loop holds is caught by one process-wide handler that only
 * marks it pending for every loop holding it and wakes them; each loop
 * runs the callback in its own thread, as an ordinary callback of an
 * iteration, never inside the signal handler, so the callback may call
 * anything. Arrivals between two runs are coalesced into one call, and a
 * call always follows the last arrival. Any loop in any thread may hold
 * signals (asyncio allows only the main thread's); a signal Linux delivers
 * to one thread reaches every loop that holds it. cio never touches a
 * signal no loop asked for (SIGCHLD included). docs/design.md ("Signals")
 * gives the reasons.
 * ------------------------------------------------------------------------ */

/* cio_run's main task was cancelled by Ctrl-C (SIGINT): asyncio's
 * KeyboardInterrupt out of asyncio.run. */
#define CIO_EINTERRUPTED 10800

/* Calls fn(loop, arg) from loop whenever sig arrives (asyncio
 * loop.add_signal_handler). Adding a handler for a signal the loop already
 * holds replaces it (a call already queued then runs the new one). The
 * first loop to hold a signal installs cio's handler for it, keeping the
 * disposition it found; the last to let it go (remove, or loop close) puts
 * that back, unless the program has installed another since. A forked
 * child holds no signal: the dispositions cio replaced come back in it.
 * Returns 0; -EINVAL for a NULL loop or fn, a number outside 1..SIGRTMAX,
 * one glibc reserves (32, 33), SIGKILL or SIGSTOP (asyncio: RuntimeError
 * or ValueError), or SIGSEGV, SIGBUS, SIGFPE, SIGILL (a fault cannot wait
 * for the loop); -CIO_ELOOPCLOSED; -CIO_EFORKED; -ENOMEM; -ENOSPC when 128
 * loops already hold signals. */
int cio_add_signal_handler(cio_loop *loop, int sig, cio_callback_fn fn, void *arg);
/* Removes sig's handler (asyncio loop.remove_signal_handler): 1 if there
 * was one, 0 if not (also on a closed loop), -EINVAL for a NULL loop or a
 * number outside 1..SIGRTMAX or one of glibc's own two (32 and 33, which
 * Python's signal.valid_signals() leaves out too), -CIO_EFORKED. A call already queued does
 * not happen (arg may be freed once this returns). */
int cio_remove_signal_handler(cio_loop *loop, int sig);

/* ------------------------------------------------------------------------
 * I/O backends
 *
 * Linux has two: "epoll" (readiness; every operation is tried, and waited
 * for when the kernel says "not now") and "io_uring" (operations submitted
 * to the kernel and completed by it). They behave the same to the
 * program. The backend is chosen when the loop is created
 * (cio_loop_options.backend, else the environment variable CIO_BACKEND,
 * read with secure_getenv): "epoll" or "uring" as asked, or "auto", which
 * takes io_uring when the kernel lets it and epoll otherwise, quietly.
 * Naming none gives epoll in this version. CIO_URING_DISABLE (multishot, defer_taskrun,
 * single_issuer) and CIO_URING_ENTRIES ("sq,cq") switch io_uring features
 * off and size its rings, for tests and kernel-bug workarounds.
 *
 * An io_uring loop's ring is bound to the thread that runs it (the kernel's
 * single issuer), and the kernel takes nothing on that ring from another
 * thread, not even a cancellation, nor does it cancel a waiting request
 * when that thread exits. So a loop with I/O still in the kernel (a server
 * that listens, an open connection) must be closed, and such objects
 * freed, in the thread that last ran it (another thread may take the loop
 * over by running it, once nothing is in the kernel). Done from another
 * thread, close says so on stderr and keeps the ring and its state for
 * good, rather than free memory the kernel may still write into.
 * CIO_URING_DISABLE=single_issuer lifts the binding.
 * ------------------------------------------------------------------------ */

/* Why the loop does not run on io_uring, in one line: "" when it does,
 * else e.g. "epoll was asked for", "io_uring_setup: EPERM (...)", "the
 * kernel lacks the io_uring opcode ...", "cio was built without io_uring".
 * The string lives as long as the loop. NULL for NULL. */
const char *cio_loop_backend_fallback_reason(const cio_loop *loop);

/* ------------------------------------------------------------------------
 * Stack accounting (debugging)
 *
 * How deep each task's stack went, for sizing stacks (cio_task_options.
 * stack_size, cio_loop_options.default_stack_size). cio_task_info.
 * stack_low_water is a free lower bound; the calls below measure the exact
 * high-water mark: the stack is scanned from its low end for the first
 * word ever written (fresh stack memory reads zero), skipping pages the
 * kernel never gave it, so a call costs a system call and a read of the
 * stack's resident part. A stack reused from the loop's pool holds its
 * previous task's data; in debug mode (cio_loop_set_debug) every task's
 * stack is measured when the task ends, recorded for its spawn site, and
 * given back to the kernel down to that mark, so the next task's mark is
 * exact. Outside debug mode a task on a reused stack reports an upper bound.
 * ------------------------------------------------------------------------ */

/* The exact high-water mark of task's stack: the bytes from its top down
 * to the deepest word written, now (a task not yet done) or when it ended
 * (measured only in debug mode). -EINVAL for NULL or a plain future,
 * -ENODATA for a task that ended outside debug mode, and the thread check
 * of debug mode (-CIO_EWRONGTHREAD). */
ssize_t cio_task_stack_high_water(const cio_task *task);

/* Writes the census of stack use per spawn site to out, one line per site,
 * deepest first: "file.c:42 max 5120 of 16384 B (31%), 3 tasks". It counts
 * the tasks alive now (measured at the call) and, in debug mode, every task
 * that ended. A site spawned through a function pointer reads
 * "module+0xOFFSET". Returns the number of lines, -EINVAL for a NULL
 * argument, -ENOMEM, or -CIO_EWRONGTHREAD in debug mode. */
int cio_loop_stack_census(cio_loop *loop, FILE *out);

/* ------------------------------------------------------------------------
 * Stall watchdog (debugging)
 *
 * A loop is stalled when a task step or a callback runs for too long
 * without giving the loop back: a blocking call (sleep, a blocking read, a
 * lock) or a long computation, which stops every other task of the loop.
 * asyncio's debug mode reports a slow callback after it returns; the
 * watchdog reports while the stall lasts, so even a loop stuck for ever is
 * reported. One thread per process (started with the first watchdog, ended
 * with the last) wakes every threshold/2 and compares each watched loop's
 * progress count (one store per task step, no system call) with the last
 * one it saw. A loop waiting for I/O is never stalled. On a stall it writes
 * one report: the running task's id, name, function and spawn site, how
 * long, the loop thread's CPU time against the wall time (busy or blocked),
 * the system call it is in (/proc/self/task/TID/syscall) and a backtrace
 * of the loop thread, taken by a signal handler in that thread (a
 * real-time signal; a blocking call it interrupts, such as a sleep,
 * returns early with EINTR, once per stall). While the same stall lasts it
 * reports again at 2, 4, 8... times the threshold, at most
 * reports_per_minute times a minute per loop, and once more when the loop
 * moves again.
 * ------------------------------------------------------------------------ */

#define CIO_WATCHDOG_NO_BACKTRACE 1u /* no signal to the loop thread: no backtrace, no task */

typedef struct cio_watchdog_options {
    unsigned threshold_ms;       /* a stall is this long or longer; 0 turns the watchdog off */
    unsigned flags;              /* CIO_WATCHDOG_* */
    int fd;                      /* where reports go; 0 = stderr (2). A report
                                  * the fd does not take within 10 ms (a full
                                  * pipe) is cut short: the watchdog never
                                  * blocks on it */
    int signal;                  /* for the backtrace; 0 = SIGRTMIN + 3 */
    unsigned reports_per_minute; /* per loop; 0 = 10 */
    /* Called in the watchdog thread after each report, with its text (for
     * a log, or to ask for a dump with cio_dump_request, which the loop
     * writes once it moves again: cio_dump itself is refused there, with
     * -CIO_EWRONGTHREAD, since the stalled loop is running); it must not
     * call watchdog functions. A report that came late (its signal was
     * answered late) moves the next one past twice the stall's age. */
    void (*on_stall)(cio_loop *loop, const char *report, void *arg);
    void *on_stall_arg;
} cio_watchdog_options;

/* Watches loop for stalls of threshold_ms or more, reporting to stderr
 * (flags: CIO_WATCHDOG_*); threshold_ms 0 stops watching it. A second call
 * replaces the settings. Returns 0; -EINVAL for a NULL loop or an unknown
 * flag; -EAGAIN if the
 * watchdog thread cannot start; -EDEADLK from the on_stall callback;
 * -CIO_ELOOPCLOSED, -CIO_EFORKED. Closing the loop stops watching it. */
int cio_loop_set_watchdog(cio_loop *loop, unsigned threshold_ms, unsigned flags);
/* The same with every setting: -EINVAL also for a NULL opts, a negative
 * fd, or a signal outside SIGRTMIN..SIGRTMAX. */
int cio_loop_set_watchdog_with(cio_loop *loop, const cio_watchdog_options *opts);

/* ------------------------------------------------------------------------
 * Task dump and the await graph (asyncio has asyncio.print_call_graph and
 * `python -m asyncio ps/pstree`; docs/debugging.md shows the format)
 *
 * A dump lists every task of a loop that is not done: its id, name, state,
 * how long it has waited, its switch count, spawn site and parent; what it
 * waits on (a timer and its deadline, a descriptor and direction, a task,
 * a lock and the task holding it, a queue, an event...); with
 * CIO_DUMP_STACKS the frames of each waiting task (function names through
 * dladdr: link the program with -rdynamic, and build it with
 * -fno-omit-frame-pointer, as cio is). CIO_DUMP_GRAPH adds the tree of who
 * spawned whom and "who waits on what"; CIO_DUMP_FOLD prints tasks of one
 * name pattern ("conn-*"), state, wait kind and innermost frames as one
 * "xN" line; CIO_DUMP_JSON writes the same as one JSON object. A dump
 * always ends with the deadlock cycles it finds ("cycle:" lines): a task
 * awaiting a task, a lock's owner, a future's creator, round to itself.
 * A dump only reads: it resumes, reorders and allocates nothing on the
 * loop (its scratch memory is its own, freed before it returns).
 * ------------------------------------------------------------------------ */

#define CIO_DUMP_STACKS 0x1u /* each waiting task's frames */
#define CIO_DUMP_GRAPH 0x2u  /* the spawn tree and who waits on what */
#define CIO_DUMP_FOLD 0x4u   /* identical tasks as one "xN" line */
#define CIO_DUMP_JSON 0x8u   /* one JSON object instead of text */

/* Writes a dump of loop to fd (text unless CIO_DUMP_JSON). Call it from a
 * task or callback of the loop, or while the loop does not run. From
 * another thread a dump and the start of the loop exclude each other (the
 * start waits for the dump; a dump of a running loop is refused), but
 * nothing else is locked: the loop's own thread must not change the loop
 * (spawn, free, close) during such a dump. Returns
 * the number of tasks listed (a folded group counts once); -EINVAL for a
 * NULL loop, a negative fd or an unknown flag; -CIO_EWRONGTHREAD while
 * the loop runs in another thread; -CIO_ELOOPCLOSED; -CIO_EFORKED; or the
 * write's -errno. */
int cio_dump(cio_loop *loop, int fd, unsigned flags);
/* Asks loop to dump itself at its next iteration (between two batches of
 * callbacks, where no task runs), to the descriptor given to
 * cio_loop_set_dump_signal, else stderr, with CIO_DUMP_STACKS and
 * CIO_DUMP_GRAPH (and CIO_DUMP_FOLD above 100 tasks). Async-signal-safe,
 * and callable from any thread while the loop is alive. 0, -EINVAL,
 * -CIO_ELOOPCLOSED, -CIO_EFORKED. */
int cio_dump_request(cio_loop *loop);
/* Makes signo (SIGUSR1, say) ask loop for a dump written to fd (-1:
 * stderr), through cio_add_signal_handler (which it replaces for signo);
 * signo 0 stops it. 0, -EINVAL (NULL loop, fd < -1, a signal
 * cio_add_signal_handler refuses), -CIO_ELOOPCLOSED, -CIO_EFORKED,
 * -ENOMEM. In debug mode (cio_loop_options.debug) closing a loop with
 * tasks that never finished reports their dump through the exception
 * handler. */
int cio_loop_set_dump_signal(cio_loop *loop, int signo, int fd);

#if defined(CIO_BUILDING_LIBRARY) && defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* CIO_H */
