/* The loop's counters (debug.h): one call, so tests never read fields. */
#include "introspection.h"

static size_t list_length(const cio__link *list) {
    size_t n = 0;
    for (const cio__link *l = list->next; l != list; l = l->next) n++;
    return n;
}

int cio__loop_get_stats(const cio_loop *loop, cio__loop_stats *out) {
    if (!loop || !out) return -EINVAL;
    out->live_tasks = loop->live_tasks;
    out->timers = loop->timers.count;
    out->ready = list_length(&loop->ready);
    out->futures = list_length(&loop->futures);
    out->io_in_flight = loop->io.in_flight;
    out->iterations = loop->iterations;
    out->task_records = loop->free_task_count;
    return 0;
}

int cio__task_get_stack(const cio_task *task, cio__task_stack_info *out) {
    if (!task || !out || task->kind != CIO__KIND_TASK) return -EINVAL;
    const cio__task *t = cio__task_of(task);
    out->lo = t->stack.lo;
    out->size = t->stack.size;
    out->guard = t->stack.guard;
    return 0;
}

int cio__loop_get_pool_stats(const cio_loop *loop, cio__pool_stats *out) {
    if (!loop || !out) return -EINVAL;
    out->inbox_wakes = atomic_load_explicit(&((cio_loop *)loop)->inbox_wakes, memory_order_relaxed);
    return cio__pool_get_stats(loop, &out->workers, &out->queued, &out->lookups);
}

int cio__loop_get_file_stats(const cio_loop *loop, cio__file_stats *out) {
    if (!loop || !out) return -EINVAL;
    out->ring_ops = loop->io.file_ops;
    out->ring_calls = loop->io.file_calls_ring;
    out->pool_calls = loop->io.file_calls_pool;
    return 0;
}
