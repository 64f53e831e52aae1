# One line per test file: cio_test_file(<area> ...). Cases listed after
# NO_VALGRIND are left out of the Valgrind run only (too slow under it, or
# they hand the kernel a bad buffer on purpose, which Valgrind rightly
# reports); they still run plainly and under the sanitizers.
cio_test_file(api IO)
cio_test_file(loop IO)
cio_test_file(switch)
cio_test_file(stack NO_VALGRIND overflow_into_guard_region_names_the_task overflow_into_guard_page_names_the_task overflow_report_escapes_the_task_name overflow_of_unguarded_stack_is_caught_by_canary big_frame_hits_the_guard_region big_frame_hits_the_guard_page program_handler_installed_before_cio_keeps_cios_report program_handler_installed_after_cio_keeps_cios_report fault_nobody_claims_ends_with_sigsegv handlers_passing_faults_to_each_other_end_with_sigsegv overflow_report_names_task_spawn_site_and_size overflow_report_names_spawning_module_without_a_site canary_names_task_writing_past_its_limit_at_next_switch hundred_thousand_tasks million_tasks_each_with_a_guard PLAIN_ONLY million_tasks_each_with_a_guard)
cio_test_file(fault IO)
cio_test_file(sock IO NOFAST)
cio_test_file(adopt IO NOFAST)
cio_test_file(datagram IO)
cio_test_file(io IO NOFAST)
cio_test_file(stream IO NOFAST PLAIN_ONLY idle_handler_holds_its_records_in_one_stack_page)
cio_test_file(transport IO NOFAST NO_VALGRIND out_of_descriptors_at_accept_neither_spins_nor_stops_the_server)
cio_test_file(threads IO LABELS threads NO_VALGRIND run_until_complete_starts_the_loop_before_a_dump_can_see_its_callback)
cio_test_file(structured)
cio_test_file(cancel IO NO_VALGRIND hundred_thousand_random_cancels_leave_nothing_behind)
cio_test_file(sync)
cio_test_file(queue)
cio_test_file(future)
cio_test_file(task)
cio_test_file(task_info)
cio_test_file(combinators)
cio_test_file(threadsafe IO LABELS threads)
cio_test_file(pool IO LABELS threads)
cio_test_file(dns IO LABELS threads)
cio_test_file(pipe IO)
# A length past the buffer is the point of that case: Valgrind reports the
# read and write system calls' unaddressable bytes before the kernel says
# -EFAULT.
cio_test_file(file IO LABELS threads NO_VALGRIND a_length_past_the_buffer_is_the_system_calls_efault_on_both_paths)
cio_test_file(virtual_clock IO LABELS threads)
cio_test_file(process IO LABELS threads NO_VALGRIND thousand_children_in_parallel_leave_no_zombie_fd_or_pidfd)
# SIGINT from another process while the loop blocks in epoll_pwait2 or
# io_uring_enter, which clang 14's TSan does not intercept: TSan holds the
# signal until the thread's next intercepted call, so the loop sleeps on
# until its 30 s timer (2 runs of 20 on a loaded machine). These
# cases run in the five other configurations.
cio_test_file(signal IO LABELS threads NO_TSAN second_sigint_during_cleanup_ends_the_process
              sigint_cancels_the_main_task_and_cio_run_says_interrupted
              main_task_that_uncancels_keeps_its_result)
cio_test_file(backend IO NOFAST)
# The watchdog names the test's functions with dladdr: export them.
# Valgrind delivers a signal to a thread that computes only at its next
# system call, so the task and backtrace of a busy loop cannot be taken
# under it (a blocked loop's can: the blocking case runs under Valgrind).
cio_test_file(watchdog LABELS threads NO_VALGRIND busy_loop_reported_as_computing_with_the_spinning_function loop_stuck_in_a_busy_task_still_reports_through_on_stall reports_that_came_late_still_double_their_interval NO_TSAN million_tasks_that_yield_are_never_reported reports_that_came_late_still_double_their_interval PLAIN_ONLY backtrace_signal_runs_on_the_alternate_stack_not_the_tasks)
set_target_properties(test_watchdog PROPERTIES ENABLE_EXPORTS ON)
cio_test_file(dump IO NO_VALGRIND dump_every_iteration_leaves_the_trace_byte_identical)
# A dump of 10,000 tasks at every iteration of a run is slow under the
# sanitizers on a busy machine.
foreach(backend ${CIO_TEST_BACKENDS})
  set(name dump.dump_every_iteration_leaves_the_trace_byte_identical)
  if(NOT backend STREQUAL "epoll")
    set(name ${name}.${backend})
  endif()
  if(TEST ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT 300)
  endif()
endforeach()
