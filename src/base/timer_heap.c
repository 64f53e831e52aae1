/*
 * A 4-ary min-heap of timers (see timer_heap.h). Four children per node
 * halve the depth of a binary heap and keep siblings in one cache line, so
 * sifting down compares more keys but touches fewer lines.
 */
#include "timer_heap.h"

#include <errno.h>

#include "fault.h"

static inline int before(const cio__timer *a, const cio__timer *b) {
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(cio__timer_heap *heap, size_t i, cio__timer *t) {
    heap->items[i] = t;
    t->index = i;
}

static void sift_up(cio__timer_heap *heap, size_t i, cio__timer *t) {
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        cio__timer *p = heap->items[parent];
        if (!before(t, p)) break;
        place(heap, i, p);
        i = parent;
    }
    place(heap, i, t);
}

static void sift_down(cio__timer_heap *heap, size_t i, cio__timer *t) {
    size_t n = heap->count;
    for (;;) {
        size_t first = 4 * i + 1;
        if (first >= n) break;
        size_t last = first + 4 < n ? first + 4 : n;
        size_t best = first;
        for (size_t c = first + 1; c < last; c++)
            if (before(heap->items[c], heap->items[best])) best = c;
        if (!before(heap->items[best], t)) break;
        place(heap, i, heap->items[best]);
        i = best;
    }
    place(heap, i, t);
}

int cio__timer_heap_reserve(cio__timer_heap *heap, size_t extra) {
    if (heap->count + extra <= heap->cap) return 0;
    size_t cap = heap->cap ? heap->cap : 64;
    while (cap < heap->count + extra) cap *= 2;
    cio__timer **grown = cio__realloc(heap->items, cap * sizeof *grown);
    if (!grown) return -ENOMEM;
    heap->items = grown;
    heap->cap = cap;
    return 0;
}

int cio__timer_heap_push(cio__timer_heap *heap, cio__timer *timer) {
    if (heap->count == heap->cap) {
        int rc = cio__timer_heap_reserve(heap, 1);
        if (rc < 0) return rc;
    }
    sift_up(heap, heap->count++, timer);
    return 0;
}

void cio__timer_heap_remove(cio__timer_heap *heap, cio__timer *timer) {
    size_t i = timer->index;
    if (i == CIO__TIMER_UNARMED) return;
    timer->index = CIO__TIMER_UNARMED;
    cio__timer *last = heap->items[--heap->count];
    if (last == timer) return;
    /* The last item takes the hole; it may need to move either way. */
    if (i > 0 && before(last, heap->items[(i - 1) / 4]))
        sift_up(heap, i, last);
    else
        sift_down(heap, i, last);
}

void cio__timer_heap_destroy(cio__timer_heap *heap) {
    cio__free(heap->items);
    heap->items = NULL;
    heap->count = heap->cap = 0;
}
