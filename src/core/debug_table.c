/*
 * The offsets table: what a reader outside the process (tools/cio-ps, a
 * debugger on a core file) needs to find the loops and tasks in a
 * process's memory without cio's headers or debug information.
 *
 * It is one constant object in its own ELF section, .cio_debug, kept by
 * `used` through --gc-sections and present in every core dump. A reader
 * finds the section in the mapped file, reads the table at its loaded
 * address (the addresses in it are relocated like any pointer), checks the
 * magic and the version, and then walks:
 *
 *   registry -> the live-loop table -> each loop's list of futures ->
 *   the tasks among them (kind) -> name, state, wait, saved stack pointer
 *   -> the frame chain on the task's stack.
 *
 * Every field is a uint64_t, so the layout is the same for any reader (the
 * fields it locates are pointers and 64-bit integers, except these: a
 * future's state and kind, a task's run_state and a loop's closing are
 * bytes; a task's cancel_requests is an int; name_buf holds a string). A
 * field is only ever appended; the version changes when a meaning does.
 * Readers check each loop's debug_gen (odd while its list changes) before
 * and after a walk, and retry the walk when it moved.
 */
#include <stddef.h>

#include "debug_table.h"
#include "task.h"




#if defined(__x86_64__)
#define ARCH 1
#define FRAME_FP 40
#define FRAME_PC 48
#define FRAME_SP_AFTER 56
#elif defined(__aarch64__)
#define ARCH 2
#define FRAME_FP 80
#define FRAME_PC 88
#define FRAME_SP_AFTER 176
#else
#error "cio: the offsets table knows no save-area layout for this architecture"
#endif

/* Hidden but present in the section; the name is for debuggers. */
/* Version 1 has 44 fields; tools/cio-ps reads exactly these. */
_Static_assert(sizeof(cio__debug_table) == 44 * 8, "the offsets table changed: bump its version");

/* Referenced by every loop (loop->debug_table), so a static link keeps it. */
__attribute__((section(".cio_debug"), used)) const cio__debug_table cio__debug_table_v1 = {
    .magic = {'c', 'i', 'o', 'd', 'e', 'b', 'u', 'g'},
    .version = CIO__DEBUG_TABLE_VERSION,
    .size = sizeof(cio__debug_table),
    .arch = ARCH,
    .registry = &cio__loop_registry,
    .registry_chunks = offsetof(cio__loop_registry_layout, chunks),
    .registry_count = offsetof(cio__loop_registry_layout, count),
    .registry_chunk_slots = offsetof(cio__loop_registry_layout, chunk_slots),
    .registry_max_chunks = offsetof(cio__loop_registry_layout, max_chunks),
    .registry_slot_size = offsetof(cio__loop_registry_layout, slot_size),
    .registry_slot_loop = offsetof(cio__loop_registry_layout, slot_loop),
    .loop_futures = offsetof(cio_loop, futures),
    .loop_debug_gen = offsetof(cio_loop, debug_gen),
    .loop_iterations = offsetof(cio_loop, iterations),
    .loop_now_ns = offsetof(cio_loop, now_ns),
    .loop_closing = offsetof(cio_loop, closing),
    .loop_live_tasks = offsetof(cio_loop, live_tasks),
    .future_loop_link = offsetof(cio_future, loop_link),
    .future_state = offsetof(cio_future, state),
    .future_kind = offsetof(cio_future, kind),
    .kind_task = CIO__KIND_TASK,
    .state_pending = CIO__PENDING,
    .task_fut = offsetof(cio__task, fut),
    .task_id = offsetof(cio__task, id),
    .task_parent_id = offsetof(cio__task, parent_id),
    .task_number = offsetof(cio__task, number),
    .task_name = offsetof(cio__task, name),
    .task_name_buf = offsetof(cio__task, name_buf),
    .task_spawn_site = offsetof(cio__task, spawn_site),
    .task_spawn_pc = offsetof(cio__task, spawn_pc),
    .task_run_state = offsetof(cio__task, run_state),
    .task_wait = offsetof(cio__task, wait),
    .task_saved_sp = offsetof(cio__task, ctx) + offsetof(cio__ctx, sp),
    .task_stack_lo = offsetof(cio__task, stack) + offsetof(cio__stack, lo),
    .task_stack_size = offsetof(cio__task, stack) + offsetof(cio__stack, size),
    .task_switches = offsetof(cio__task, switches),
    .task_started_ns = offsetof(cio__task, started_ns),
    .task_cancel_requests = offsetof(cio__task, cancel_requests),
    .wait_what = offsetof(cio__wait, what),
    .wait_future = offsetof(cio__wait, future),
    .wait_deadline = offsetof(cio__wait, deadline),
    .frame_fp = FRAME_FP,
    .frame_pc = FRAME_PC,
    .frame_sp_after = FRAME_SP_AFTER,
};
