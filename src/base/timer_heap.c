/*
 * A 4-ary min-heap of timers (see timer_heap.h). Four children per node
 * halve the depth of a binary heap, and since each slot carries its
 * timer's deadline, the four siblings' keys lie together in the array (64
 * bytes, at most two cache lines): sifting down compares more keys but
 * touches fewer lines, and never the timers it only compares.
 */
#include "timer_heap.h"

#include <errno.h>

#include "fault.h"

/* Ties on the deadline go to the timer armed first (the seq in the timer
 * itself: ties are rare except between timers armed for one instant). */
static inline int before(cio__timer_slot a, cio__timer_slot b) {
    return a.when < b.when || (a.when == b.when && a.timer->seq < b.timer->seq);
}

static inline void place(cio__timer_heap *heap, size_t i, cio__timer_slot s) {
    heap->items[i] = s;
    s.timer->index = i;
}

static void sift_up(cio__timer_heap *heap, size_t i, cio__timer_slot s) {
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        cio__timer_slot p = heap->items[parent];
        if (!before(s, p)) break;
        place(heap, i, p);
        i = parent;
    }
    place(heap, i, s);
}

static void sift_down(cio__timer_heap *heap, size_t i, cio__timer_slot s) {
    size_t n = heap->count;
    for (;;) {
        size_t first = 4 * i + 1;
        if (first >= n) break;
        size_t last = first + 4 < n ? first + 4 : n;
        size_t best = first;
        for (size_t c = first + 1; c < last; c++)
            if (before(heap->items[c], heap->items[best])) best = c;
        if (!before(heap->items[best], s)) break;
        place(heap, i, heap->items[best]);
        i = best;
    }
    place(heap, i, s);
}

int cio__timer_heap_reserve(cio__timer_heap *heap, size_t extra) {
    if (heap->count + extra <= heap->cap) return 0;
    size_t cap = heap->cap ? heap->cap : 64;
    while (cap < heap->count + extra) cap *= 2;
    cio__timer_slot *grown = cio__realloc(heap->items, cap * sizeof *grown);
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
    sift_up(heap, heap->count++, (cio__timer_slot){.when = timer->when, .timer = timer});
    return 0;
}

void cio__timer_heap_remove(cio__timer_heap *heap, cio__timer *timer) {
    size_t i = timer->index;
    if (i == CIO__TIMER_UNARMED) return;
    timer->index = CIO__TIMER_UNARMED;
    cio__timer_slot last = heap->items[--heap->count];
    if (last.timer == timer) return;
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
