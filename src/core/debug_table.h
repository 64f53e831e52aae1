/*
 * The offsets table in the .cio_debug section (debug_table.c): how a reader
 * outside the process finds loops and tasks.
 */
#ifndef CIO_CORE_DEBUG_TABLE_H
#define CIO_CORE_DEBUG_TABLE_H

#include <stdint.h>

#include "handle.h"

#define CIO__DEBUG_TABLE_VERSION 1

typedef struct cio__debug_table {
    char magic[8]; /* "ciodebug" */
    uint64_t version;
    uint64_t size; /* sizeof the table: fields appended later are beyond old readers' size */
    uint64_t arch; /* 1: x86-64, 2: aarch64 */
    const cio__loop_registry_layout *registry;
    uint64_t registry_chunks, registry_count, registry_chunk_slots, registry_max_chunks,
        registry_slot_size, registry_slot_loop;
    /* struct cio_loop */
    uint64_t loop_futures, loop_debug_gen, loop_iterations, loop_now_ns, loop_closing,
        loop_live_tasks;
    /* struct cio_future (loop_link is a {next, prev} pair) */
    uint64_t future_loop_link, future_state, future_kind, kind_task, state_pending;
    /* cio__task, from the start of the task (its future is at task_fut) */
    uint64_t task_fut, task_id, task_parent_id, task_number, task_name, task_name_buf,
        task_spawn_site, task_spawn_pc, task_run_state, task_wait, task_saved_sp,
        task_stack_lo, task_stack_size, task_switches, task_started_ns, task_cancel_requests;
    /* cio__wait */
    uint64_t wait_what, wait_future, wait_deadline;
    /* The save area at a suspended task's saved stack pointer: where the
     * frame pointer and the return address of the switch are, and how far
     * above it the stack pointer of the suspended code is. */
    uint64_t frame_fp, frame_pc, frame_sp_after;
} cio__debug_table;

extern const cio__debug_table cio__debug_table_v1;

#endif
