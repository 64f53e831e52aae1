/*
 * The debug layer (introspection): looking inside a running program. Today it holds the
 * counters the tests read instead of reaching into structures; task dumps,
 * the await graph and the watchdog come here next.
 */
#ifndef CIO_DEBUG_INTROSPECTION_H
#define CIO_DEBUG_INTROSPECTION_H

#include "net/net.h"

/* What a loop holds right now. */
typedef struct cio__loop_stats {
    size_t live_tasks;    /* tasks with a stack (not finished) */
    size_t timers;        /* armed timers, cio's own included */
    size_t ready;         /* jobs in the ready queue */
    size_t futures;       /* futures and tasks the loop still tracks */
    size_t io_in_flight;  /* I/O operations and watchers in flight */
    uint64_t iterations;  /* how many times the loop went round */
    size_t task_records;  /* finished task records kept for reuse */
} cio__loop_stats;

int cio__loop_get_stats(const cio_loop *loop, cio__loop_stats *out);

/* The loop's thread pool and inbox (flow/pool.c, core/inbox.c). */
typedef struct cio__pool_stats {
    size_t workers;       /* worker threads started and not yet left */
    size_t queued;        /* items waiting for a worker */
    size_t lookups;       /* name lookups running */
    uint64_t inbox_wakes; /* wake-ups cross-thread calls wrote to the loop */
} cio__pool_stats;

int cio__loop_get_pool_stats(const cio_loop *loop, cio__pool_stats *out);

/* Where a task's stack lies, and the guard that protects it. */
typedef struct cio__task_stack_info {
    void *lo;
    size_t size;
    size_t guard; /* bytes below lo that fault when touched; 0: a canary instead */
} cio__task_stack_info;

int cio__task_get_stack(const cio_task *task, cio__task_stack_info *out);

/* The loop's file calls (net/file.c): which kinds its backend runs in the
 * kernel, and how many calls took each path so far. */
typedef struct cio__file_stats {
    uint32_t ring_ops;    /* CIO__FILE_OP_BIT of each kind the ring runs */
    uint64_t ring_calls;  /* calls the ring answered */
    uint64_t pool_calls;  /* calls run on the thread pool (a close off the ring counts on neither) */
} cio__file_stats;

int cio__loop_get_file_stats(const cio_loop *loop, cio__file_stats *out);

/* ------------------------------------------------------------------------
 * The task dump (dump.c)
 * ------------------------------------------------------------------------ */

/*
 * A writer that formats into a caller's buffer and writes it to a
 * descriptor when full: no allocation and no stdio, so the watchdog's
 * thread and fatal paths can format with it too. A write error is kept in
 * err (-errno) and later output is dropped.
 */
typedef struct cio__out {
    int fd;
    int err;
    size_t len;
    size_t cap;
    char *buf;
} cio__out;

void cio__out_init(cio__out *o, int fd, char *buf, size_t cap);
void cio__out_flush(cio__out *o);
void cio__out_mem(cio__out *o, const char *s, size_t n);
void cio__out_str(cio__out *o, const char *s);
void cio__out_u64(cio__out *o, uint64_t v);
void cio__out_i64(cio__out *o, int64_t v);
void cio__out_hex(cio__out *o, uintptr_t v);
/* ns as seconds with the given number of decimals (up to 9): "2.103". */
void cio__out_secs(cio__out *o, int64_t ns, int decimals);
/* s between double quotes, with quotes, backslashes and control bytes
 * escaped (JSON's rules when json is set). */
void cio__out_quoted(cio__out *o, const char *s, int json);

/* What dladdr says of a code address (dump.c), with names for hidden and
 * static functions from the object's .symtab: found is 0 when no loaded
 * object holds it; name is NULL when no symbol covers it (a stripped
 * file), and off counts from the symbol, module_off from the object's
 * base. is_return looks up the byte before pc (a return address may point
 * past its function's end). The watchdog names its frames with it too. */
typedef struct cio__code_sym {
    uintptr_t pc;
    int found;
    const char *name;
    uintptr_t off;
    int dynamic;         /* name is an export (dladdr's), not from the .symtab */
    const char *path;    /* the object's file, or NULL */
    const char *module;  /* its base name */
    uintptr_t module_off;
} cio__code_sym;

void cio__code_lookup(uintptr_t pc, int is_return, cio__code_sym *out);

/* The function holding the code address at, from the ELF symbol table
 * (.symtab) of the file of the loaded object that holds it (symtab.c):
 * what dladdr cannot name (hidden and static functions). 1 with *name
 * (valid for the life of the process) and *start set, or 0. Reads the
 * file on the object's first look-up: never from a signal handler. */
int cio__symtab_lookup(uintptr_t at, const char **name, uintptr_t *start);

/* The return addresses of a suspended task, innermost first, read from
 * the frame pointers saved on its stack (within its bounds, at most max):
 * how many. 0 for a task that is running, never ran, or is done. */
size_t cio__task_frames(const cio__task *t, uintptr_t *pcs, size_t max);

/* The text block of one task, as cio_dump prints it (the task line, its
 * wait, its stack and, with CIO_DUMP_STACKS, its frames), written to fd.
 * Allocates nothing and walks nothing but the task (an owner task is
 * found by a walk of the loop's futures). CIO__DUMP_RAW leaves out the
 * symbol lookups (dladdr), for paths that must not take the loader's lock.
 * Returns 0 or the write error. */
#define CIO__DUMP_RAW 0x100u
int cio__dump_task(int fd, cio_loop *loop, const cio__task *t, unsigned flags);

/* For the test that a dump changes nothing: loop dumps itself to fd with
 * flags at every iteration from now on (NULL stops it), through the same
 * request path as cio_dump_request; count says how many dumps it made. */
int cio__dump_each_iteration(cio_loop *loop, int fd, unsigned flags);
uint64_t cio__dump_each_iteration_count(void);

#endif
