/*
 * The task dump (cio_dump) and the await graph: what each task waits on,
 * its frames, the spawn tree, folding, deadlock cycles, the dump on a
 * signal and at a debug-mode close, and that a dump changes nothing
 * (debuggability.md §7.9, tests 1-4 and the first half of 14).
 *
 * The coroutines are not static: the dump names frames through dladdr,
 * which sees only the symbols the program exports (-rdynamic).
 */
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

/* The dump as a string (malloc'd), through a memory file. */
static char *dump_string(cio_loop *loop, unsigned flags, int *listed) {
    int fd = memfd_create("dump", MFD_CLOEXEC);
    CHECK(fd >= 0);
    int rc = cio_dump(loop, fd, flags);
    if (rc < 0) FAIL("cio_dump: %s", cio_strerror(rc));
    if (listed) *listed = rc;
    off_t size = lseek(fd, 0, SEEK_END);
    CHECK(size > 0);
    char *text = malloc((size_t)size + 1);
    CHECK(text != NULL);
    CHECK_EQ(pread(fd, text, (size_t)size, 0), size);
    text[size] = '\0';
    close(fd);
    return text;
}

/* The block of the task named name: from its "task N "name"" line up to
 * the next line that does not start with two spaces (malloc'd). */
static char *task_block(const char *text, const char *name) {
    char want[128];
    snprintf(want, sizeof want, " \"%s\" ", name);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (strncmp(line, "task ", 5) == 0) {
            const char *q = strstr(line, want);
            if (q && q < end) {
                const char *stop = end;
                while (*stop == '\n' && stop[1] == ' ' && stop[2] == ' ') {
                    const char *next = strchr(stop + 1, '\n');
                    stop = next ? next : stop + 1 + strlen(stop + 1);
                }
                size_t n = (size_t)(stop - line);
                char *block = malloc(n + 1);
                CHECK(block != NULL);
                memcpy(block, line, n);
                block[n] = '\0';
                return block;
            }
        }
        line = *end ? end + 1 : end;
    }
    FAIL("no block for task \"%s\" in:\n%s", name, text);
}

/* The line of text containing needle (a copy), or NULL. */
static char *line_with(const char *text, const char *needle) {
    const char *hit = strstr(text, needle);
    if (!hit) return NULL;
    const char *start = hit;
    while (start > text && start[-1] != '\n') start--;
    const char *end = strchr(hit, '\n');
    if (!end) end = hit + strlen(hit);
    char *line = malloc((size_t)(end - start) + 1);
    CHECK(line != NULL);
    memcpy(line, start, (size_t)(end - start));
    line[end - start] = '\0';
    return line;
}

static size_t count_lines_starting(const char *text, const char *prefix) {
    size_t n = 0, k = strlen(prefix);
    for (const char *line = text; *line;) {
        if (strncmp(line, prefix, k) == 0) n++;
        const char *end = strchr(line, '\n');
        if (!end) break;
        line = end + 1;
    }
    return n;
}

/*
 * A JSON validity check (RFC 8259 grammar, no extensions): the dump's
 * JSON must parse. Recursive descent; returns the position after the
 * value, or NULL.
 */
static const char *json_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static const char *json_value(const char *p, int depth);

/* The length of a well-formed UTF-8 sequence at p, or 0 (JSON text is
 * UTF-8: RFC 8259 section 8.1). */
static size_t utf8_len(const unsigned char *p) {
    size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    if (p[0] < 0xc2 || p[0] > 0xf4) return 0;
    unsigned cp = p[0] & (len == 2 ? 0x1fu : len == 3 ? 0x0fu : 0x07u);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    unsigned min = len == 2 ? 0x80u : len == 3 ? 0x800u : 0x10000u;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

static const char *json_string(const char *p) {
    if (*p != '"') return NULL;
    for (p++; *p != '"'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) return NULL;
        if (c >= 0x80) {
            size_t len = utf8_len((const unsigned char *)p);
            if (len == 0) return NULL;
            p += len - 1;
            continue;
        }
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++) {
                    char h = p[i];
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
                        return NULL;
                }
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                return NULL;
            }
        }
    }
    return p + 1;
}

static const char *json_number(const char *p) {
    if (*p == '-') p++;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (*p >= '0' && *p <= '9') p++;
    } else {
        return NULL;
    }
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return NULL;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return NULL;
        while (*p >= '0' && *p <= '9') p++;
    }
    return p;
}

static const char *json_value(const char *p, int depth) {
    if (depth > 200) return NULL;
    p = json_ws(p);
    if (*p == '{') {
        p = json_ws(p + 1);
        if (*p == '}') return p + 1;
        for (;;) {
            p = json_string(json_ws(p));
            if (!p) return NULL;
            p = json_ws(p);
            if (*p != ':') return NULL;
            p = json_value(p + 1, depth + 1);
            if (!p) return NULL;
            p = json_ws(p);
            if (*p == '}') return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    if (*p == '[') {
        p = json_ws(p + 1);
        if (*p == ']') return p + 1;
        for (;;) {
            p = json_value(p, depth + 1);
            if (!p) return NULL;
            p = json_ws(p);
            if (*p == ']') return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    if (*p == '"') return json_string(p);
    if (strncmp(p, "true", 4) == 0) return p + 4;
    if (strncmp(p, "false", 5) == 0) return p + 5;
    if (strncmp(p, "null", 4) == 0) return p + 4;
    return json_number(p);
}

static int json_valid(const char *text) {
    const char *end = json_value(text, 0);
    return end && *json_ws(end) == '\0';
}

static uint64_t task_id(cio_task *t) {
    cio_task_info info;
    CHECK_OK(cio_task_get_info(t, &info));
    return info.id;
}

/* Lets every task spawned so far run up to its first suspension. */
static void settle(void) {
    for (int i = 0; i < 5; i++) CHECK_OK(cio_sleep(0));
}

static void *settle_task(void *arg) {
    (void)arg;
    settle();
    return NULL;
}

/* From outside the loop: runs it until every task waits. */
static void run_settle(cio_loop *loop) {
    CHECK_OK(test_run(loop, settle_task, NULL, NULL));
}

/* ---- test 1: what a dump shows ---------------------------------------- */

typedef struct scene {
    cio_future *never;  /* the waiter's future, set at the end */
    cio_lock *lock;
    cio_event *release; /* lets the holder go */
    int pipe_rd, pipe_wr;
    cio_task *child;
    cio_task *tasks[8];
    int site_lines[8];
    int dumped;
} scene;

void *dump_sleeper(void *arg) {
    (void)arg;
    int rc = cio_sleep(60);
    return IPTR(rc);
}

void *dump_waiter(void *arg) {
    scene *s = arg;
    return IPTR(cio_await(s->never, NULL));
}

void *dump_child_reads_pipe(void *arg) {
    scene *s = arg;
    int rc = cio_wait_readable(s->pipe_rd);
    if (rc < 0) return IPTR(rc);
    char c;
    return IPTR(read(s->pipe_rd, &c, 1) == 1 ? 0 : -1);
}

void *dump_parent_awaits_child(void *arg) {
    scene *s = arg;
    cio_task_options o = {.name = "child"};
    CHECK_OK(cio_spawn_with(cio_running_loop(), dump_child_reads_pipe, s, &o, &s->child));
    int rc = cio_await(s->child, NULL);
    return IPTR(rc);
}

void *dump_holder(void *arg) {
    scene *s = arg;
    CHECK_OK(cio_lock_acquire(s->lock));
    int rc = cio_event_wait(s->release);
    CHECK_OK(cio_lock_release(s->lock));
    return IPTR(rc);
}

void *dump_locker(void *arg) {
    scene *s = arg;
    int rc = cio_lock_acquire(s->lock);
    if (rc == 0) CHECK_OK(cio_lock_release(s->lock));
    return IPTR(rc);
}

static const char *const scene_names[] = {"sleeper", "waiter", "parent", "holder", "locker"};

/* Spawns the scene (each spawn on its own line, recorded) and lets it
 * settle: every task waits. */
static void build_scene(scene *s) {
    cio_loop *loop = cio_running_loop();
    cio_task_options o = {0};
    o.name = "sleeper";
    s->site_lines[0] = __LINE__ + 1;
    CHECK_OK(cio_spawn_with(loop, dump_sleeper, s, &o, &s->tasks[0]));
    o.name = "waiter";
    s->site_lines[1] = __LINE__ + 1;
    CHECK_OK(cio_spawn_with(loop, dump_waiter, s, &o, &s->tasks[1]));
    o.name = "parent";
    s->site_lines[2] = __LINE__ + 1;
    CHECK_OK(cio_spawn_with(loop, dump_parent_awaits_child, s, &o, &s->tasks[2]));
    o.name = "holder";
    s->site_lines[3] = __LINE__ + 1;
    CHECK_OK(cio_spawn_with(loop, dump_holder, s, &o, &s->tasks[3]));
    settle(); /* the holder takes the lock before the locker asks */
    o.name = "locker";
    s->site_lines[4] = __LINE__ + 1;
    CHECK_OK(cio_spawn_with(loop, dump_locker, s, &o, &s->tasks[4]));
    settle();
}

/* Lets the scene end: every task finishes. */
static void end_scene(scene *s) {
    CHECK_OK(cio_future_set_result(s->never, NULL));
    CHECK_EQ(write(s->pipe_wr, "x", 1), 1);
    CHECK_OK(cio_event_set(s->release));
    CHECK_EQ(cio_task_cancel(s->tasks[0], NULL), 1);
    for (int i = 0; i < 5; i++) {
        cio_await(s->tasks[i], NULL);
        cio_future_unref(s->tasks[i]);
    }
    cio_future_unref(s->child);
}

void *dump_scene_main(void *arg) {
    scene *s = arg;
    cio_loop *loop = cio_running_loop();
    build_scene(s);

    char *text = dump_string(loop, CIO_DUMP_STACKS | CIO_DUMP_GRAPH, NULL);
    fprintf(stderr, "%s", text);
    CHECK(strncmp(text, "cio-dump 1 pid=", 15) == 0);
    CHECK(strstr(text, " tasks=7 ") != NULL); /* main, the five, the child */

    uint64_t child_id = task_id(s->child), holder_id = task_id(s->tasks[3]);
    uint64_t parent_id = task_id(s->tasks[2]);
    char want[256];
    for (int i = 0; i < 5; i++) {
        char *block = task_block(text, scene_names[i]);
        /* State, spawn site and the task's own function in a frame. */
        CHECK(strstr(block, " waiting ") != NULL);
        snprintf(want, sizeof want, "test_dump.c:%d ", s->site_lines[i]);
        const char *site = strstr(block, " spawned=");
        if (!site || !strstr(site, want)) FAIL("no spawn site \"%s\" in:\n%s", want, block);
        static const char *const fns[] = {"dump_sleeper+", "dump_waiter+",
                                          "dump_parent_awaits_child+", "dump_holder+",
                                          "dump_locker+"};
        if (!strstr(block, fns[i])) FAIL("no frame of %s in:\n%s", fns[i], block);
        free(block);
    }
    char *b = task_block(text, "sleeper");
    CHECK(strstr(b, "  wait: sleep until=") != NULL);
    /* cio's own functions are hidden (and task_entry is static): dladdr
     * cannot name them, the library's .symtab does. The task's first
     * frame is the task trampoline (task.c's task_entry, called by the
     * switch's cio__ctx_trampoline), and the innermost one the one
     * suspension path. */
    if (!strstr(b, " task_entry+0x") || !strstr(b, " cio__task_suspend+0x"))
        FAIL("cio's hidden functions unnamed in:\n%s", b);
    CHECK(strstr(b, "(+59.") != NULL || strstr(b, "(+60.") != NULL);
    free(b);
    b = task_block(text, "waiter");
    CHECK(strstr(b, "  wait: future 0x") != NULL);
    free(b);
    b = task_block(text, "parent");
    snprintf(want, sizeof want, "  wait: task %llu \"child\"", (unsigned long long)child_id);
    if (!strstr(b, want)) FAIL("no \"%s\" in:\n%s", want, b);
    free(b);
    b = task_block(text, "child");
    snprintf(want, sizeof want, "  wait: fd %d read", s->pipe_rd);
    if (!strstr(b, want)) FAIL("no \"%s\" in:\n%s", want, b);
    snprintf(want, sizeof want, " parent=%llu", (unsigned long long)parent_id);
    CHECK(strstr(b, want) != NULL);
    CHECK(strstr(b, "dump_child_reads_pipe+") != NULL);
    free(b);
    b = task_block(text, "locker");
    snprintf(want, sizeof want, "(owner %llu \"holder\")", (unsigned long long)holder_id);
    if (!strstr(b, "  wait: lock 0x") || !strstr(b, want)) FAIL("no lock owner in:\n%s", b);
    free(b);
    b = task_block(text, "holder");
    CHECK(strstr(b, "  wait: event 0x") != NULL);
    free(b);

    /* The graph nests the child under its parent, one level deeper. */
    const char *graph = strstr(text, "\ngraph:\n");
    CHECK(graph != NULL);
    snprintf(want, sizeof want, "(T) %llu \"parent\"", (unsigned long long)parent_id);
    char *pl = line_with(graph, want);
    snprintf(want, sizeof want, "(T) %llu \"child\"", (unsigned long long)child_id);
    char *cl = line_with(graph, want);
    CHECK(pl != NULL && cl != NULL);
    CHECK(strstr(graph, pl) < strstr(graph, cl));
    size_t pindent = (size_t)(strstr(pl, "(T)") - pl), cindent = (size_t)(strstr(cl, "(T)") - cl);
    CHECK(cindent > pindent);
    CHECK(strstr(cl, "── (T)") != NULL);
    CHECK(strstr(cl, "[fd ") != NULL);
    free(pl);
    free(cl);
    /* Who waits on what: the lock, with the locker. */
    CHECK(strstr(text, "\nwaited-on:\n") != NULL);
    CHECK(strstr(text, "\nend cio-dump\n") != NULL);
    CHECK(strstr(text, "\ncycle:") == NULL);
    free(text);

    /* The same dump as JSON parses, and says the same things. */
    int listed = 0;
    text = dump_string(loop, CIO_DUMP_STACKS | CIO_DUMP_GRAPH | CIO_DUMP_JSON, &listed);
    CHECK_EQ(listed, 7);
    if (!json_valid(text)) FAIL("invalid JSON:\n%s", text);
    CHECK(strstr(text, "\"name\":\"sleeper\"") != NULL);
    CHECK(strstr(text, "\"kind\":\"lock\"") != NULL);
    CHECK(strstr(text, "\"dir\":\"read\"") != NULL);
    CHECK(strstr(text, "\"symbol\":\"dump_locker\"") != NULL);
    CHECK(strstr(text, "\"graph\":[") != NULL);
    free(text);
    /* And folded JSON too. */
    text = dump_string(loop, CIO_DUMP_FOLD | CIO_DUMP_JSON | CIO_DUMP_GRAPH, NULL);
    if (!json_valid(text)) FAIL("invalid JSON:\n%s", text);
    free(text);

    end_scene(s);
    s->dumped = 1;
    return NULL;
}

static void run_scene(void) {
    cio_loop *loop = test_loop();
    scene s = {0};
    int fds[2];
    CHECK_OK(pipe2(fds, O_NONBLOCK | O_CLOEXEC));
    s.pipe_rd = fds[0];
    s.pipe_wr = fds[1];
    CHECK_OK(cio_future_new(loop, &s.never));
    CHECK_OK(cio_lock_new(&s.lock));
    CHECK_OK(cio_event_new(&s.release));
    cio_task_options o = {.name = "main"};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, dump_scene_main, &s, &o, &t));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    CHECK(s.dumped);
    cio_future_unref(s.never);
    CHECK_OK(cio_lock_free(s.lock));
    CHECK_OK(cio_event_free(s.release));
    close(fds[0]);
    close(fds[1]);
    CHECK_OK(cio_loop_free(loop));
}

TEST(dump_shows_names_states_waits_sites_frames_and_the_tree) {
    run_scene();
}

/* ---- test 3: deadlock cycles ------------------------------------------ */

typedef struct cycle_case {
    cio_future *fut;
    cio_task *a, *b;
    cio_lock *l1, *l2;
    cio_event *go;
} cycle_case;

void *cycle_b_awaits_future(void *arg) {
    cycle_case *c = arg;
    return IPTR(cio_await(c->fut, NULL));
}

/* A makes the future (so it is the one expected to set it), hands it to
 * B and awaits B: neither can go on. */
void *cycle_a_awaits_b(void *arg) {
    cycle_case *c = arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_future_new(loop, &c->fut));
    cio_task_options o = {.name = "B"};
    CHECK_OK(cio_spawn_with(loop, cycle_b_awaits_future, c, &o, &c->b));
    int rc = cio_await(c->b, NULL);
    return IPTR(rc);
}

TEST(dump_names_both_tasks_of_a_task_future_cycle) {
    cio_loop *loop = test_loop();
    cycle_case c = {0};
    cio_task_options o = {.name = "A"};
    CHECK_OK(cio_spawn_with(loop, cycle_a_awaits_b, &c, &o, &c.a));
    run_settle(loop);
    char *text = dump_string(loop, 0, NULL);
    fprintf(stderr, "%s", text);
    char *line = line_with(text, "cycle: ");
    if (!line) FAIL("no cycle line in:\n%s", text);
    char wa[64], wb[64];
    snprintf(wa, sizeof wa, "%llu \"A\"", (unsigned long long)task_id(c.a));
    snprintf(wb, sizeof wb, "%llu \"B\"", (unsigned long long)task_id(c.b));
    if (!strstr(line, wa) || !strstr(line, wb)) FAIL("cycle line without A and B: %s", line);
    CHECK(strstr(line, "-> task ") != NULL);
    CHECK(strstr(line, "-> future 0x") != NULL);
    CHECK(strstr(line, "(created by ") != NULL);
    CHECK_EQ(count_lines_starting(text, "cycle: "), 1);
    free(line);
    free(text);
    /* The JSON form lists the cycle too. */
    text = dump_string(loop, CIO_DUMP_JSON, NULL);
    CHECK(json_valid(text));
    CHECK(strstr(text, "\"cycles\":[{\"tasks\":[") != NULL);
    free(text);
    /* Setting the future ends both; the dump then finds no cycle. */
    CHECK_OK(cio_future_set_result(c.fut, NULL));
    CHECK_OK(cio_run_until_complete(loop, c.a, NULL));
    text = dump_string(loop, 0, NULL);
    CHECK(strstr(text, "cycle:") == NULL);
    free(text);
    cio_future_unref(c.fut);
    cio_future_unref(c.a);
    cio_future_unref(c.b);
    CHECK_OK(cio_loop_free(loop));
}

/* Two tasks each holding the lock the other asks for. */
void *cycle_lock_first(void *arg) {
    cycle_case *c = arg;
    CHECK_OK(cio_lock_acquire(c->l1));
    CHECK_OK(cio_event_wait(c->go));
    int rc = cio_lock_acquire_until(c->l2, cio_loop_time(cio_running_loop()) + 3600);
    if (rc == 0) CHECK_OK(cio_lock_release(c->l2));
    CHECK_OK(cio_lock_release(c->l1));
    return IPTR(rc);
}

void *cycle_lock_second(void *arg) {
    cycle_case *c = arg;
    CHECK_OK(cio_lock_acquire(c->l2));
    CHECK_OK(cio_event_wait(c->go));
    int rc = cio_lock_acquire(c->l1);
    if (rc == 0) CHECK_OK(cio_lock_release(c->l1));
    CHECK_OK(cio_lock_release(c->l2));
    return IPTR(rc);
}

TEST(dump_names_both_owners_of_a_lock_cycle) {
    cio_loop *loop = test_loop();
    cycle_case c = {0};
    CHECK_OK(cio_lock_new(&c.l1));
    CHECK_OK(cio_lock_new(&c.l2));
    CHECK_OK(cio_event_new(&c.go));
    cio_task_options o = {.name = "first"};
    CHECK_OK(cio_spawn_with(loop, cycle_lock_first, &c, &o, &c.a));
    o.name = "second";
    CHECK_OK(cio_spawn_with(loop, cycle_lock_second, &c, &o, &c.b));
    run_settle(loop);
    CHECK_OK(cio_event_set(c.go));
    run_settle(loop);
    char *text = dump_string(loop, CIO_DUMP_STACKS, NULL);
    fprintf(stderr, "%s", text);
    char *line = line_with(text, "cycle: ");
    if (!line) FAIL("no cycle line in:\n%s", text);
    CHECK(strstr(line, "\"first\"") != NULL && strstr(line, "\"second\"") != NULL);
    CHECK(strstr(line, "-> lock 0x") != NULL && strstr(line, "(owner ") != NULL);
    /* The wait with a deadline says how far it is. */
    char *b = task_block(text, "first");
    CHECK(strstr(b, " deadline=+3599.") != NULL || strstr(b, " deadline=+3600.") != NULL);
    free(b);
    free(line);
    free(text);
    /* Cancelling one breaks the cycle. */
    CHECK_EQ(cio_task_cancel(c.b, NULL), 1);
    CHECK_ERR(cio_run_until_complete(loop, c.b, NULL), -ECANCELED);
    CHECK_OK(cio_run_until_complete(loop, c.a, NULL));
    cio_future_unref(c.a);
    cio_future_unref(c.b);
    CHECK_OK(cio_lock_free(c.l1));
    CHECK_OK(cio_lock_free(c.l2));
    CHECK_OK(cio_event_free(c.go));
    CHECK_OK(cio_loop_free(loop));
}

/* ---- test 4: folding ---------------------------------------------------- */

void *fold_blocked_on_event(void *arg) {
    return IPTR(cio_event_wait((cio_event *)arg));
}

/* The same name pattern and wait, from other code: its own group. */
void *fold_blocked_elsewhere(void *arg) {
    int rc = cio_event_wait((cio_event *)arg);
    return IPTR(rc);
}

TEST(fold_makes_a_thousand_identical_tasks_one_line) {
    cio_loop *loop = test_loop();
    cio_event *ev;
    CHECK_OK(cio_event_new(&ev));
    cio_task *tasks[1000];
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "blocked-%d", i);
        cio_task_options o = {.name = name, .stack_size = CIO_MIN_STACK_SIZE * 2};
        CHECK_OK(cio_spawn_with(loop, fold_blocked_on_event, ev, &o, &tasks[i]));
    }
    cio_task *elsewhere[10];
    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "blocked-%d", 1000 + i);
        cio_task_options o = {.name = name};
        CHECK_OK(cio_spawn_with(loop, fold_blocked_elsewhere, ev, &o, &elsewhere[i]));
    }
    cio_task_options o = {.name = "different"};
    cio_task *other;
    CHECK_OK(cio_spawn_with(loop, dump_sleeper, NULL, &o, &other));
    run_settle(loop);
    int listed = 0;
    char *text = dump_string(loop, CIO_DUMP_FOLD | CIO_DUMP_STACKS | CIO_DUMP_GRAPH, &listed);
    fprintf(stderr, "%.3000s\n", text);
    CHECK_EQ(count_lines_starting(text, "x1000 tasks \"blocked-*\" waiting event"), 1);
    char *graph = strstr(text, "\ngraph:\n");
    CHECK(graph != NULL);
    *graph = '\0'; /* the task section alone: one fold line in it */
    CHECK_EQ(count_lines_starting(text, "x"), 2);
    CHECK_EQ(count_lines_starting(text, "x10 tasks \"blocked-*\" waiting event at fold_blocked_elsewhere+"), 1);
    CHECK(strstr(text, "\"blocked-1\"") == NULL); /* no task of the group on its own */
    *graph = '\n';
    char *line = line_with(text, "x1000 tasks");
    CHECK(strstr(line, " at fold_blocked_on_event+") != NULL);
    free(line);
    CHECK(strstr(text, "\"different\" waiting") != NULL);
    CHECK_EQ(listed, 3); /* the two groups and the sleeper */
    /* The graph folds the siblings too, and who-waits-on counts them. */
    CHECK(strstr(text, "x1000 (T) \"blocked-*\" [event 0x") != NULL);
    CHECK(strstr(text, "x10 (T) \"blocked-*\" [event 0x") != NULL);
    CHECK(strstr(text, " <- x1010: ") != NULL);
    free(text);
    /* Without FOLD each is listed. */
    text = dump_string(loop, 0, &listed);
    CHECK_EQ(listed, 1011);
    CHECK_EQ(count_lines_starting(text, "task "), 1011);
    free(text);
    CHECK_EQ(cio_event_set(ev), 0);
    CHECK_EQ(cio_task_cancel(other, NULL), 1);
    for (int i = 0; i < 1000; i++) {
        CHECK_OK(cio_run_until_complete(loop, tasks[i], NULL));
        cio_future_unref(tasks[i]);
    }
    for (int i = 0; i < 10; i++) {
        CHECK_OK(cio_run_until_complete(loop, elsewhere[i], NULL));
        cio_future_unref(elsewhere[i]);
    }
    cio_run_until_complete(loop, other, NULL);
    cio_future_unref(other);
    CHECK_OK(cio_event_free(ev));
    CHECK_OK(cio_loop_free(loop));
}

/* ---- test 2: a dump changes nothing ------------------------------------ */

/*
 * A deterministic program on the virtual clock: 10,000 tasks with mixed
 * waits (sleeps, locks, an event, a queue, tasks awaiting tasks), each
 * appending (time, task, step) to a trace. Run once plain and once with a
 * dump at every iteration, the traces must be byte-identical.
 */
#define TRACE_TASKS 10000

typedef struct trace_rec {
    int64_t t;
    int32_t task;
    int32_t step;
} trace_rec;

typedef struct world {
    cio_lock *locks[97];
    cio_event *event;
    cio_queue *queue;
    cio_task *tasks[TRACE_TASKS];
    trace_rec *trace;
    size_t len, cap;
    uint64_t seed;
    double dump_seconds; /* the timed dump of every task waiting */
    double dump_cpu_seconds;
    int64_t start_ns;
    int timed;
} world;

static world *the_world;

static void trace(int task, int step) {
    world *w = the_world;
    CHECK(w->len < w->cap);
    /* The virtual clock starts at the real time the loop was made: the
     * trace keeps the time since then. */
    w->trace[w->len++] =
        (trace_rec){cio_loop_time_ns(cio_running_loop()) - w->start_ns, task, step};
}

/* Deterministic per-task durations, in half seconds up to 10 s (few
 * distinct deadlines: the run with a dump at every iteration stays short). */
static double pseudo_delay(int task, int round) {
    uint64_t x = (uint64_t)task * 2654435761u + (uint64_t)round * 40503u + the_world->seed;
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    x ^= x >> 15;
    return (double)(x % 20) / 2.0;
}

void *trace_worker(void *arg) {
    int i = PTRI(arg);
    world *w = the_world;
    trace(i, 0);
    switch (i % 5) {
    case 0: /* sleeps */
        for (int r = 0; r < 3; r++) {
            CHECK_OK(cio_sleep(pseudo_delay(i, r)));
            trace(i, 1 + r);
        }
        break;
    case 1: /* a lock, held across a yield */
        CHECK_OK(cio_lock_acquire(w->locks[i % 97]));
        trace(i, 1);
        CHECK_OK(cio_sleep(0));
        CHECK_OK(cio_lock_release(w->locks[i % 97]));
        trace(i, 2);
        break;
    case 2: /* the event */
        CHECK_OK(cio_event_wait(w->event));
        trace(i, 1);
        break;
    case 3: { /* a queue item */
        void *item;
        CHECK_OK(cio_queue_get(w->queue, &item));
        trace(i, 1 + PTRI(item) % 1000);
        break;
    }
    case 4: /* produce, then await the task before */
        CHECK_OK(cio_sleep(pseudo_delay(i, 1)));
        CHECK_OK(cio_queue_put(w->queue, IPTR(i)));
        trace(i, 1);
        CHECK_OK(cio_await(w->tasks[i - 1], NULL));
        trace(i, 2);
        break;
    }
    return NULL;
}

void *trace_main(void *arg) {
    (void)arg;
    world *w = the_world;
    cio_loop *loop = cio_running_loop();
    for (int i = 0; i < TRACE_TASKS; i++) {
        cio_task_options o = {.stack_size = CIO_MIN_STACK_SIZE * 2};
        CHECK_OK(cio_spawn_with(loop, trace_worker, IPTR(i), &o, &w->tasks[i]));
    }
    settle();
    if (w->timed) {
        /* Every task waits now: time one full dump of them. */
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        struct timespec a, b, ca, cb;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
        int listed = cio_dump(loop, fd, CIO_DUMP_STACKS | CIO_DUMP_GRAPH);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
        clock_gettime(CLOCK_MONOTONIC, &b);
        w->dump_cpu_seconds =
            (double)(cb.tv_sec - ca.tv_sec) + (double)(cb.tv_nsec - ca.tv_nsec) / 1e9;
        /* The few that are already done are not listed. */
        CHECK_EQ(listed, cio_all_tasks(loop, NULL, 0));
        CHECK(listed > TRACE_TASKS * 9 / 10);
        w->dump_seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        close(fd);
    }
    CHECK_OK(cio_sleep(5));
    trace(-1, 1);
    CHECK_OK(cio_event_set(w->event));
    for (int i = 0; i < TRACE_TASKS; i++) {
        CHECK_OK(cio_await(w->tasks[i], NULL));
        cio_future_unref(w->tasks[i]);
    }
    trace(-1, 2);
    return NULL;
}

/* One run; dump_fd >= 0 dumps at every iteration. Returns the dumps. */
static uint64_t run_world(world *w, int dump_fd) {
    the_world = w;
    cio_loop_options opts = {.virtual_clock = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    for (int i = 0; i < 97; i++) CHECK_OK(cio_lock_new(&w->locks[i]));
    CHECK_OK(cio_event_new(&w->event));
    CHECK_OK(cio_queue_new(0, &w->queue));
    w->len = 0;
    w->start_ns = cio_loop_time_ns(loop);
    if (dump_fd >= 0)
        CHECK_OK(cio__dump_each_iteration(loop, dump_fd, CIO_DUMP_STACKS | CIO_DUMP_GRAPH | CIO_DUMP_FOLD));
    double start = cio_loop_time(loop);
    CHECK_OK(test_run(loop, trace_main, NULL, NULL));
    uint64_t dumps = cio__dump_each_iteration_count();
    CHECK_OK(cio__dump_each_iteration(NULL, -1, 0));
    double took = cio_loop_time(loop) - start;
    CHECK(took >= 5.0 && took < 30.0); /* virtual seconds */
    cio__loop_stats st = loop_stats(loop);
    fprintf(stderr, "run: %zu trace records, %" PRIu64 " iterations, %" PRIu64 " dumps\n",
            w->len, st.iterations, dumps);
    for (int i = 0; i < 97; i++) CHECK_OK(cio_lock_free(w->locks[i]));
    CHECK_OK(cio_event_free(w->event));
    CHECK_OK(cio_queue_free(w->queue));
    CHECK_OK(cio_loop_free(loop));
    return dumps;
}

TEST(dump_every_iteration_leaves_the_trace_byte_identical) {
    world *w = calloc(1, sizeof *w);
    CHECK(w != NULL);
    w->cap = (size_t)TRACE_TASKS * 8;
    w->trace = calloc(w->cap, sizeof *w->trace);
    trace_rec *plain = calloc(w->cap, sizeof *plain);
    CHECK(w->trace && plain);
    w->seed = 12345;
    w->timed = 1;
    CHECK_EQ(run_world(w, -1), 0);
    size_t plain_len = w->len;
    memcpy(plain, w->trace, plain_len * sizeof *plain);
    printf("dump of %d tasks (stacks and graph): %.1f ms (%.1f ms of CPU)\n", TRACE_TASKS + 1,
           w->dump_seconds * 1e3, w->dump_cpu_seconds * 1e3);
    fprintf(stderr, "dump of %d tasks (stacks and graph): %.1f ms (%.1f ms of CPU)\n",
            TRACE_TASKS + 1, w->dump_seconds * 1e3, w->dump_cpu_seconds * 1e3);
    /* The bound is on CPU time: the wall time of a sanitizer build on a
     * loaded 2-vCPU machine says more about the machine. */
    CHECK(w->dump_cpu_seconds < 1.0);

    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    w->timed = 0;
    uint64_t dumps = run_world(w, fd);
    close(fd);
    CHECK(dumps >= 50); /* the dumps did happen, many times */
    for (size_t i = 0; i < plain_len && i < w->len; i++) {
        trace_rec a = plain[i], b = w->trace[i];
        if (a.t != b.t || a.task != b.task || a.step != b.step)
            FAIL("traces differ at record %zu: t=%" PRId64 " task=%d step=%d plain, t=%" PRId64
                 " task=%d step=%d with dumps", i, a.t, a.task, a.step, b.t, b.task, b.step);
    }
    CHECK_EQ(w->len, plain_len);
    CHECK(memcmp(plain, w->trace, plain_len * sizeof *plain) == 0);
    CHECK(plain_len > (size_t)TRACE_TASKS * 2);
    free(plain);
    free(w->trace);
    free(w);
}

/* ---- test 14 (first half): a dump on a signal --------------------------- */

void *signal_sender(void *arg) {
    int *iterations_seen = arg;
    CHECK_OK(kill(getpid(), SIGUSR1));
    /* The signal's callback runs in the next batch and asks for the dump,
     * which the iteration after it makes. */
    for (int i = 0; i < 4; i++) {
        CHECK_OK(cio_sleep(0));
        (*iterations_seen)++;
    }
    return NULL;
}

TEST(sigusr1_gives_a_dump_at_the_next_iteration) {
    cio_loop *loop = test_loop();
    int fd = memfd_create("signal-dump", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_OK(cio_loop_set_dump_signal(loop, SIGUSR1, fd));
    cio_task_options o = {.name = "signaller"};
    cio_task *t;
    int seen = 0;
    CHECK_OK(cio_spawn_with(loop, signal_sender, &seen, &o, &t));
    cio_task *other;
    o.name = "bystander";
    CHECK_OK(cio_spawn_with(loop, dump_sleeper, NULL, &o, &other));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    off_t size = lseek(fd, 0, SEEK_END);
    CHECK(size > 0);
    char *text = calloc(1, (size_t)size + 1);
    CHECK_EQ(pread(fd, text, (size_t)size, 0), size);
    fprintf(stderr, "%s", text);
    CHECK(strncmp(text, "cio-dump 1 ", 11) == 0);
    CHECK_EQ(count_lines_starting(text, "cio-dump 1 "), 1);
    CHECK(strstr(text, "\"signaller\" scheduled") != NULL ||
          strstr(text, "\"signaller\" waiting") != NULL);
    char *b = task_block(text, "bystander");
    CHECK(strstr(b, "wait: sleep") != NULL && strstr(b, "dump_sleeper+") != NULL);
    free(b);
    CHECK(strstr(text, "\ngraph:\n") != NULL);
    free(text);
    /* A request made directly dumps too; signo 0 lets SIGUSR1 go. */
    CHECK_OK(cio_loop_set_dump_signal(loop, 0, fd));
    CHECK_OK(cio_dump_request(loop));
    CHECK_OK(test_run(loop, settle_task, NULL, NULL));
    CHECK(lseek(fd, 0, SEEK_END) > size);
    CHECK_EQ(cio_task_cancel(other, NULL), 1);
    cio_run_until_complete(loop, other, NULL);
    cio_future_unref(other);
    close(fd);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- debug mode: unfinished tasks dumped at close ----------------------- */

typedef struct reports {
    int count;
    char text[1 << 16];
} reports;

static void keep_report(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    reports *r = arg;
    r->count++;
    size_t used = strlen(r->text);
    snprintf(r->text + used, sizeof r->text - used, "%s\n", ctx->message);
}

TEST(debug_close_reports_the_dump_of_unfinished_tasks) {
    cio_loop_options opts = {.debug = 1};
    cio_loop *loop;
    CHECK_OK(cio_loop_new_with(&opts, &loop));
    reports *r = calloc(1, sizeof *r);
    CHECK_OK(cio_loop_set_exception_handler(loop, keep_report, r));
    cio_task_options o = {.name = "forgotten"};
    CHECK_OK(cio_spawn_with(loop, dump_sleeper, NULL, &o, NULL));
    run_settle(loop);
    CHECK_OK(cio_loop_close(loop));
    fprintf(stderr, "%s", r->text);
    CHECK(strstr(r->text, "loop closed with 1 task(s) that never finished:\ncio-dump 1 ") != NULL);
    char *b = task_block(r->text, "forgotten");
    CHECK(strstr(b, "wait: sleep") != NULL && strstr(b, "dump_sleeper+") != NULL);
    free(b);
    free(r);
    CHECK_OK(cio_loop_free(loop));
}

/* ---- the census of stack use per spawn site (test 11) ------------------ */

__attribute__((noinline)) static void census_touch(size_t n) {
    volatile char buf[10 * 1024];
    if (n > sizeof buf) n = sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = 1;
    CHECK_OK(cio_sleep(0));
}

static cio_event *census_release;

/* mode 1: deep (10 KiB); 0: shallow; 2: shallow, waiting until released. */
void *census_task(void *arg) {
    intptr_t mode = (intptr_t)arg;
    if (mode == 1) census_touch(10 * 1024);
    else if (mode == 2) CHECK_OK(cio_event_wait(census_release));
    else CHECK_OK(cio_sleep(0));
    return NULL;
}

static int census_site_line;

/* Every task of the test comes from this one line: one census site. */
static void census_spawn(cio_loop *loop, intptr_t mode, cio_task **t) {
    cio_task_options o = {.name = mode == 1 ? "deep" : "shallow", .stack_size = 64 * 1024};
    census_site_line = __LINE__ + 1;
    CHECK_OK(cio_spawn_with(loop, census_task, (void *)mode, &o, t));
}

TEST(dump_census_line_of_a_spawn_site_shows_its_maximum) {
    cio_loop *loop = test_loop();
    /* Debug mode: a task that ends is measured into the census, and its
     * stack wiped for the next one. */
    CHECK_OK(cio_loop_set_debug(loop, 1));
    cio_task *t;
    census_spawn(loop, 1, &t);
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    ssize_t deep = cio_task_stack_high_water(t);
    cio_future_unref(t);
    CHECK_INT(deep, >=, 10 * 1024);
    for (int i = 0; i < 2; i++) {
        census_spawn(loop, 0, &t);
        CHECK_OK(cio_run_until_complete(loop, t, NULL));
        cio_future_unref(t);
    }
    /* One more, alive (waiting) while the dump is taken: measured then. */
    CHECK_OK(cio_event_new(&census_release));
    census_spawn(loop, 2, &t);
    run_settle(loop);
    char *text = dump_string(loop, CIO_DUMP_STACKS, NULL);
    fprintf(stderr, "%s", text);
    const char *census = strstr(text, "\ncensus:\n");
    if (!census) FAIL("no census section in:\n%s", text);
    char want[256];
    snprintf(want, sizeof want, "test_dump.c:%d max %zd of 65536 B (%zd%%), 4 tasks\n",
             census_site_line, deep, deep * 100 / 65536);
    if (!strstr(census, want)) FAIL("no \"%s\" in:\n%s", want, census);
    /* The live task's own block has the cheap bound of its mark (from the
     * lowest stack pointer seen at a switch): a shallow one. */
    char *b = task_block(text, "shallow");
    const char *hw = strstr(b, " hwm>=");
    if (!hw) FAIL("no hwm>= in:\n%s", b);
    CHECK_INT(strtol(hw + 6, NULL, 10), <, 4096);
    CHECK_INT(strtol(hw + 6, NULL, 10), >, 0);
    free(b);
    free(text);
    /* The same in JSON. */
    text = dump_string(loop, CIO_DUMP_STACKS | CIO_DUMP_JSON, NULL);
    if (!json_valid(text)) FAIL("invalid JSON:\n%s", text);
    snprintf(want, sizeof want, "test_dump.c:%d\",\"max\":%zd,\"stack_size\":65536,", census_site_line,
             deep);
    const char *jc = strstr(text, "\"census\":[");
    if (!jc || !strstr(jc, want) || !strstr(strstr(jc, want), "\"tasks\":4,"))
        FAIL("no census site \"%s\" with 4 tasks in:\n%s", want, text);
    free(text);
    /* Without STACKS the dump measures nothing. */
    text = dump_string(loop, 0, NULL);
    CHECK(strstr(text, "census:") == NULL);
    free(text);
    CHECK_OK(cio_event_set(census_release));
    CHECK_OK(cio_run_until_complete(loop, t, NULL));
    cio_future_unref(t);
    CHECK_OK(cio_event_free(census_release));
    CHECK_OK(cio_loop_free(loop));
}

TEST(bad_arguments_are_refused) {
    cio_loop *loop = test_loop();
    CHECK_ERR(cio_dump(NULL, 1, 0), -EINVAL);
    CHECK_ERR(cio_dump(loop, -1, 0), -EINVAL);
    CHECK_ERR(cio_dump(loop, 1, 0x100), -EINVAL);
    CHECK_ERR(cio_dump_request(NULL), -EINVAL);
    CHECK_ERR(cio_loop_set_dump_signal(NULL, SIGUSR1, -1), -EINVAL);
    CHECK_ERR(cio_loop_set_dump_signal(loop, SIGUSR1, -2), -EINVAL);
    CHECK_ERR(cio_loop_set_dump_signal(loop, SIGKILL, -1), -EINVAL);
    CHECK_ERR(cio_loop_set_dump_signal(loop, 9999, -1), -EINVAL);
    /* A write error is reported. */
    CHECK_ERR(cio_dump(loop, 999, 0), -EBADF);
    /* An empty loop dumps its header and end. */
    char *text = dump_string(loop, CIO_DUMP_GRAPH | CIO_DUMP_FOLD | CIO_DUMP_STACKS, NULL);
    CHECK(strstr(text, " tasks=0 ") != NULL && strstr(text, "end cio-dump\n") != NULL);
    free(text);
    CHECK_OK(cio_loop_close(loop));
    CHECK_ERR(cio_dump(loop, 1, 0), -CIO_ELOOPCLOSED);
    CHECK_ERR(cio_dump_request(loop), -CIO_ELOOPCLOSED);
    CHECK_OK(cio_loop_free(loop));
}

/* Task names are the program's bytes: the JSON dump stays UTF-8 whatever
 * they hold (ill-formed bytes become U+FFFD; a folded pattern cut at 127
 * bytes never splits a character), and the text dump shows such bytes as
 * \xNN. Both used to copy the bytes as they were. */
static void *named_sleeper(void *arg) {
    (void)arg;
    (void)cio_sleep(10);
    return NULL;
}

static void *dump_odd_names(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    char long_name[256] = "conn-";
    for (int k = 0; k < 50; k++) strcat(long_name, "\xc3\xa9");   /* 105 bytes so far */
    for (int k = 0; k < 8; k++) strcat(long_name, "\xe2\x82\xac"); /* one ends past 127 */
    /* The last: a right-to-left override and CSI, well-formed UTF-8 that a
     * terminal would take as commands. */
    const char *names[] = {long_name, long_name, "bad-\xff\xfe-name", "half-\xe2\x82",
                           "rtl-\xe2\x80\xae-\xc2\x9b"};
    cio_task *ts[5];
    for (int i = 0; i < 5; i++) {
        cio_task_options o = {.name = names[i]};
        CHECK_OK(cio_spawn_with(loop, named_sleeper, NULL, &o, &ts[i]));
    }
    CHECK_OK(cio_sleep(0.001));
    unsigned flag_sets[] = {CIO_DUMP_JSON, CIO_DUMP_JSON | CIO_DUMP_FOLD,
                            CIO_DUMP_JSON | CIO_DUMP_GRAPH | CIO_DUMP_STACKS};
    for (int i = 0; i < 3; i++) {
        char *text = dump_string(loop, flag_sets[i], NULL);
        if (!json_valid(text)) FAIL("invalid JSON:\n%s", text);
        CHECK(strstr(text, "bad-\\ufffd\\ufffd-name") != NULL);
        CHECK(strstr(text, "half-\\ufffd\\ufffd") != NULL);
        CHECK(strstr(text, "rtl-\\u202e-\\u009b") != NULL);
        free(text);
    }
    char *text = dump_string(loop, 0, NULL);
    CHECK(strstr(text, "bad-\\xff\\xfe-name") != NULL);
    CHECK(strstr(text, "rtl-\\xe2\\x80\\xae-\\xc2\\x9b") != NULL);
    free(text);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(cio_task_cancel(ts[i], NULL), 1);
        CHECK_ERR(cio_await(ts[i], NULL), -ECANCELED);
        cio_future_unref(ts[i]);
    }
    return NULL;
}

/* A dump into a pipe whose reader has gone (`kill -USR1 server` read
 * through `| head`) is -EPIPE, not SIGPIPE's end of the program: the
 * signal's default action is in place here, so the old write killed the
 * test. Asked for with the dump signal, the loop goes on. */
TEST(a_dump_into_a_pipe_with_no_reader_is_epipe_not_sigpipe) {
    signal(SIGPIPE, SIG_DFL);
    cio_loop *loop = test_loop();
    int p[2];
    CHECK_OK(pipe(p));
    close(p[0]);
    CHECK_ERR(cio_dump(loop, p[1], 0), -EPIPE);
    CHECK_ERR(cio_dump(loop, p[1], CIO_DUMP_JSON), -EPIPE);
    CHECK_OK(cio_loop_set_dump_signal(loop, SIGUSR1, p[1]));
    CHECK_OK(kill(getpid(), SIGUSR1));
    CHECK_OK(test_run(loop, settle_task, NULL, NULL));
    CHECK_OK(cio_loop_set_dump_signal(loop, 0, p[1]));
    /* No SIGPIPE was left pending for the program either. */
    sigset_t pending;
    CHECK_OK(sigpending(&pending));
    CHECK(!sigismember(&pending, SIGPIPE));
    close(p[1]);
    CHECK_OK(cio_loop_free(loop));
}

/* A task's name as the text reports show it (the watchdog, the overflow
 * report, the default exception handler): control bytes, DEL, quotes,
 * the backslash and bytes that start no well-formed UTF-8 sequence as
 * \xNN, well-formed UTF-8 as it is; cut short before an escape or a
 * character that would not fit whole. */
TEST(report_names_escape_control_bytes_and_keep_utf8) {
    char out[128];
    CHECK_EQ(cio__name_text(out, sizeof out, "worker-1"), 8);
    CHECK_STR(out, "worker-1");
    cio__name_text(out, sizeof out, "a\x1b[31mb\nc'\"\\\x7f");
    CHECK_STR(out, "a\\x1b[31mb\\x0ac\\x27\\x22\\x5c\\x7f");
    cio__name_text(out, sizeof out, "caf\xc3\xa9 \xe2\x82\xac \xff \xc3 \xed\xa0\x80");
    CHECK_STR(out, "caf\xc3\xa9 \xe2\x82\xac \\xff \\xc3 \\xed\\xa0\\x80");
    /* Code points a terminal takes as commands, though well-formed: CSI
     * (U+009B), the line separator, a right-to-left override. */
    cio__name_text(out, sizeof out, "a\xc2\x9b" "2J b\xe2\x80\xa8 c\xe2\x80\xae");
    CHECK_STR(out, "a\\xc2\\x9b2J b\\xe2\\x80\\xa8 c\\xe2\\x80\\xae");
    /* Cut short: never half an escape or half a character. */
    CHECK_EQ(cio__name_text(out, 6, "ab\ncd"), 2);
    CHECK_STR(out, "ab");
    CHECK_EQ(cio__name_text(out, 5, "ab\xe2\x82\xac"), 2);
    CHECK_STR(out, "ab");
    CHECK_EQ(cio__name_text(out, 6, "ab\xe2\x82\xac"), 5);
    CHECK_EQ(cio__name_text(out, 1, "abc"), 0);
    CHECK_STR(out, "");
    CHECK_EQ(cio__name_text(out, 0, "abc"), 0);
}

/* The default exception handler names a task the same way: a name with a
 * newline and an escape sequence cannot forge a line or drive the
 * terminal. */
static void *fail_unretrieved(void *arg) {
    (void)arg;
    return cio_raise(-EIO);
}

TEST(default_exception_handler_escapes_the_task_name) {
    int fds[2];
    CHECK_OK(pipe(fds));
    fflush(stderr);
    int saved = dup(2);
    CHECK(saved >= 0);
    CHECK(dup2(fds[1], 2) == 2);
    cio_loop *loop = test_loop();
    cio_task_options opts = {.name = "evil\x1b]0;pwned\x07\ncio: fake line"};
    cio_task *t;
    CHECK_OK(cio_spawn_with(loop, fail_unretrieved, NULL, &opts, &t));
    CHECK_ERR(cio_run_until_complete(loop, t, NULL), -EIO);
    CHECK_OK(cio_loop_set_exception_handler(loop, NULL, NULL));
    cio__report(loop, "a report about a task", -EIO, t);
    fflush(stderr);
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    close(fds[1]);
    char out[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    if (!strstr(out, "task='evil\\x1b]0;pwned\\x07\\x0acio: fake line'")) FAIL("stderr said: %s", out);
    CHECK(strchr(out, '\x1b') == NULL);
    CHECK(strstr(out, "\ncio: fake line") == NULL);
    cio_future_unref(t);
    cio_loop_free(loop);
}

TEST(json_dumps_stay_utf8_whatever_bytes_task_names_hold) {
    cio_loop *loop = test_loop();
    CHECK_OK(test_run(loop, dump_odd_names, NULL, NULL));
    cio_loop_free(loop);
}
