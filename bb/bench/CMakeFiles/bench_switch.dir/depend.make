# Empty dependencies file for bench_switch.
# This may be replaced when dependencies are built.
