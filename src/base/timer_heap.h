/*
 * The loop's timers: a 4-ary min-heap ordered by (deadline, sequence), so
 * the next deadline is found in O(1), arming and disarming cost O(log n),
 * and timers with equal deadlines fire in the order they were armed. A
 * timer records its position in the heap, so cancelling one removes it at
 * once instead of leaving a tombstone behind.
 */
#ifndef CIO_TIMER_HEAP_H
#define CIO_TIMER_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"

#define CIO__TIMER_UNARMED SIZE_MAX

/* A due timer leaves the heap for the ready queue through its job, and
 * fire() runs when the loop reaches that job: all due timers then act in
 * (deadline, arming) order among the other callbacks, as asyncio's timer
 * handles do. */
typedef struct cio__timer cio__timer;
struct cio__timer {
    int64_t when;      /* loop time in ns */
    uint64_t seq;      /* arming order, breaks ties */
    size_t index;      /* position in the heap, or CIO__TIMER_UNARMED */
    void (*fire)(cio__timer *timer);
    cio__job job;      /* in the ready queue once due */
};

/* A heap slot keeps its timer's deadline next to the pointer, so sifting
 * compares keys in the heap's own array (four children in one 64-byte
 * line) and reads a timer only on a tie or to tell it where it moved. */
typedef struct cio__timer_slot {
    int64_t when;
    cio__timer *timer;
} cio__timer_slot;

typedef struct cio__timer_heap {
    cio__timer_slot *items;
    size_t count, cap;
} cio__timer_heap;

int cio__timer_heap_push(cio__timer_heap *heap, cio__timer *timer);
void cio__timer_heap_remove(cio__timer_heap *heap, cio__timer *timer);
static inline cio__timer *cio__timer_heap_top(const cio__timer_heap *heap) {
    return heap->count ? heap->items[0].timer : NULL;
}
int cio__timer_heap_reserve(cio__timer_heap *heap, size_t extra);
void cio__timer_heap_destroy(cio__timer_heap *heap);

#endif
