# Empty dependencies file for bench_tasks.
# This may be replaced when dependencies are built.
