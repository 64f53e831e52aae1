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
#include "timer_heap.h"

#define CIO__UNUSED(x) ((void)(x))
#define CIO__CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
