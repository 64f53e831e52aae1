# One line per test file: cio_test_file(<area> ...). Cases listed after
# NO_VALGRIND are left out of the Valgrind run only (too slow under it);
# they still run plainly and under the sanitizers.
cio_test_file(api)
cio_test_file(loop)
cio_test_file(switch)
cio_test_file(stack NO_VALGRIND overflow_into_guard_region_names_the_task overflow_into_guard_page_names_the_task overflow_of_unguarded_stack_is_caught_by_canary big_frame_hits_the_guard_region big_frame_hits_the_guard_page program_handler_installed_before_cio_keeps_cios_report program_handler_installed_after_cio_keeps_cios_report fault_nobody_claims_ends_with_sigsegv handlers_passing_faults_to_each_other_end_with_sigsegv hundred_thousand_tasks million_tasks_each_with_a_guard PLAIN_ONLY million_tasks_each_with_a_guard)
cio_test_file(fault)
cio_test_file(sock)
cio_test_file(io)
cio_test_file(threads LABELS threads)
cio_test_file(structured)
cio_test_file(cancel NO_VALGRIND hundred_thousand_random_cancels_leave_nothing_behind)
cio_test_file(sync)
cio_test_file(queue)
cio_test_file(future)
cio_test_file(task)
cio_test_file(combinators)
