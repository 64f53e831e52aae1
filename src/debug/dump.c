/*
 * The task dump (cio_dump): every task of a loop, what it waits on, its
 * frames, the tree of who spawned whom, identical tasks folded, and the
 * deadlock cycles the await graph shows.
 *
 * Where the facts come from. Each suspended task has a wait record
 * (core/task.h) that its suspending call filled: the kind of thing awaited,
 * the object, the descriptor and direction, the deadline, and for a lock
 * where the lock keeps its owner's task id. That record is the task's edge
 * in the await graph, so no combinator needs code of its own here. "Who
 * waits on X" is the reverse edge: the dump groups the loop's tasks by the
 * object they wait on (loop->futures lists every task), which costs the
 * running program nothing. A task's frames are read from the frame
 * pointers its stack holds: the context switch saved the frame pointer and
 * the return address (arch/switch_*.S) and each frame links to its caller.
 *
 * Read-only. The dump resumes nothing, reorders nothing and allocates
 * nothing on the loop: its scratch arrays (the tasks by id, the tree, the
 * fold groups) come from malloc and are freed before it returns; without
 * them it still prints every task's block, and says what it left out.
 *
 * Format version 1 (docs/debugging.md): a header line, one block per task,
 * then the sections asked for. The JSON form mirrors the text.
 */
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "introspection.h"

/* ---- the writer ------------------------------------------------------- */

void cio__out_init(cio__out *o, int fd, char *buf, size_t cap) {
    o->fd = fd;
    o->err = 0;
    o->len = 0;
    o->cap = cap;
    o->buf = buf;
}

/* A pipe or socket whose reader has gone answers -EPIPE: a dump asked for
 * with `kill -USR1` and read through `| head` must not end the program
 * with SIGPIPE (cio__pipe_writev). */
void cio__out_flush(cio__out *o) {
    size_t at = 0;
    while (at < o->len && !o->err) {
        struct iovec iov = {.iov_base = o->buf + at, .iov_len = o->len - at};
        ssize_t n = cio__pipe_writev(o->fd, &iov, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            o->err = n < 0 ? -errno : -EIO;
            break;
        }
        at += (size_t)n;
    }
    o->len = 0;
}

void cio__out_mem(cio__out *o, const char *s, size_t n) {
    while (n > 0 && !o->err) {
        if (o->len == o->cap) cio__out_flush(o);
        size_t room = o->cap - o->len;
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

void cio__out_str(cio__out *o, const char *s) {
    cio__out_mem(o, s, strlen(s));
}

static void out_ch(cio__out *o, char c) {
    if (o->len == o->cap) cio__out_flush(o);
    if (!o->err) o->buf[o->len++] = c;
}

void cio__out_u64(cio__out *o, uint64_t v) {
    char d[24];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) out_ch(o, d[--n]);
}

void cio__out_i64(cio__out *o, int64_t v) {
    if (v < 0) {
        out_ch(o, '-');
        cio__out_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        cio__out_u64(o, (uint64_t)v);
    }
}

void cio__out_hex(cio__out *o, uintptr_t v) {
    static const char digits[] = "0123456789abcdef";
    char d[2 + 2 * sizeof v];
    d[0] = '0';
    d[1] = 'x';
    for (size_t i = 0; i < 2 * sizeof v; i++)
        d[2 + i] = digits[(v >> (4 * (2 * sizeof v - 1 - i))) & 15];
    cio__out_mem(o, d, sizeof d);
}

/* A short hex form for offsets: "0x4b". */
static void out_hex_short(cio__out *o, uintptr_t v) {
    static const char digits[] = "0123456789abcdef";
    char d[2 + 2 * sizeof v];
    int n = 0;
    do {
        d[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    cio__out_str(o, "0x");
    while (n) out_ch(o, d[--n]);
}

void cio__out_secs(cio__out *o, int64_t ns, int decimals) {
    if (decimals > 9) decimals = 9;
    if (ns < 0) {
        out_ch(o, '-');
        ns = ns == INT64_MIN ? INT64_MAX : -ns;
    }
    int64_t scale = 1;
    for (int i = decimals; i < 9; i++) scale *= 10;
    int64_t units = (ns + scale / 2) / scale; /* rounded to the last decimal shown */
    int64_t per_sec = 1000000000 / scale;
    cio__out_u64(o, (uint64_t)(units / per_sec));
    if (decimals > 0) {
        out_ch(o, '.');
        char d[9];
        int64_t frac = units % per_sec;
        for (int i = decimals - 1; i >= 0; i--) {
            d[i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        cio__out_mem(o, d, (size_t)decimals);
    }
}

/*
 * A string quoted for the dump. Quotes, backslashes and control characters
 * are escaped; well-formed UTF-8 passes through, except the code points
 * that steer a terminal (C1 controls, line separators, bidirectional
 * overrides: cio__code_point_steers_text), written as \uXXXX in JSON and
 * byte by byte as \xNN in text; any other byte (a task name is the
 * program's bytes, not checked) is written as U+FFFD in JSON, which must
 * be UTF-8, and as \xNN in text.
 */
/* A byte as the text dump writes what it may not show: \xNN. */
static void out_hex_byte(cio__out *o, unsigned char c) {
    static const char digits[] = "0123456789abcdef";
    cio__out_str(o, "\\x");
    out_ch(o, digits[c >> 4]);
    out_ch(o, digits[c & 15]);
}

void cio__out_quoted(cio__out *o, const char *s, int json) {
    static const char digits[] = "0123456789abcdef";
    out_ch(o, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            out_ch(o, '\\');
            out_ch(o, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            cio__out_str(o, json ? "\\u00" : "\\x");
            out_ch(o, digits[c >> 4]);
            out_ch(o, digits[c & 15]);
        } else if (c < 0x80) {
            out_ch(o, (char)c);
        } else {
            size_t len = cio__utf8_sequence(p);
            uint32_t cp = len ? cio__utf8_code_point(p, len) : 0;
            if (len == 0 && json) {
                cio__out_str(o, "\\ufffd");
            } else if (len == 0) {
                out_hex_byte(o, c);
            } else if (cio__code_point_steers_text(cp) && json) {
                /* Kept as the character, but not raw: a terminal showing
                 * the JSON would take it as a command. */
                cio__out_str(o, "\\u");
                for (int shift = 12; shift >= 0; shift -= 4) out_ch(o, digits[(cp >> shift) & 15]);
                p += len - 1;
            } else if (cio__code_point_steers_text(cp)) {
                for (size_t i = 0; i < len; i++) out_hex_byte(o, p[i]);
                p += len - 1;
            } else {
                for (size_t i = 0; i < len; i++) out_ch(o, (char)p[i]);
                p += len - 1;
            }
        }
    }
    out_ch(o, '"');
}

/* ---- frames ----------------------------------------------------------- */

/*
 * The frame-pointer walk. The switch left the task's callee-saved
 * registers at its saved stack pointer (x86-64: rbp at +40 and the return
 * address at +48; aarch64: x29 at +80 and x30 at +88); from there each
 * frame record holds the caller's frame pointer and a return address. The
 * walk stays inside the task's stack, needs each frame above the last,
 * and stops at a zero frame pointer (the bottom cio__ctx_make laid) or
 * after max frames. It reads whatever the stack holds, so AddressSanitizer
 * is told not to check these loads (a frame pointer left garbage by code
 * built without frame pointers may point into a redzone).
 */
#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize_address))
#endif
size_t cio__task_frames(const cio__task *t, uintptr_t *pcs, size_t max) {
    if (!t->stack.lo || !t->started || t->run_state == CIO__TASK_RUNNING ||
        t->run_state == CIO__TASK_FINISHED || max == 0)
        return 0;
    uintptr_t lo = (uintptr_t)t->stack.lo;
    uintptr_t hi = lo + t->stack.size;
    uintptr_t sp = (uintptr_t)t->ctx.sp;
    if (sp < lo || sp > hi - 12 * sizeof(uintptr_t) || (sp & 7)) return 0;
    const uintptr_t *saved = (const uintptr_t *)sp;
#if defined(__x86_64__)
    uintptr_t fp = saved[5], pc = saved[6];
#elif defined(__aarch64__)
    uintptr_t fp = saved[10], pc = saved[11];
#else
    uintptr_t fp = 0, pc = 0;
#endif
    size_t n = 0;
    uintptr_t floor = sp;
    while (pc && n < max) {
        pcs[n++] = pc;
        if (fp <= floor || fp > hi - 2 * sizeof(uintptr_t) || (fp & 7)) break;
        const uintptr_t *frame = (const uintptr_t *)fp;
        floor = fp;
        pc = frame[1];
        fp = frame[0];
    }
    return n;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A return address points after its call, which may be a function's last
 * instruction: the symbol is looked up for the byte before it. A symbol
 * that ends before the address (a hidden function between two exported
 * ones, which -rdynamic does not export) does not name it: the object's
 * .symtab does (symtab.c), and dladdr's answer stays the fallback for a
 * stripped file. Not for signal handlers: both look-ups take locks. */
void cio__code_lookup(uintptr_t pc, int is_return, cio__code_sym *out) {
    memset(out, 0, sizeof *out);
    out->pc = pc;
    uintptr_t at = is_return && pc ? pc - 1 : pc;
    Dl_info info;
    const ElfW(Sym) *es = NULL;
    if (!pc || !dladdr1((void *)at, &info, (void **)&es, RTLD_DL_SYMENT)) return;
    out->found = 1;
    if (info.dli_fname && info.dli_fname[0]) {
        out->path = info.dli_fname;
        out->module = base_name(info.dli_fname);
    }
    out->module_off = pc - (uintptr_t)info.dli_fbase;
    if (info.dli_sname && info.dli_saddr && es) {
        uintptr_t start = (uintptr_t)info.dli_saddr;
        if (es->st_size == 0 || at - start < es->st_size) {
            out->name = info.dli_sname;
            out->off = pc - start;
            out->dynamic = 1;
        }
    }
    /* A hidden or static function: the file's full symbol table knows it. */
    const char *name;
    uintptr_t start;
    if (!out->name && cio__symtab_lookup(at, &name, &start)) {
        out->name = name;
        out->off = pc - start;
    }
}

/* A small direct-mapped cache of lookups for one dump: the tasks of a
 * server share their frames, and dladdr scans a symbol table. */
#define SYM_CACHE 1024
typedef struct sym_cache {
    cio__code_sym e[SYM_CACHE];
} sym_cache;

static void symbolize(sym_cache *c, uintptr_t pc, int is_return, cio__code_sym *out) {
    if (!c) {
        cio__code_lookup(pc, is_return, out);
        return;
    }
    cio__code_sym *e = &c->e[((pc >> 2) ^ (pc >> 13)) % SYM_CACHE];
    if (e->pc != pc) cio__code_lookup(pc, is_return, e);
    *out = *e;
}

/* "fn+0x4b (module+0x1a1b)", "? (module+0x1a1b)" or the bare address. */
static void out_sym_text(cio__out *o, const cio__code_sym *s) {
    if (s->name) {
        cio__out_str(o, s->name);
        out_ch(o, '+');
        out_hex_short(o, s->off);
    } else {
        out_ch(o, '?');
    }
    if (s->module) {
        cio__out_str(o, " (");
        cio__out_str(o, s->module);
        out_ch(o, '+');
        out_hex_short(o, s->module_off);
        out_ch(o, ')');
    }
}

/* ---- one task --------------------------------------------------------- */

/* The dump's state for one call: the loop, the output, the flags, and the
 * optional scratch (tasks by id, the symbol cache). */
typedef struct dumper {
    cio_loop *loop;
    cio__out *o;
    unsigned flags;
    int json;
    int64_t now;
    cio__task **by_id;  /* pending tasks in id order, or NULL */
    size_t n;
    sym_cache *syms;    /* or NULL */
    const cio__task *running;
} dumper;

static const char *const kind_names[CIO__WAIT_KIND_COUNT] = {
    [CIO__WAIT_OTHER] = "other",        [CIO__WAIT_FUTURE] = "future",
    [CIO__WAIT_TASK] = "task",          [CIO__WAIT_GATHER] = "gather",
    [CIO__WAIT_SLEEP] = "sleep",        [CIO__WAIT_YIELD] = "yield",
    [CIO__WAIT_FD] = "fd",              [CIO__WAIT_LOCK] = "lock",
    [CIO__WAIT_SEMAPHORE] = "semaphore", [CIO__WAIT_EVENT] = "event",
    [CIO__WAIT_CONDITION] = "condition", [CIO__WAIT_BARRIER] = "barrier",
    [CIO__WAIT_QUEUE_GET] = "queue-get", [CIO__WAIT_QUEUE_PUT] = "queue-put",
    [CIO__WAIT_QUEUE_JOIN] = "queue-join", [CIO__WAIT_WAIT] = "wait",
    [CIO__WAIT_AS_COMPLETED] = "as-completed", [CIO__WAIT_TASK_GROUP] = "task-group",
    [CIO__WAIT_POOL] = "thread-pool",   [CIO__WAIT_PROCESS] = "process",
    [CIO__WAIT_STREAM] = "stream",      [CIO__WAIT_SERVER] = "server",
};

static const char *kind_name(const cio__wait *w) {
    return w->kind < CIO__WAIT_KIND_COUNT ? kind_names[w->kind] : "other";
}

static const char *state_name(const cio__task *t) {
    if (t->fut.state != CIO__PENDING || t->run_state == CIO__TASK_FINISHED) return "done";
    switch (t->run_state) {
    case CIO__TASK_RUNNING: return "running";
    case CIO__TASK_SUSPENDED: return "waiting";
    default: return "scheduled";
    }
}

static int pending_task(const cio_future *f) {
    return f->kind == CIO__KIND_TASK && f->state == CIO__PENDING;
}

/* A pending task of the loop by id: binary search of the scratch array,
 * else a walk of the loop's futures (the single-task formatter). */
static cio__task *find_task(const dumper *d, uint64_t id) {
    if (id == 0) return NULL;
    if (d->by_id) {
        size_t lo = 0, hi = d->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (d->by_id[mid]->id < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < d->n && d->by_id[lo]->id == id ? d->by_id[lo] : NULL;
    }
    for (cio__link *l = d->loop->futures.next; l != &d->loop->futures; l = l->next) {
        cio_future *f = CIO__CONTAINER_OF(l, cio_future, loop_link);
        if (pending_task(f) && cio__task_of(f)->id == id) return cio__task_of(f);
    }
    return NULL;
}

/* A future's creator is kept as the low 32 bits of the task id. */
static cio__task *find_task_low32(const dumper *d, uint32_t low) {
    if (low == 0) return NULL;
    if (d->by_id && d->n && d->by_id[d->n - 1]->id <= UINT32_MAX) return find_task(d, low);
    for (cio__link *l = d->loop->futures.next; l != &d->loop->futures; l = l->next) {
        cio_future *f = CIO__CONTAINER_OF(l, cio_future, loop_link);
        if (pending_task(f) && (uint32_t)cio__task_of(f)->id == low) return cio__task_of(f);
    }
    return NULL;
}

/*
 * The task a wait leads to, for the cycle search and the wait line: a task
 * awaited is that task; a lock leads to its owner; a plain future to the
 * task that created it (who will set a future cannot be known; its maker
 * usually does). Nothing else has a knowable owner (events, conditions,
 * queues, semaphores, I/O).
 */
static cio__task *wait_target(const dumper *d, const cio__wait *w) {
    switch (w->kind) {
    case CIO__WAIT_TASK:
        return w->future && pending_task(w->future) ? cio__task_of(w->future) : NULL;
    case CIO__WAIT_LOCK: return w->owner ? find_task(d, *w->owner) : NULL;
    case CIO__WAIT_FUTURE: return w->future ? find_task_low32(d, w->future->creator) : NULL;
    default: return NULL;
    }
}

static const cio__task *running_task(cio_loop *loop) {
    cio_task *c = cio_current_task();
    return c && c->loop == loop ? cio__task_of(c) : NULL;
}

static void out_task_ref(dumper *d, const cio__task *t) {
    cio__out_u64(d->o, t->id);
    out_ch(d->o, ' ');
    cio__out_quoted(d->o, cio__task_name((cio__task *)t), 0);
}

static int has_deadline(const cio__wait *w) {
    return w->deadline > 0 && w->deadline != INT64_MAX;
}

static void out_rel(dumper *d, int64_t when) {
    int64_t rel = when - d->now;
    if (rel >= 0) out_ch(d->o, '+');
    cio__out_secs(d->o, rel, 3);
    out_ch(d->o, 's');
}

/* The object of a wait and who leads on from it, in words: "task 9 "b"",
 * "lock 0x... (owner 12 "b")", "fd 12 read", "future 0x... (created by
 * 11 "a")". Shared by the wait line and the cycle line. */
static void out_wait_object(dumper *d, const cio__wait *w) {
    cio__out *o = d->o;
    cio__task *target = wait_target(d, w);
    switch (w->kind) {
    case CIO__WAIT_TASK:
        cio__out_str(o, "task ");
        if (w->future) out_task_ref(d, cio__task_of(w->future));
        if (w->future && !target) cio__out_str(o, " (done)");
        return;
    case CIO__WAIT_FD:
        cio__out_str(o, "fd ");
        cio__out_i64(o, w->fd);
        if (w->dir) cio__out_str(o, w->dir == CIO__WAIT_DIR_READ ? " read" : " write");
        return;
    case CIO__WAIT_SLEEP:
        cio__out_str(o, "sleep until=");
        cio__out_secs(o, w->deadline, 6);
        cio__out_str(o, " (");
        out_rel(d, w->deadline);
        out_ch(o, ')');
        return;
    case CIO__WAIT_YIELD: cio__out_str(o, "yield"); return;
    default: break;
    }
    cio__out_str(o, kind_name(w));
    const void *obj = w->object ? w->object : (const void *)w->future;
    if (obj) {
        out_ch(o, ' ');
        cio__out_hex(o, (uintptr_t)obj);
    }
    if (w->kind == CIO__WAIT_LOCK && w->owner) {
        cio__out_str(o, " (owner ");
        if (target)
            out_task_ref(d, target);
        else if (*w->owner)
            cio__out_u64(o, *w->owner);
        else
            cio__out_str(o, "none");
        out_ch(o, ')');
    } else if (w->kind == CIO__WAIT_FUTURE && target) {
        cio__out_str(o, " (created by ");
        out_task_ref(d, target);
        out_ch(o, ')');
    }
}

/* "  wait: lock 0x... (owner 12 "holder") deadline=+0.899s ("lock")". */
static void out_wait_line(dumper *d, const cio__task *t) {
    cio__out *o = d->o;
    const cio__wait *w = t->wait;
    cio__out_str(o, "  wait: ");
    out_wait_object(d, w);
    if (has_deadline(w) && w->kind != CIO__WAIT_SLEEP) {
        cio__out_str(o, " deadline=");
        out_rel(d, w->deadline);
    }
    /* What the call says of itself, unless the kind said it already. */
    if (w->what && strcmp(w->what, kind_name(w)) != 0 &&
        !(w->future && strcmp(w->what, "future") == 0)) {
        cio__out_str(o, " (");
        cio__out_str(o, w->what);
        out_ch(o, ')');
    }
    out_ch(o, '\n');
}

static void out_spawn_site(dumper *d, const cio__task *t) {
    if (t->spawn_site) {
        cio__out_str(d->o, t->spawn_site);
    } else if (t->spawn_pc && !(d->flags & CIO__DUMP_RAW)) {
        cio__code_sym s;
        symbolize(d->syms, (uintptr_t)t->spawn_pc, 1, &s);
        if (s.name) {
            cio__out_str(d->o, s.name);
            out_ch(d->o, '+');
            out_hex_short(d->o, s.off);
        } else {
            cio__out_hex(d->o, (uintptr_t)t->spawn_pc);
        }
    } else if (t->spawn_pc) {
        cio__out_hex(d->o, (uintptr_t)t->spawn_pc);
    } else {
        out_ch(d->o, '-');
    }
}

#define MAX_FRAMES 64

static void out_frames_text(dumper *d, const cio__task *t) {
    uintptr_t pcs[MAX_FRAMES];
    size_t n = cio__task_frames(t, pcs, MAX_FRAMES);
    for (size_t i = 0; i < n; i++) {
        cio__out_str(d->o, "  #");
        cio__out_u64(d->o, i);
        out_ch(d->o, ' ');
        cio__out_hex(d->o, pcs[i]);
        if (!(d->flags & CIO__DUMP_RAW)) {
            cio__code_sym s;
            symbolize(d->syms, pcs[i], 1, &s);
            out_ch(d->o, ' ');
            out_sym_text(d->o, &s);
        }
        out_ch(d->o, '\n');
    }
}

/* Whether a task's line says how long it has waited: a suspended task's
 * wait record holds when it began, except a yield's shared record, which
 * keeps none (a yield lasts one iteration). */
static bool waits_since(const cio__task *t) {
    return t->run_state == CIO__TASK_SUSPENDED && t->wait && t->wait->kind != CIO__WAIT_YIELD;
}

/* The task line: "task 7 "fetch" waiting 2.103s switches=14
 * spawned=src/app.c:88 parent=3". */
static void out_task_line(dumper *d, const cio__task *t) {
    cio__out *o = d->o;
    cio__out_str(o, "task ");
    out_task_ref(d, t);
    out_ch(o, ' ');
    cio__out_str(o, state_name(t));
    if (waits_since(t)) {
        out_ch(o, ' ');
        cio__out_secs(o, d->now - t->wait->since, 3);
        out_ch(o, 's');
    }
    cio__out_str(o, " switches=");
    cio__out_u64(o, t->switches);
    cio__out_str(o, " spawned=");
    out_spawn_site(d, t);
    cio__out_str(o, " parent=");
    cio__out_u64(o, t->parent_id);
    if (t->cancel_requests) {
        cio__out_str(o, " cancelling=");
        cio__out_u64(o, (uint64_t)t->cancel_requests);
    }
    out_ch(o, '\n');
}

/* The stack's depth at the lowest stack pointer seen at a switch: a lower
 * bound of its high-water mark that costs nothing to read (the exact mark
 * scans the stack: the census measures it). 0: not known. */
static size_t low_water(const cio__task *t) {
    const char *lo = t->stack.lo, *sp = t->stack_low_sp;
    if (!lo || !sp || sp < lo || sp > lo + t->stack.size) return 0;
    return (size_t)(lo + t->stack.size - sp);
}

static void out_task_block(dumper *d, const cio__task *t) {
    cio__out *o = d->o;
    out_task_line(d, t);
    if (t->run_state == CIO__TASK_SUSPENDED && t->wait) out_wait_line(d, t);
    cio__out_str(o, "  stack: size=");
    cio__out_u64(o, t->stack.size);
    out_ch(o, ' ');
    cio__out_str(o, cio__stack_protection(&d->loop->stacks, &t->stack));
    size_t low = low_water(t);
    if (low) {
        cio__out_str(o, " hwm>=");
        cio__out_u64(o, low);
    }
    out_ch(o, '\n');
    if (t == d->running) cio__out_str(o, "  (running: the task that asked for this dump)\n");
    if (d->flags & CIO_DUMP_STACKS) out_frames_text(d, t);
}

int cio__dump_task(int fd, cio_loop *loop, const cio__task *t, unsigned flags) {
    if (fd < 0 || !loop || !t) return -EINVAL;
    char buf[512];
    cio__out o;
    cio__out_init(&o, fd, buf, sizeof buf);
    dumper d = {.loop = loop, .o = &o, .flags = flags, .now = cio_loop_time_ns(loop),
                .running = running_task(loop)};
    out_task_block(&d, t);
    cio__out_flush(&o);
    return o.err;
}

/* ---- one task in JSON ------------------------------------------------- */

static void json_key(cio__out *o, const char *key) {
    out_ch(o, ',');
    out_ch(o, '"');
    cio__out_str(o, key);
    cio__out_str(o, "\":");
}

static void json_hex(cio__out *o, const char *key, uintptr_t v) {
    json_key(o, key);
    out_ch(o, '"');
    cio__out_hex(o, v);
    out_ch(o, '"');
}

static void json_u64(cio__out *o, const char *key, uint64_t v) {
    json_key(o, key);
    cio__out_u64(o, v);
}

static void json_str(cio__out *o, const char *key, const char *v) {
    json_key(o, key);
    cio__out_quoted(o, v, 1);
}

static void json_secs(cio__out *o, const char *key, int64_t ns) {
    json_key(o, key);
    cio__out_secs(o, ns, 6);
}

static void out_wait_json(dumper *d, const cio__wait *w) {
    cio__out *o = d->o;
    cio__out_str(o, "{\"kind\":");
    cio__out_quoted(o, kind_name(w), 1);
    if (w->what) json_str(o, "what", w->what);
    const void *obj = w->object ? w->object : (const void *)w->future;
    if (obj) json_hex(o, "object", (uintptr_t)obj);
    if (w->kind == CIO__WAIT_FD) {
        json_key(o, "fd");
        cio__out_i64(o, w->fd);
        if (w->dir) json_str(o, "dir", w->dir == CIO__WAIT_DIR_READ ? "read" : "write");
    }
    if (has_deadline(w)) {
        json_secs(o, "deadline", w->deadline);
        json_secs(o, "deadline_in", w->deadline - d->now);
    }
    if (w->kind == CIO__WAIT_TASK && w->future) json_u64(o, "task", cio__task_of(w->future)->id);
    if (w->kind == CIO__WAIT_LOCK && w->owner) json_u64(o, "owner", *w->owner);
    cio__task *target = wait_target(d, w);
    if (w->kind == CIO__WAIT_FUTURE && target) json_u64(o, "created_by", target->id);
    out_ch(o, '}');
}

static void out_frames_json(dumper *d, const cio__task *t) {
    cio__out *o = d->o;
    uintptr_t pcs[MAX_FRAMES];
    size_t n = cio__task_frames(t, pcs, MAX_FRAMES);
    json_key(o, "frames");
    out_ch(o, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) out_ch(o, ',');
        cio__out_str(o, "{\"pc\":\"");
        cio__out_hex(o, pcs[i]);
        out_ch(o, '"');
        if (!(d->flags & CIO__DUMP_RAW)) {
            cio__code_sym s;
            symbolize(d->syms, pcs[i], 1, &s);
            if (s.name) {
                json_str(o, "symbol", s.name);
                json_u64(o, "offset", s.off);
            }
            if (s.module) {
                json_str(o, "module", s.module);
                json_u64(o, "module_offset", s.module_off);
            }
        }
        out_ch(o, '}');
    }
    out_ch(o, ']');
}

static void out_task_json(dumper *d, const cio__task *t) {
    cio__out *o = d->o;
    cio__out_str(o, "{\"id\":");
    cio__out_u64(o, t->id);
    json_str(o, "name", cio__task_name((cio__task *)t));
    json_str(o, "state", state_name(t));
    if (waits_since(t))
        json_secs(o, "waiting_for", d->now - t->wait->since);
    json_u64(o, "switches", t->switches);
    if (t->spawn_site) json_str(o, "spawned", t->spawn_site);
    if (t->spawn_pc) json_hex(o, "spawn_pc", (uintptr_t)t->spawn_pc);
    json_u64(o, "parent", t->parent_id);
    json_u64(o, "cancelling", (uint64_t)t->cancel_requests);
    json_key(o, "stack");
    cio__out_str(o, "{\"size\":");
    cio__out_u64(o, t->stack.size);
    json_str(o, "protection", cio__stack_protection(&d->loop->stacks, &t->stack));
    if (low_water(t)) json_u64(o, "high_water_at_least", low_water(t));
    out_ch(o, '}');
    if (t->run_state == CIO__TASK_SUSPENDED && t->wait) {
        json_key(o, "wait");
        out_wait_json(d, t->wait);
    }
    if (d->flags & CIO_DUMP_STACKS) out_frames_json(d, t);
}

/* ---- the whole loop --------------------------------------------------- */

/* Per task scratch of a full dump. Indexes are ranks in id order. */
/* Frames compared by FOLD: enough to reach past cio's own frames (the
 * switch, the suspension, the primitive: more under the sanitizers) into
 * the program's code. */
#define FOLD_FRAMES 16
#define NONE ((size_t)-1)
typedef struct tinfo {
    cio__task *t;
    uintptr_t top[FOLD_FRAMES]; /* the innermost frames (FOLD), 0 after the last */
    uint64_t key;               /* hash of what FOLD compares */
    size_t group;               /* the first task of its fold group */
    size_t group_count;         /* at the first: the group's size */
    size_t last;                /* at the first: the group's last task */
    size_t parent;              /* the parent's index, or NONE */
    size_t sib_count;           /* graph under FOLD: siblings it stands for */
    size_t path;                /* cycle search: the walk that reached it */
    const void *object;         /* what it waits on (waited-on), or NULL */
    uint8_t color;              /* 0 new, 1 on the walk, 2 done */
} tinfo;

typedef struct scratch {
    tinfo *info;
    tinfo **order;    /* sort space */
    size_t *child_start;
    size_t *children; /* indexes, grouped by parent (the roots last) */
    size_t *last_child; /* per parent: the last child the graph prints */
    size_t *stack;    /* DFS: node, cursor pairs */
    size_t *mark;     /* per group: the parent that counted it last */
    size_t *first;    /* per group: its first sibling under that parent */
} scratch;

static size_t index_of(const dumper *d, const cio__task *t) {
    if (!t) return NONE;
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->by_id[mid]->id < t->id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n && d->by_id[lo] == t ? lo : NONE;
}

/* Fold compares names with each run of digits read as one '*': "conn-17"
 * and "conn-18" are both "conn-*". */
static uint64_t hash_name(uint64_t h, const char *s) {
    int in_digits = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= '0' && c <= '9') {
            if (in_digits) continue;
            in_digits = 1;
            c = '*';
        } else {
            in_digits = 0;
        }
        h = (h ^ c) * 1099511628211ull;
    }
    return h;
}

static int same_pattern(const char *a, const char *b) {
    for (;;) {
        int da = *a >= '0' && *a <= '9', db = *b >= '0' && *b <= '9';
        if (da != db) return 0;
        if (da) {
            while (*a >= '0' && *a <= '9') a++;
            while (*b >= '0' && *b <= '9') b++;
            continue;
        }
        if (*a != *b) return 0;
        if (!*a) return 1;
        a++;
        b++;
    }
}

static uint8_t fold_kind(const cio__task *t) {
    return t->run_state == CIO__TASK_SUSPENDED && t->wait ? t->wait->kind : 0xff;
}

static int same_fold(const tinfo *a, const tinfo *b) {
    if (a->t->run_state != b->t->run_state || fold_kind(a->t) != fold_kind(b->t)) return 0;
    if (memcmp(a->top, b->top, sizeof a->top) != 0) return 0;
    return same_pattern(cio__task_name(a->t), cio__task_name(b->t));
}

static int by_key_then_id(const void *x, const void *y) {
    const tinfo *a = *(tinfo *const *)x, *b = *(tinfo *const *)y;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->t->id < b->t->id ? -1 : a->t->id > b->t->id;
}

static int task_by_id(const void *x, const void *y) {
    const cio__task *a = *(cio__task *const *)x, *b = *(cio__task *const *)y;
    return a->id < b->id ? -1 : a->id > b->id;
}

/*
 * Folding: tasks with the same name pattern, state, wait kind and
 * innermost frames form a group, printed once with its count. The groups
 * come from one sort by a hash of those fields; equal hashes are checked
 * field by field against the group's first task.
 */
static void fold(dumper *d, scratch *sc) {
    for (size_t i = 0; i < d->n; i++) {
        tinfo *ti = &sc->info[i];
        memset(ti->top, 0, sizeof ti->top);
        cio__task_frames(ti->t, ti->top, FOLD_FRAMES);
        uint64_t h = hash_name(1469598103934665603ull, cio__task_name(ti->t));
        h = (h ^ ti->t->run_state) * 1099511628211ull;
        h = (h ^ fold_kind(ti->t)) * 1099511628211ull;
        for (int k = 0; k < FOLD_FRAMES; k++) h = (h ^ ti->top[k]) * 1099511628211ull;
        ti->key = h;
        sc->order[i] = ti;
    }
    qsort(sc->order, d->n, sizeof *sc->order, by_key_then_id);
    tinfo *leader = NULL;
    for (size_t k = 0; k < d->n; k++) {
        tinfo *ti = sc->order[k];
        if (!leader || leader->key != ti->key || !same_fold(leader, ti)) {
            leader = ti;
            leader->group_count = 0;
        }
        ti->group = (size_t)(leader - sc->info);
        leader->group_count++;
        leader->last = (size_t)(ti - sc->info); /* ids ascend within a key */
    }
}

/* A public function of cio's (cio_x, not the cio__ internals). */
static int public_cio(const char *name) {
    return name && strncmp(name, "cio_", 4) == 0 && name[4] != '_';
}

static uintptr_t object_base(const cio__code_sym *s) {
    return s->found ? s->pc - s->module_off : 0;
}

/*
 * Whether a named frame is cio's own code, for the fold site: 1 yes, 0 no,
 * -1 cannot tell. Names with cio_ are. Otherwise the object tells when cio
 * is a shared library apart from the task's function; in one program (a
 * static cio), exports do: with the task's function exported (-rdynamic),
 * cio's hidden functions are the ones without an export. A program that
 * exports nothing and links cio statically cannot tell its static
 * functions from cio's.
 */
static int cio_frame(const cio__code_sym *s, const cio__code_sym *self, const cio__code_sym *fn) {
    if (strncmp(s->name, "cio_", 4) == 0) return 1;
    if (self->found && fn->found && object_base(self) != object_base(fn))
        return object_base(s) == object_base(self);
    if (fn->dynamic) return !s->dynamic;
    return -1;
}

/* The frame FOLD names a group by: the program's code that waits, so the
 * first frame that is not cio's own. When that cannot be told, the caller
 * of the innermost public cio function, else the first named frame
 * without cio_, else the first frame. */
static void out_fold_site(dumper *d, const tinfo *ti) {
    cio__code_sym first = {0}, caller = {0}, other = {0}, s, self, fn;
    int have = 0, have_caller = 0, have_other = 0, after_public = 0;
    uintptr_t pcs[MAX_FRAMES];
    size_t n = cio__task_frames(ti->t, pcs, MAX_FRAMES);
    symbolize(d->syms, (uintptr_t)cio_dump, 0, &self);
    symbolize(d->syms, (uintptr_t)ti->t->fn, 0, &fn);
    for (size_t k = 0; k < n; k++) {
        symbolize(d->syms, pcs[k], 1, &s);
        if (!have) {
            first = s;
            have = 1;
        }
        if (!s.name) continue;
        int own = cio_frame(&s, &self, &fn);
        if (own == 0) {
            first = s;
            have_caller = have_other = 0;
            break;
        }
        if (own < 0 && after_public && !have_caller) {
            caller = s;
            have_caller = 1;
        }
        if (own < 0 && !have_other) {
            other = s;
            have_other = 1;
        }
        after_public = public_cio(s.name);
    }
    if (!have) return;
    if (have_caller)
        first = caller;
    else if (have_other)
        first = other;
    cio__out_str(d->o, " at ");
    out_sym_text(d->o, &first);
}

/* The name pattern: the name with each digit run as '*'. */
static void out_pattern(cio__out *o, const char *name, int json) {
    char buf[128];
    size_t n = 0;
    int in_digits = 0;
    for (const char *p = name; *p && n + 1 < sizeof buf; p++) {
        if (*p >= '0' && *p <= '9') {
            if (in_digits) continue;
            in_digits = 1;
            buf[n++] = '*';
        } else {
            in_digits = 0;
            buf[n++] = *p;
        }
    }
    /* A name cut short loses the whole of its last character, never part
     * of it. */
    buf[n] = '\0';
    if (name[0] && n + 1 == sizeof buf) {
        size_t end = n;
        while (end > 0 && ((unsigned char)buf[end - 1] & 0xc0) == 0x80) end--;
        if (end > 0 && (unsigned char)buf[end - 1] >= 0xc0 &&
            cio__utf8_sequence((const unsigned char *)buf + end - 1) != n - end + 1)
            n = end - 1;
    }
    buf[n] = '\0';
    cio__out_quoted(o, buf, json);
}

/* "x1000 tasks "conn-*" waiting fd at handle+0x32 (prog+0x1a2b) first=5
 * last=1004", then the first task's wait and frames. */
static void out_fold_text(dumper *d, scratch *sc, size_t i) {
    cio__out *o = d->o;
    const tinfo *ti = &sc->info[i];
    const cio__task *t = ti->t;
    size_t last = ti->last;
    out_ch(o, 'x');
    cio__out_u64(o, ti->group_count);
    cio__out_str(o, " tasks ");
    out_pattern(o, cio__task_name((cio__task *)t), 0);
    out_ch(o, ' ');
    cio__out_str(o, state_name(t));
    if (t->run_state == CIO__TASK_SUSPENDED && t->wait) {
        out_ch(o, ' ');
        cio__out_str(o, kind_name(t->wait));
        if (t->wait->kind == CIO__WAIT_FD && t->wait->dir)
            cio__out_str(o, t->wait->dir == CIO__WAIT_DIR_READ ? " read" : " write");
    }
    out_fold_site(d, ti);
    cio__out_str(o, " first=");
    cio__out_u64(o, t->id);
    cio__out_str(o, " last=");
    cio__out_u64(o, sc->info[last].t->id);
    out_ch(o, '\n');
    if (t->run_state == CIO__TASK_SUSPENDED && t->wait) out_wait_line(d, t);
    if (d->flags & CIO_DUMP_STACKS) out_frames_text(d, t);
}

/*
 * The tree of who spawned whom. Children are grouped by parent with a
 * counting sort (ids ascending within a parent), roots are tasks whose
 * parent is gone or none. The walk is iterative (a chain of 10,000 tasks
 * must not recurse on a task's small stack); under FOLD, siblings of one
 * fold group print as one line and are not descended into.
 */
static void build_tree(dumper *d, scratch *sc) {
    size_t n = d->n;
    size_t *start = sc->child_start; /* n + 2 entries: parents 0..n-1, roots at n */
    memset(start, 0, (n + 2) * sizeof *start);
    for (size_t i = 0; i < n; i++) {
        tinfo *ti = &sc->info[i];
        ti->parent = ti->t->parent_id ? index_of(d, find_task(d, ti->t->parent_id)) : NONE;
        start[(ti->parent == NONE ? n : ti->parent) + 1]++;
    }
    for (size_t p = 0; p <= n; p++) start[p + 1] += start[p];
    /* start[p] is now where p's children begin; fill with a moving cursor
     * (mark serves as the cursor array). */
    size_t *cursor = sc->mark;
    for (size_t p = 0; p <= n; p++) cursor[p] = start[p];
    for (size_t i = 0; i < n; i++) {
        size_t p = sc->info[i].parent == NONE ? n : sc->info[i].parent;
        sc->children[cursor[p]++] = i;
    }
    /* Sibling folding, and the last child each parent prints. */
    int folding = (d->flags & CIO_DUMP_FOLD) != 0;
    for (size_t g = 0; g < n; g++) sc->mark[g] = NONE;
    for (size_t p = 0; p <= n; p++) {
        sc->last_child[p] = NONE;
        for (size_t k = start[p]; k < start[p + 1]; k++) {
            size_t c = sc->children[k];
            tinfo *ci = &sc->info[c];
            if (!folding) {
                ci->sib_count = 1;
            } else if (sc->mark[ci->group] != p) {
                sc->mark[ci->group] = p;
                sc->first[ci->group] = c;
                ci->sib_count = 1;
            } else {
                sc->info[sc->first[ci->group]].sib_count++;
                ci->sib_count = 0;
            }
        }
        for (size_t k = start[p + 1]; k > start[p]; k--) {
            size_t c = sc->children[k - 1];
            if (sc->info[c].sib_count) {
                sc->last_child[p] = c;
                break;
            }
        }
    }
}

#define GRAPH_INDENT_MAX 64

static void out_graph_summary(dumper *d, const cio__task *t) {
    cio__out *o = d->o;
    cio__out_str(o, " [");
    if (t->run_state == CIO__TASK_SUSPENDED && t->wait)
        out_wait_object(d, t->wait);
    else
        cio__out_str(o, state_name(t));
    out_ch(o, ']');
}

static void out_graph(dumper *d, scratch *sc) {
    cio__out *o = d->o;
    size_t n = d->n;
    int json = d->json;
    uint8_t last_at[GRAPH_INDENT_MAX];
    size_t *stack = sc->stack; /* pairs: parent, next child position */
    size_t depth = 0;          /* pairs on the stack */
    int first_json = 1;
    if (json) {
        json_key(o, "graph");
        out_ch(o, '[');
    } else {
        cio__out_str(o, "graph:\n");
    }
    stack[0] = n;
    stack[1] = sc->child_start[n];
    depth = 1;
    while (depth > 0) {
        size_t p = stack[2 * (depth - 1)];
        size_t *pos = &stack[2 * (depth - 1) + 1];
        if (*pos >= sc->child_start[p + 1]) {
            depth--;
            continue;
        }
        size_t c = sc->children[(*pos)++];
        tinfo *ci = &sc->info[c];
        if (!ci->sib_count) continue;
        size_t level = depth - 1; /* 0 for roots */
        int is_last = sc->last_child[p] == c;
        int folded = ci->sib_count > 1;
        if (json) {
            if (!first_json) out_ch(o, ',');
            first_json = 0;
            cio__out_str(o, "{\"id\":");
            cio__out_u64(o, ci->t->id);
            json_u64(o, "depth", level);
            if (folded) json_u64(o, "count", ci->sib_count);
            out_ch(o, '}');
        } else {
            if (level > GRAPH_INDENT_MAX) {
                cio__out_str(o, "(depth ");
                cio__out_u64(o, level);
                cio__out_str(o, ") ");
            } else {
                for (size_t k = 1; k < level; k++) cio__out_str(o, last_at[k] ? "    " : "│   ");
                if (level > 0) cio__out_str(o, is_last ? "└── " : "├── ");
            }
            if (folded) {
                out_ch(o, 'x');
                cio__out_u64(o, ci->sib_count);
                cio__out_str(o, " (T) ");
                out_pattern(o, cio__task_name(ci->t), 0);
            } else {
                cio__out_str(o, "(T) ");
                out_task_ref(d, ci->t);
            }
            out_graph_summary(d, ci->t);
            out_ch(o, '\n');
        }
        if (level < GRAPH_INDENT_MAX) last_at[level] = (uint8_t)is_last;
        if (!folded && sc->child_start[c] < sc->child_start[c + 1]) {
            stack[2 * depth] = c;
            stack[2 * depth + 1] = sc->child_start[c];
            depth++;
        }
    }
    if (json) out_ch(o, ']');
}

/* The object a waiting task waits on, for "who waits on X" (a wait
 * without one, a sleep or an fd, has none to share). */
static const void *wait_object(const cio__task *t) {
    if (t->run_state != CIO__TASK_SUSPENDED || !t->wait) return NULL;
    const cio__wait *w = t->wait;
    if (w->kind == CIO__WAIT_FD || w->kind == CIO__WAIT_SLEEP || w->kind == CIO__WAIT_YIELD)
        return NULL;
    return w->object ? w->object : (const void *)w->future;
}

static int by_object_then_id(const void *x, const void *y) {
    const tinfo *a = *(tinfo *const *)x, *b = *(tinfo *const *)y;
    uintptr_t oa = (uintptr_t)a->object, ob = (uintptr_t)b->object;
    if (oa != ob) return oa < ob ? -1 : 1;
    return a->t->id < b->t->id ? -1 : a->t->id > b->t->id;
}

/* "Who waits on X": the waiting tasks grouped by the object they wait on,
 * each object once with its waiters (the first 8 by name in text). */
static void out_waited_on(dumper *d, scratch *sc) {
    cio__out *o = d->o;
    size_t m = 0;
    for (size_t i = 0; i < d->n; i++)
        if ((sc->info[i].object = wait_object(sc->info[i].t)) != NULL) sc->order[m++] = &sc->info[i];
    qsort(sc->order, m, sizeof *sc->order, by_object_then_id);
    if (d->json) {
        json_key(o, "waited_on");
        out_ch(o, '[');
    } else {
        cio__out_str(o, "waited-on:\n");
    }
    for (size_t k = 0; k < m;) {
        const void *obj = sc->order[k]->object;
        size_t end = k;
        while (end < m && sc->order[end]->object == obj) end++;
        const cio__wait *w = sc->order[k]->t->wait;
        if (d->json) {
            if (k) out_ch(o, ',');
            cio__out_str(o, "{\"object\":\"");
            cio__out_hex(o, (uintptr_t)obj);
            out_ch(o, '"');
            json_str(o, "kind", kind_name(w));
            json_key(o, "waiters");
            out_ch(o, '[');
            for (size_t j = k; j < end; j++) {
                if (j > k) out_ch(o, ',');
                cio__out_u64(o, sc->order[j]->t->id);
            }
            cio__out_str(o, "]}");
        } else {
            out_wait_object(d, w);
            cio__out_str(o, " <- ");
            if (end - k > 1) {
                out_ch(o, 'x');
                cio__out_u64(o, end - k);
                cio__out_str(o, ": ");
            }
            for (size_t j = k; j < end && j < k + 8; j++) {
                if (j > k) cio__out_str(o, ", ");
                out_task_ref(d, sc->order[j]->t);
            }
            if (end - k > 8) cio__out_str(o, ", ...");
            out_ch(o, '\n');
        }
        k = end;
    }
    if (d->json) out_ch(o, ']');
}

/*
 * Deadlock cycles. Each waiting task has at most one edge to another task
 * (wait_target: the task it awaits, its lock's owner, its future's
 * maker), so the graph is a functional graph and one walk per task finds
 * every cycle in linear time: a walk that meets a task it marked itself
 * has closed a loop, which starts at that task.
 */
static cio__task *edge_of(const dumper *d, const cio__task *t) {
    if (t->run_state != CIO__TASK_SUSPENDED || !t->wait) return NULL;
    return wait_target(d, t->wait);
}

static int out_cycles(dumper *d, scratch *sc) {
    cio__out *o = d->o;
    int found = 0;
    for (size_t i = 0; i < d->n; i++) sc->info[i].color = 0;
    if (d->json) {
        json_key(o, "cycles");
        out_ch(o, '[');
    }
    for (size_t i = 0; i < d->n; i++) {
        size_t u = i;
        while (u != NONE && sc->info[u].color == 0) {
            sc->info[u].color = 1;
            sc->info[u].path = i;
            u = index_of(d, edge_of(d, sc->info[u].t));
        }
        if (u != NONE && sc->info[u].color == 1 && sc->info[u].path == i) {
            /* u starts a cycle: print it once, from u round to u. */
            if (d->json) {
                if (found) out_ch(o, ',');
                cio__out_str(o, "{\"tasks\":[");
            } else {
                cio__out_str(o, "cycle: ");
                out_task_ref(d, sc->info[u].t);
            }
            size_t v = u;
            int first = 1;
            do {
                const cio__task *t = sc->info[v].t;
                if (d->json) {
                    if (!first) out_ch(o, ',');
                    cio__out_str(o, "{\"id\":");
                    cio__out_u64(o, t->id);
                    json_str(o, "via", kind_name(t->wait));
                    out_ch(o, '}');
                } else {
                    cio__out_str(o, " -> ");
                    out_wait_object(d, t->wait);
                }
                first = 0;
                v = index_of(d, edge_of(d, t));
            } while (v != u && v != NONE);
            cio__out_str(o, d->json ? "]}" : "\n");
            found++;
        }
        /* Mark the walk done. */
        for (size_t w = i; w != NONE && sc->info[w].color == 1 && sc->info[w].path == i;
             w = index_of(d, edge_of(d, sc->info[w].t)))
            sc->info[w].color = 2;
    }
    if (d->json) out_ch(o, ']');
    return found;
}

/*
 * The census of stack use per spawn site (core/stack_census.c), as
 * cio_loop_stack_census prints it: the sites the loop recorded (tasks that
 * ended in debug mode) and every pending task's exact mark, measured now,
 * deepest site first. It works on a copy, so the loop's census is left as
 * it was; without memory for it the section says so.
 */
static int by_census_mark(const void *x, const void *y) {
    const cio__stack_census_site *a = x, *b = y;
    return a->max_mark < b->max_mark ? 1 : a->max_mark > b->max_mark ? -1 : 0;
}

static void out_census_site(dumper *d, const cio__stack_census_site *c) {
    if (c->site) {
        cio__out_str(d->o, c->site);
        return;
    }
    cio__code_sym s;
    symbolize(d->syms, (uintptr_t)c->pc, 1, &s);
    if (s.name) {
        cio__out_str(d->o, s.name);
        out_ch(d->o, '+');
        out_hex_short(d->o, s.off);
    } else {
        cio__out_hex(d->o, (uintptr_t)c->pc);
    }
}

static void out_census(dumper *d) {
    cio__out *o = d->o;
    cio__stack_census *census = NULL;
    int rc = cio__stack_census_copy(d->loop->stack_census, &census);
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        const cio__task *t = d->by_id[i];
        if (!t->stack.lo) continue;
        rc = cio__stack_census_add(&census, t->spawn_site, t->spawn_pc,
                                   cio__task_stack_high_water(t), t->stack.size, !t->stack.wiped);
    }
    size_t n = rc == 0 ? cio__stack_census_count(census) : 0;
    cio__stack_census_site *sites = rc == 0 && n ? malloc(n * sizeof *sites) : NULL;
    if (n && !sites) rc = -ENOMEM;
    for (size_t i = 0; sites && i < n; i++) cio__stack_census_get(census, i, &sites[i]);
    if (sites) qsort(sites, n, sizeof *sites, by_census_mark);
    if (d->json) {
        json_key(o, "census");
        out_ch(o, '[');
    } else {
        cio__out_str(o, rc == 0 ? "census:\n" : "census: (left out: no memory for it)\n");
    }
    for (size_t i = 0; sites && i < n; i++) {
        const cio__stack_census_site *c = &sites[i];
        size_t pct = c->stack_size ? c->max_mark * 100 / c->stack_size : 0;
        if (d->json) {
            if (i) out_ch(o, ',');
            cio__out_str(o, "{\"site\":");
            if (c->site) {
                cio__out_quoted(o, c->site, 1);
            } else {
                out_ch(o, '"');
                out_census_site(d, c);
                out_ch(o, '"');
                json_hex(o, "spawn_pc", (uintptr_t)c->pc);
            }
            json_u64(o, "max", c->max_mark);
            json_u64(o, "stack_size", c->stack_size);
            json_u64(o, "percent", pct);
            json_u64(o, "tasks", c->tasks);
            json_key(o, "upper_bound");
            cio__out_str(o, c->upper ? "true" : "false");
            out_ch(o, '}');
        } else {
            /* "src/app.c:88 max 5120 of 16384 B (31%), 3 tasks" */
            out_census_site(d, c);
            cio__out_str(o, " max ");
            cio__out_u64(o, c->max_mark);
            cio__out_str(o, " of ");
            cio__out_u64(o, c->stack_size);
            cio__out_str(o, " B (");
            cio__out_u64(o, pct);
            cio__out_str(o, "%), ");
            cio__out_u64(o, c->tasks);
            cio__out_str(o, c->tasks == 1 ? " task" : " tasks");
            if (c->upper) cio__out_str(o, " (upper bound: a reused stack not wiped)");
            out_ch(o, '\n');
        }
    }
    if (d->json) out_ch(o, ']');
    free(sites);
    cio__stack_census_free(&census);
}

static void out_header(dumper *d, size_t tasks) {
    cio__out *o = d->o;
    cio_loop *loop = d->loop;
    size_t ready = 0;
    for (cio__link *l = loop->ready.next; l != &loop->ready; l = l->next) ready++;
    if (d->json) {
        cio__out_str(o, "{\"cio_dump\":1");
        json_u64(o, "pid", (uint64_t)getpid());
        json_hex(o, "loop", (uintptr_t)loop);
        json_u64(o, "thread", (uint64_t)gettid());
        json_secs(o, "now", d->now);
        json_u64(o, "task_count", tasks);
        json_u64(o, "ready", ready);
        json_u64(o, "timers", loop->timers.count);
        json_u64(o, "fds", loop->io.in_flight);
        json_u64(o, "iterations", loop->iterations);
        return;
    }
    cio__out_str(o, "cio-dump 1 pid=");
    cio__out_u64(o, (uint64_t)getpid());
    cio__out_str(o, " loop=");
    cio__out_hex(o, (uintptr_t)loop);
    cio__out_str(o, " thread=");
    cio__out_u64(o, (uint64_t)gettid());
    cio__out_str(o, " now=");
    cio__out_secs(o, d->now, 6);
    cio__out_str(o, " tasks=");
    cio__out_u64(o, tasks);
    cio__out_str(o, " ready=");
    cio__out_u64(o, ready);
    cio__out_str(o, " timers=");
    cio__out_u64(o, loop->timers.count);
    cio__out_str(o, " fds=");
    cio__out_u64(o, loop->io.in_flight);
    cio__out_str(o, " iterations=");
    cio__out_u64(o, loop->iterations);
    out_ch(o, '\n');
}

static void scratch_free(scratch *sc) {
    free(sc->info);
    free(sc->order);
    free(sc->child_start);
    free(sc->children);
    free(sc->last_child);
    free(sc->stack);
    free(sc->mark);
    free(sc->first);
}

static int scratch_alloc(scratch *sc, size_t n) {
    memset(sc, 0, sizeof *sc);
    sc->info = calloc(n ? n : 1, sizeof *sc->info);
    sc->order = malloc((n ? n : 1) * sizeof *sc->order);
    sc->child_start = malloc((n + 2) * sizeof *sc->child_start);
    sc->children = malloc((n + 1) * sizeof *sc->children);
    sc->last_child = malloc((n + 1) * sizeof *sc->last_child);
    sc->stack = malloc(2 * (n + 1) * sizeof *sc->stack);
    sc->mark = malloc((n + 1) * sizeof *sc->mark);
    sc->first = malloc((n + 1) * sizeof *sc->first);
    if (sc->info && sc->order && sc->child_start && sc->children && sc->last_child &&
        sc->stack && sc->mark && sc->first)
        return 0;
    scratch_free(sc);
    memset(sc, 0, sizeof *sc);
    return -ENOMEM;
}

#define ALL_FLAGS (CIO_DUMP_STACKS | CIO_DUMP_GRAPH | CIO_DUMP_FOLD | CIO_DUMP_JSON)

static int dump_loop(cio_loop *loop, int fd, unsigned flags);

/*
 * A dump from outside the loop's run (another thread, or this one while
 * the loop does not run) reads lists the loop's thread changes once it
 * runs. A check of "running" on entry alone would let the loop start in
 * the middle of the walk, so the dump and the start exclude each other:
 * the dump counts itself in dump_readers and then looks at started; the
 * start sets started and then waits for dump_readers to drop to zero
 * (loop.c). With both steps sequentially consistent, either the dump sees
 * the start and backs off, or the start sees the dump and waits for it.
 */
int cio_dump(cio_loop *loop, int fd, unsigned flags) {
    if (!loop || fd < 0 || (flags & ~ALL_FLAGS)) return -EINVAL;
    if (loop->generation != cio__fork_generation) return -CIO_EFORKED;
    if (cio_running_loop() == loop) return dump_loop(loop, fd, flags);
    atomic_fetch_add(&loop->dump_readers, 1);
    int rc = atomic_load(&loop->started) ? -CIO_EWRONGTHREAD : dump_loop(loop, fd, flags);
    atomic_fetch_sub(&loop->dump_readers, 1);
    return rc;
}

static int dump_loop(cio_loop *loop, int fd, unsigned flags) {
    if (loop->closed) return -CIO_ELOOPCLOSED;

    size_t n = 0;
    for (cio__link *l = loop->futures.next; l != &loop->futures; l = l->next)
        if (pending_task(CIO__CONTAINER_OF(l, cio_future, loop_link))) n++;

    /* The output buffer, the tasks by id and the symbol cache; the dump
     * goes on without them (smaller writes, linear look-ups, no graph). */
    size_t cap = 64 * 1024;
    char small[256];
    char *buf = malloc(cap);
    if (!buf) {
        buf = small;
        cap = sizeof small;
    }
    cio__out o;
    cio__out_init(&o, fd, buf, cap);
    dumper d = {.loop = loop, .o = &o, .flags = flags, .json = (flags & CIO_DUMP_JSON) != 0,
                .now = cio_loop_time_ns(loop), .running = running_task(loop)};
    cio__task **by_id = malloc((n ? n : 1) * sizeof *by_id);
    scratch sc;
    int have_scratch = by_id && scratch_alloc(&sc, n) == 0;
    if (have_scratch) {
        size_t k = 0;
        int sorted = 1;
        for (cio__link *l = loop->futures.next; l != &loop->futures; l = l->next) {
            cio_future *f = CIO__CONTAINER_OF(l, cio_future, loop_link);
            if (!pending_task(f)) continue;
            if (k == n) break; /* cannot happen: nothing changes the list meanwhile */
            by_id[k] = cio__task_of(f);
            if (k && by_id[k - 1]->id > by_id[k]->id) sorted = 0;
            k++;
        }
        if (!sorted) qsort(by_id, n, sizeof *by_id, task_by_id);
        d.by_id = by_id;
        d.n = n;
        for (size_t i = 0; i < n; i++) {
            sc.info[i].t = by_id[i];
            sc.info[i].group = i;
            sc.info[i].group_count = 1;
        }
        d.syms = calloc(1, sizeof *d.syms);
    }

    out_header(&d, n);
    int folding = have_scratch && (flags & CIO_DUMP_FOLD);
    if (folding) fold(&d, &sc);

    /* The tasks, in id order (spawn order). */
    if (d.json) {
        json_key(&o, "tasks");
        out_ch(&o, '[');
    }
    int first = 1;
    size_t listed = 0;
    if (have_scratch) {
        for (size_t i = 0; i < n; i++) {
            tinfo *ti = &sc.info[i];
            if (folding && ti->group != i) continue;
            if (d.json) {
                if (!first) out_ch(&o, ',');
                out_task_json(&d, ti->t);
                if (folding && ti->group_count > 1) {
                    json_u64(&o, "folded", ti->group_count);
                    json_key(&o, "pattern");
                    out_pattern(&o, cio__task_name(ti->t), 1);
                }
                out_ch(&o, '}');
            } else if (folding && ti->group_count > 1) {
                out_fold_text(&d, &sc, i);
            } else {
                out_task_block(&d, ti->t);
            }
            first = 0;
            listed++;
        }
    } else {
        for (cio__link *l = loop->futures.next; l != &loop->futures; l = l->next) {
            cio_future *f = CIO__CONTAINER_OF(l, cio_future, loop_link);
            if (!pending_task(f)) continue;
            if (d.json) {
                if (!first) out_ch(&o, ',');
                out_task_json(&d, cio__task_of(f));
                out_ch(&o, '}');
            } else {
                out_task_block(&d, cio__task_of(f));
            }
            first = 0;
            listed++;
        }
    }
    if (d.json) out_ch(&o, ']');

    if (have_scratch) {
        if (flags & CIO_DUMP_GRAPH) {
            build_tree(&d, &sc);
            out_graph(&d, &sc);
            out_waited_on(&d, &sc);
        }
        out_cycles(&d, &sc);
        if (flags & CIO_DUMP_STACKS) out_census(&d);
    } else if (!d.json) {
        cio__out_str(&o, "(graph, fold and cycles left out: no memory for them)\n");
    }
    cio__out_str(&o, d.json ? "}\n" : "end cio-dump\n");
    cio__out_flush(&o);

    if (have_scratch) scratch_free(&sc);
    free(d.syms);
    free(by_id);
    if (buf != small) free(buf);
    return o.err < 0 ? o.err : (int)(listed > INT32_MAX ? INT32_MAX : listed);
}

/* ---- on request, on a signal, at close ---------------------------------- */

static void dump_hook(cio_loop *loop, int at_close);

/* The core calls the dump through a hook (it may not call up); linking
 * this file registers it. */
__attribute__((constructor)) static void register_dump_hook(void) {
    atomic_store(&cio__dump_hook, dump_hook);
}

/* Debug mode at loop close: the tasks that never finished, dumped into
 * memory and handed to the exception handler as one report (the default
 * handler prints it to stderr). */
static void report_unfinished(cio_loop *loop) {
    size_t live = loop->live_tasks;
    int mfd = memfd_create("cio-dump", MFD_CLOEXEC);
    char *text = NULL;
    if (mfd >= 0) {
        if (cio_dump(loop, mfd, CIO_DUMP_STACKS | CIO_DUMP_GRAPH) >= 0) {
            off_t size = lseek(mfd, 0, SEEK_END);
            if (size > 0 && (text = malloc((size_t)size + 128)) != NULL) {
                int head = snprintf(text, 128, "loop closed with %zu task(s) that never finished:\n",
                                    live);
                ssize_t got = pread(mfd, text + head, (size_t)size, 0);
                if (got < 0) got = 0;
                /* The handler ends the message with its own newline. */
                if (got > 0 && text[head + got - 1] == '\n') got--;
                text[head + got] = '\0';
            }
        }
        close(mfd);
    }
    cio_error_context ctx = {
        .message = text ? text : "loop closed with tasks that never finished (no dump: out of memory)"};
    cio_loop_call_exception_handler(loop, &ctx);
    free(text);
}

/* cio__dump_each_iteration's loop (a test's), and its settings. */
static _Atomic(cio_loop *) each_loop;
static int each_fd;
static unsigned each_flags;
static uint64_t each_count;

int cio__dump_each_iteration(cio_loop *loop, int fd, unsigned flags) {
    if (loop && (fd < 0 || (flags & ~ALL_FLAGS))) return -EINVAL;
    each_fd = fd;
    each_flags = flags;
    each_count = 0;
    atomic_store(&each_loop, loop);
    return loop ? cio_dump_request(loop) : 0;
}

uint64_t cio__dump_each_iteration_count(void) {
    return each_count;
}

static void dump_hook(cio_loop *loop, int at_close) {
    if (at_close) {
        report_unfinished(loop);
        return;
    }
    if (loop == atomic_load(&each_loop)) {
        cio_dump(loop, each_fd, each_flags);
        each_count++;
        cio_dump_request(loop); /* and again at the next iteration */
        return;
    }
    /* A server with thousands of tasks is read folded. */
    unsigned flags = CIO_DUMP_STACKS | CIO_DUMP_GRAPH;
    if (loop->live_tasks > 100) flags |= CIO_DUMP_FOLD;
    cio_dump(loop, loop->dump_fd >= 0 ? loop->dump_fd : STDERR_FILENO, flags);
}

int cio_dump_request(cio_loop *loop) {
    if (!loop) return -EINVAL;
    if (loop->generation != cio__fork_generation) return -CIO_EFORKED;
    /* Through the gate close waits at (core/loop.h): the backend woken
     * below is still there. */
    atomic_fetch_add(&loop->dump_requesters, 1);
    if (atomic_load(&loop->dump_refused)) {
        atomic_fetch_sub(&loop->dump_requesters, 1);
        return -CIO_ELOOPCLOSED;
    }
    atomic_store(&cio__dump_hook, dump_hook);
    /* The inbox's wake-up without a job, as a signal handler does
     * (core/signal.c): every call here is async-signal-safe. */
    atomic_store(&loop->dump_requested, 1);
    atomic_store(&loop->inbox_posted, 1);
    if (atomic_exchange(&loop->inbox_sleeping, 0)) loop->io.backend->wake(&loop->io);
    atomic_fetch_sub(&loop->dump_requesters, 1);
    return 0;
}

static void on_dump_signal(cio_loop *loop, void *arg) {
    (void)arg;
    cio_dump_request(loop);
}

int cio_loop_set_dump_signal(cio_loop *loop, int signo, int fd) {
    if (!loop || fd < -1) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    if (signo != 0) {
        rc = cio_add_signal_handler(loop, signo, on_dump_signal, NULL);
        if (rc < 0) return rc;
    }
    if (loop->dump_signal && loop->dump_signal != signo)
        cio_remove_signal_handler(loop, loop->dump_signal);
    loop->dump_signal = signo;
    loop->dump_fd = fd;
    atomic_store(&cio__dump_hook, dump_hook);
    return 0;
}
