# One line per test file: cio_test_file(<area> ...). Cases listed after
# NO_VALGRIND are left out of the Valgrind run only (too slow under it);
# they still run plainly and under the sanitizers.
cio_test_file(loop)
