# Empty dependencies file for bench_spawn.
# This may be replaced when dependencies are built.
