/*
 * The base layer: what every other layer may use. Intrusive lists and jobs,
 * the timer heap, the clock, and the allocation and system-call wrappers
 * that fault injection can fail. Nothing here knows about loops or tasks.
 */
#ifndef CIO_BASE_H
#define CIO_BASE_H

#include "cio.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "clock.h"
#include "fault.h"
#include "fd_table.h"
#include "list.h"
#include "name_text.h"
#include "timer_heap.h"

#define CIO__UNUSED(x) ((void)(x))
#define CIO__CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* cio is built with frame pointers, so the task dump can walk a suspended
 * task's frames (debug/dump.c). A hot function that only ever runs on the
 * loop's own stack, which no dump walks, may go without its frame: a task
 * switch's loop side saves three instructions per switch that way. GCC
 * takes this per function; clang has no such attribute and keeps the
 * frame. */
#if defined(__GNUC__) && !defined(__clang__)
#define CIO__LOOP_STACK_ONLY __attribute__((optimize("omit-frame-pointer")))
#else
#define CIO__LOOP_STACK_ONLY
#endif

/* Whether the program runs under Valgrind, which handles signals and
 * alternate signal stacks its own way: it keeps delivering SA_ONSTACK
 * signals on an alternate stack that was disabled, and delivers a signal
 * to another thread at that thread's next system call. 0 where Valgrind's
 * header is missing. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CIO__ON_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef CIO__ON_VALGRIND
#define CIO__ON_VALGRIND() 0
#endif

#endif
