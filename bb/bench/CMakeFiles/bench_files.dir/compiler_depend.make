# Empty compiler generated dependencies file for bench_files.
# This may be replaced when dependencies are built.
