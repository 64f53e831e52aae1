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

#endif
