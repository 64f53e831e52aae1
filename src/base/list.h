/*
 * An intrusive circular doubly linked list. A list is a sentinel link whose
 * next and prev point at itself when empty; elements embed a cio__link and
 * are recovered with CIO__CONTAINER_OF. Nothing here allocates.
 */
#ifndef CIO_LIST_H
#define CIO_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cio__link {
    struct cio__link *next;
    struct cio__link *prev;
} cio__link;

/* A job: a list element with a function to run. The ready queue holds
 * jobs, and everything that can be scheduled carries its own. */
typedef struct cio__job {
    cio__link link;
    void (*run)(struct cio__job *job);
} cio__job;

static inline void cio__list_init(cio__link *list) {
    list->next = list;
    list->prev = list;
}

static inline bool cio__list_empty(const cio__link *list) {
    return list->next == list;
}

/* A link that is in no list points at itself, so unlinking twice is safe. */
static inline bool cio__link_linked(const cio__link *link) {
    return link->next != link && link->next != NULL;
}

static inline void cio__list_push_back(cio__link *list, cio__link *link) {
    link->prev = list->prev;
    link->next = list;
    list->prev->next = link;
    list->prev = link;
}

/* Inserts link first: at the back of the (sub)list that ends before the
 * current first element. */
static inline void cio__list_push_front(cio__link *list, cio__link *link) {
    cio__list_push_back(list->next, link);
}

static inline void cio__list_unlink(cio__link *link) {
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->next = link;
    link->prev = link;
}

static inline cio__link *cio__list_pop_front(cio__link *list) {
    cio__link *first = list->next;
    if (first == list) return NULL;
    cio__list_unlink(first);
    return first;
}

/* Moves every element of from to the back of to, in order; from ends empty. */
static inline void cio__list_splice_back(cio__link *to, cio__link *from) {
    if (cio__list_empty(from)) return;
    cio__link *first = from->next, *last = from->prev;
    first->prev = to->prev;
    to->prev->next = first;
    last->next = to;
    to->prev = last;
    cio__list_init(from);
}

#endif
