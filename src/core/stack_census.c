/*
 * The census of stack marks per spawn site (issue 12, item 6), like
 * libdill's: "src/app.c:88 max 5120 of 16384 B (31%)". It keeps, per spawn
 * site, the largest exact mark of the tasks that ended in debug mode, and
 * when printed, those of the tasks alive at that moment (task.c measures
 * tasks and feeds it; this file knows stacks and sites, not tasks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "stack.h"

typedef struct census_site {
    const char *site;  /* "file.c:42", or NULL: pc says where */
    const void *pc;
    size_t max_mark;   /* bytes */
    size_t stack_size; /* of the task that set max_mark */
    uint64_t tasks;    /* tasks counted */
    uint8_t upper;     /* some mark counted an earlier task's data */
} census_site;

struct cio__stack_census {
    census_site *sites;
    size_t count, cap;
};

static bool same_site(const census_site *s, const char *site, const void *pc) {
    if (site || s->site) return site && s->site && (site == s->site || strcmp(site, s->site) == 0);
    return s->pc == pc;
}

int cio__stack_census_add(cio__stack_census **cp, const char *site, const void *pc, size_t mark,
                          size_t stack_size, bool upper) {
    cio__stack_census *c = *cp;
    if (!c) {
        if (!(c = cio__malloc(sizeof *c))) return -ENOMEM;
        memset(c, 0, sizeof *c);
        *cp = c;
    }
    /* A linear search: a program has few spawn sites. */
    census_site *s = NULL;
    for (size_t i = 0; i < c->count && !s; i++)
        if (same_site(&c->sites[i], site, pc)) s = &c->sites[i];
    if (!s) {
        if (c->count == c->cap) {
            size_t grown_cap = c->cap ? c->cap * 2 : 16;
            census_site *grown = cio__realloc(c->sites, grown_cap * sizeof *grown);
            if (!grown) return -ENOMEM;
            c->sites = grown;
            c->cap = grown_cap;
        }
        s = &c->sites[c->count++];
        memset(s, 0, sizeof *s);
        s->site = site;
        s->pc = pc;
    }
    s->tasks++;
    if (mark >= s->max_mark) {
        s->max_mark = mark;
        s->stack_size = stack_size;
        s->upper = upper;
    }
    return 0;
}

int cio__stack_census_copy(const cio__stack_census *c, cio__stack_census **out) {
    *out = NULL;
    if (!c || !c->count) return 0;
    cio__stack_census *copy = cio__malloc(sizeof *copy);
    census_site *sites = cio__malloc(c->count * sizeof *sites);
    if (!copy || !sites) {
        cio__free(copy);
        cio__free(sites);
        return -ENOMEM;
    }
    memcpy(sites, c->sites, c->count * sizeof *sites);
    copy->sites = sites;
    copy->count = copy->cap = c->count;
    *out = copy;
    return 0;
}



void cio__stack_census_free(cio__stack_census **cp) {
    cio__stack_census *c = *cp;
    if (!c) return;
    cio__free(c->sites);
    cio__free(c);
    *cp = NULL;
}


size_t cio__stack_census_count(const cio__stack_census *c) {
    return c ? c->count : 0;
}

void cio__stack_census_get(const cio__stack_census *c, size_t i, cio__stack_census_site *out) {
    const census_site *s = &c->sites[i];
    *out = (cio__stack_census_site){.site = s->site, .pc = s->pc, .max_mark = s->max_mark,
                                    .stack_size = s->stack_size, .tasks = s->tasks,
                                    .upper = s->upper != 0};
}

static int by_mark_descending(const void *a, const void *b) {
    const census_site *x = a, *y = b;
    return x->max_mark < y->max_mark ? 1 : x->max_mark > y->max_mark ? -1 : 0;
}

int cio__stack_census_print(cio__stack_census *c, FILE *out) {
    if (!c) return 0;
    census_site *sites = c->sites;
    size_t count = c->count;
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
    return (int)count;
}
