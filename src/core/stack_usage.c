/*
 * Stack accounting (issue 12, item 6): how deep each task's stack went, per
 * task and per spawn site.
 *
 * Two measures. The cheap one is kept always: the lowest stack pointer seen
 * when the task was switched out (task.c, one compare per switch). It is a
 * lower bound, since a task goes deeper between two switches (any call it
 * makes and returns from). The exact one is measured on demand by scanning
 * the stack from its low end for the first word that is not zero
 * (cio__stack_high_water): fresh anonymous memory reads zero, so that word
 * is the deepest one ever written.
 *
 * A stack reused from the pool still holds its previous task's data, which
 * the scan cannot tell from the new task's. In debug mode each task's stack
 * is therefore measured when the task ends (its mark goes into the census
 * of its spawn site) and the pages down to that mark are given back to the
 * kernel (MADV_DONTNEED), so the next task starts from zero pages and its
 * mark is its own. Outside debug mode stacks go back as they are, to keep
 * spawning free of system calls; a task that got such a stack reports an
 * upper bound, and the census says so.
 *
 * The census keeps, per spawn site, the largest exact mark of the tasks
 * that ended (debug mode) and, when printed, of the tasks alive at that
 * moment, like libdill's census: "src/app.c:88 max 5120 of 16384 B (31%)".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "task.h"

typedef struct census_site {
    const char *site;  /* "file.c:42", or NULL: pc says where */
    const void *pc;
    size_t max_mark;   /* bytes */
    size_t stack_size; /* of the task that set max_mark */
    uint64_t tasks;    /* tasks counted */
    uint8_t upper;     /* some mark counted an earlier task's data */
} census_site;

typedef struct cio__stack_census {
    census_site *sites;
    size_t count, cap;
} cio__stack_census;

static bool same_site(const census_site *s, const char *site, const void *pc) {
    if (site || s->site) return site && s->site && (site == s->site || strcmp(site, s->site) == 0);
    return s->pc == pc;
}

/* Adds one task's mark to the sites array (a linear search: a program has
 * few spawn sites). Returns -ENOMEM if the array cannot grow. */
static int add_mark(census_site **sites, size_t *count, size_t *cap, const cio__task *t,
                    size_t mark, bool upper) {
    census_site *s = NULL;
    for (size_t i = 0; i < *count && !s; i++)
        if (same_site(&(*sites)[i], t->spawn_site, t->spawn_pc)) s = &(*sites)[i];
    if (!s) {
        if (*count == *cap) {
            size_t grown_cap = *cap ? *cap * 2 : 16;
            census_site *grown = cio__realloc(*sites, grown_cap * sizeof *grown);
            if (!grown) return -ENOMEM;
            *sites = grown;
            *cap = grown_cap;
        }
        s = &(*sites)[(*count)++];
        memset(s, 0, sizeof *s);
        s->site = t->spawn_site;
        s->pc = t->spawn_pc;
    }
    s->tasks++;
    if (mark >= s->max_mark) {
        s->max_mark = mark;
        s->stack_size = t->stack.size;
        s->upper = upper;
    }
    return 0;
}

size_t cio__task_stack_high_water(const cio__task *t) {
    if (!t->stack.lo) return t->stack_mark;
    /* The running task's stack pointer is here; a suspended one's is saved. */
    volatile char here = 0;
    const void *sp = cio_current_task() == &t->fut ? (const void *)&here : t->ctx.sp;
    size_t mark = cio__stack_high_water(&t->stack, sp);
    /* The words a switch saved at the lowest stack pointer may all be zero
     * (registers holding zero): the bound from that pointer is still a
     * bound, and it may be a few words deeper than the first non-zero one. */
    size_t low = (size_t)((const char *)t->stack.lo + t->stack.size - (const char *)t->stack_low_sp);
    return mark > low ? mark : low;
}

void cio__task_stack_account(cio__task *t) {
    cio_loop *loop = t->fut.loop;
    size_t mark = cio__task_stack_high_water(t);
    t->stack_mark = mark;
    cio__stack_census *c = loop->stack_census;
    if (!c && (c = cio__malloc(sizeof *c)) != NULL) {
        memset(c, 0, sizeof *c);
        loop->stack_census = c;
    }
    /* Without memory the census misses this task; nothing else fails. */
    if (c) (void)add_mark(&c->sites, &c->count, &c->cap, t, mark, !t->stack.wiped);
    cio__stack_wipe(&t->stack, mark);
}

void cio__stack_census_free(cio_loop *loop) {
    cio__stack_census *c = loop->stack_census;
    if (!c) return;
    cio__free(c->sites);
    cio__free(c);
    loop->stack_census = NULL;
}

ssize_t cio_task_stack_high_water(const cio_task *task) {
    if (!task || task->kind != CIO__KIND_TASK) return -EINVAL;
    int rc = cio__loop_check_thread(task->loop);
    if (rc < 0) return rc;
    const cio__task *t = cio__task_of(task);
    if (!t->stack.lo && !t->stack_mark) return -ENODATA;
    return (ssize_t)cio__task_stack_high_water(t);
}

static int by_mark_descending(const void *a, const void *b) {
    const census_site *x = a, *y = b;
    return x->max_mark < y->max_mark ? 1 : x->max_mark > y->max_mark ? -1 : 0;
}

int cio_loop_stack_census(cio_loop *loop, FILE *out) {
    if (!loop || !out) return -EINVAL;
    int rc = cio__loop_check_thread(loop);
    if (rc < 0) return rc;
    /* The recorded sites, then every live task's mark measured now. */
    census_site *sites = NULL;
    size_t count = 0, cap = 0;
    const cio__stack_census *c = loop->stack_census;
    if (c && c->count) {
        sites = cio__malloc(c->count * sizeof *sites);
        if (!sites) return -ENOMEM;
        memcpy(sites, c->sites, c->count * sizeof *sites);
        count = cap = c->count;
    }
    for (cio__link *l = loop->futures.next; l != &loop->futures; l = l->next) {
        cio_future *f = CIO__CONTAINER_OF(l, cio_future, loop_link);
        if (f->kind != CIO__KIND_TASK) continue;
        cio__task *t = cio__task_of(f);
        if (!t->stack.lo) continue;
        if (add_mark(&sites, &count, &cap, t, cio__task_stack_high_water(t), !t->stack.wiped) < 0) {
            cio__free(sites);
            return -ENOMEM;
        }
    }
    if (count) qsort(sites, count, sizeof *sites, by_mark_descending);
    for (size_t i = 0; i < count; i++) {
        const census_site *s = &sites[i];
        char where[512];
        if (s->site)
            snprintf(where, sizeof where, "%s", s->site);
        else
            cio__stack_format_pc(where, sizeof where, s->pc);
        fprintf(out, "%s max %zu of %zu B (%zu%%), %llu task%s%s\n", where, s->max_mark,
                s->stack_size, s->stack_size ? s->max_mark * 100 / s->stack_size : 0,
                (unsigned long long)s->tasks, s->tasks == 1 ? "" : "s",
                s->upper ? " (upper bound: a reused stack not wiped)" : "");
    }
    cio__free(sites);
    return (int)count;
}
