
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  "ASM"
  )
# The set of files for implicit dependencies of each language:
set(CMAKE_DEPENDS_CHECK_ASM
  "/work/wt-fix/src/core/arch/switch_x86_64.S" "/work/wt-fix/bb/CMakeFiles/cio_objects.dir/src/core/arch/switch_x86_64.S.o"
  )
set(CMAKE_ASM_COMPILER_ID "GNU")

# Preprocessor definitions for this target.
set(CMAKE_TARGET_DEFINITIONS_ASM
  "CIO_BUILDING_LIBRARY"
  "CIO__HAVE_URING=1"
  "_GNU_SOURCE"
  )

# The include file search paths:
set(CMAKE_ASM_TARGET_INCLUDE_PATH
  "/work/wt-fix/include"
  "/work/wt-fix/src"
  "/usr/include"
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt-fix/src/base/clock.c" "CMakeFiles/cio_objects.dir/src/base/clock.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/base/clock.c.o.d"
  "/work/wt-fix/src/base/error.c" "CMakeFiles/cio_objects.dir/src/base/error.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/base/error.c.o.d"
  "/work/wt-fix/src/base/fault.c" "CMakeFiles/cio_objects.dir/src/base/fault.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/base/fault.c.o.d"
  "/work/wt-fix/src/base/fd_table.c" "CMakeFiles/cio_objects.dir/src/base/fd_table.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/base/fd_table.c.o.d"
  "/work/wt-fix/src/base/pipe_write.c" "CMakeFiles/cio_objects.dir/src/base/pipe_write.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/base/pipe_write.c.o.d"
  "/work/wt-fix/src/base/timer_heap.c" "CMakeFiles/cio_objects.dir/src/base/timer_heap.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/base/timer_heap.c.o.d"
  "/work/wt-fix/src/core/context.c" "CMakeFiles/cio_objects.dir/src/core/context.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/context.c.o.d"
  "/work/wt-fix/src/core/debug_table.c" "CMakeFiles/cio_objects.dir/src/core/debug_table.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/debug_table.c.o.d"
  "/work/wt-fix/src/core/future.c" "CMakeFiles/cio_objects.dir/src/core/future.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/future.c.o.d"
  "/work/wt-fix/src/core/handle.c" "CMakeFiles/cio_objects.dir/src/core/handle.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/handle.c.o.d"
  "/work/wt-fix/src/core/inbox.c" "CMakeFiles/cio_objects.dir/src/core/inbox.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/inbox.c.o.d"
  "/work/wt-fix/src/core/job.c" "CMakeFiles/cio_objects.dir/src/core/job.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/job.c.o.d"
  "/work/wt-fix/src/core/loop.c" "CMakeFiles/cio_objects.dir/src/core/loop.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/loop.c.o.d"
  "/work/wt-fix/src/core/loop_lifecycle.c" "CMakeFiles/cio_objects.dir/src/core/loop_lifecycle.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/loop_lifecycle.c.o.d"
  "/work/wt-fix/src/core/report.c" "CMakeFiles/cio_objects.dir/src/core/report.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/report.c.o.d"
  "/work/wt-fix/src/core/run_until_complete.c" "CMakeFiles/cio_objects.dir/src/core/run_until_complete.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/run_until_complete.c.o.d"
  "/work/wt-fix/src/core/signal.c" "CMakeFiles/cio_objects.dir/src/core/signal.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/signal.c.o.d"
  "/work/wt-fix/src/core/stack.c" "CMakeFiles/cio_objects.dir/src/core/stack.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/stack.c.o.d"
  "/work/wt-fix/src/core/stack_census.c" "CMakeFiles/cio_objects.dir/src/core/stack_census.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/stack_census.c.o.d"
  "/work/wt-fix/src/core/task.c" "CMakeFiles/cio_objects.dir/src/core/task.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/task.c.o.d"
  "/work/wt-fix/src/core/threadsafe.c" "CMakeFiles/cio_objects.dir/src/core/threadsafe.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/core/threadsafe.c.o.d"
  "/work/wt-fix/src/debug/dump.c" "CMakeFiles/cio_objects.dir/src/debug/dump.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/debug/dump.c.o.d"
  "/work/wt-fix/src/debug/stats.c" "CMakeFiles/cio_objects.dir/src/debug/stats.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/debug/stats.c.o.d"
  "/work/wt-fix/src/debug/watchdog.c" "CMakeFiles/cio_objects.dir/src/debug/watchdog.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/debug/watchdog.c.o.d"
  "/work/wt-fix/src/flow/as_completed.c" "CMakeFiles/cio_objects.dir/src/flow/as_completed.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/as_completed.c.o.d"
  "/work/wt-fix/src/flow/await.c" "CMakeFiles/cio_objects.dir/src/flow/await.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/await.c.o.d"
  "/work/wt-fix/src/flow/await_op.c" "CMakeFiles/cio_objects.dir/src/flow/await_op.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/await_op.c.o.d"
  "/work/wt-fix/src/flow/gather.c" "CMakeFiles/cio_objects.dir/src/flow/gather.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/gather.c.o.d"
  "/work/wt-fix/src/flow/pool.c" "CMakeFiles/cio_objects.dir/src/flow/pool.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/pool.c.o.d"
  "/work/wt-fix/src/flow/runner.c" "CMakeFiles/cio_objects.dir/src/flow/runner.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/runner.c.o.d"
  "/work/wt-fix/src/flow/shield.c" "CMakeFiles/cio_objects.dir/src/flow/shield.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/shield.c.o.d"
  "/work/wt-fix/src/flow/sleep.c" "CMakeFiles/cio_objects.dir/src/flow/sleep.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/sleep.c.o.d"
  "/work/wt-fix/src/flow/task_group.c" "CMakeFiles/cio_objects.dir/src/flow/task_group.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/task_group.c.o.d"
  "/work/wt-fix/src/flow/timeout.c" "CMakeFiles/cio_objects.dir/src/flow/timeout.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/timeout.c.o.d"
  "/work/wt-fix/src/flow/wait.c" "CMakeFiles/cio_objects.dir/src/flow/wait.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/flow/wait.c.o.d"
  "/work/wt-fix/src/io/backend_epoll.c" "CMakeFiles/cio_objects.dir/src/io/backend_epoll.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/io/backend_epoll.c.o.d"
  "/work/wt-fix/src/io/backend_uring.c" "CMakeFiles/cio_objects.dir/src/io/backend_uring.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/io/backend_uring.c.o.d"
  "/work/wt-fix/src/io/io.c" "CMakeFiles/cio_objects.dir/src/io/io.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/io/io.c.o.d"
  "/work/wt-fix/src/io/uring_probe.c" "CMakeFiles/cio_objects.dir/src/io/uring_probe.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/io/uring_probe.c.o.d"
  "/work/wt-fix/src/net/address.c" "CMakeFiles/cio_objects.dir/src/net/address.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/address.c.o.d"
  "/work/wt-fix/src/net/connect.c" "CMakeFiles/cio_objects.dir/src/net/connect.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/connect.c.o.d"
  "/work/wt-fix/src/net/datagram.c" "CMakeFiles/cio_objects.dir/src/net/datagram.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/datagram.c.o.d"
  "/work/wt-fix/src/net/dns.c" "CMakeFiles/cio_objects.dir/src/net/dns.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/dns.c.o.d"
  "/work/wt-fix/src/net/fd.c" "CMakeFiles/cio_objects.dir/src/net/fd.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/fd.c.o.d"
  "/work/wt-fix/src/net/file.c" "CMakeFiles/cio_objects.dir/src/net/file.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/file.c.o.d"
  "/work/wt-fix/src/net/pipe.c" "CMakeFiles/cio_objects.dir/src/net/pipe.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/pipe.c.o.d"
  "/work/wt-fix/src/net/process.c" "CMakeFiles/cio_objects.dir/src/net/process.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/process.c.o.d"
  "/work/wt-fix/src/net/server.c" "CMakeFiles/cio_objects.dir/src/net/server.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/server.c.o.d"
  "/work/wt-fix/src/net/sock.c" "CMakeFiles/cio_objects.dir/src/net/sock.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/sock.c.o.d"
  "/work/wt-fix/src/net/stream.c" "CMakeFiles/cio_objects.dir/src/net/stream.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/stream.c.o.d"
  "/work/wt-fix/src/net/transport.c" "CMakeFiles/cio_objects.dir/src/net/transport.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/net/transport.c.o.d"
  "/work/wt-fix/src/sync/barrier.c" "CMakeFiles/cio_objects.dir/src/sync/barrier.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/sync/barrier.c.o.d"
  "/work/wt-fix/src/sync/condition.c" "CMakeFiles/cio_objects.dir/src/sync/condition.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/sync/condition.c.o.d"
  "/work/wt-fix/src/sync/event.c" "CMakeFiles/cio_objects.dir/src/sync/event.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/sync/event.c.o.d"
  "/work/wt-fix/src/sync/lock.c" "CMakeFiles/cio_objects.dir/src/sync/lock.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/sync/lock.c.o.d"
  "/work/wt-fix/src/sync/queue.c" "CMakeFiles/cio_objects.dir/src/sync/queue.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/sync/queue.c.o.d"
  "/work/wt-fix/src/sync/semaphore.c" "CMakeFiles/cio_objects.dir/src/sync/semaphore.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/sync/semaphore.c.o.d"
  "/work/wt-fix/src/sync/waitq.c" "CMakeFiles/cio_objects.dir/src/sync/waitq.c.o" "gcc" "CMakeFiles/cio_objects.dir/src/sync/waitq.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
