/*
 * The core layer, as the layers above see it: the loop, handles, futures
 * and tasks with their suspension protocol. The rooms inside (loop.h,
 * handle.h, future.h, task.h) are ordered bottom up, and none calls up.
 */
#ifndef CIO_CORE_H
#define CIO_CORE_H

#include "handle.h"
#include "future.h"
#include "loop.h"
#include "task.h"

/* Calls fn(loop, arg) for every open loop of this process that belongs to
 * the calling thread (made or last run by it). */
void cio__loop_each_local(void (*fn)(cio_loop *loop, void *arg), void *arg);

#endif
