# Empty dependencies file for bench_io.
# This may be replaced when dependencies are built.
