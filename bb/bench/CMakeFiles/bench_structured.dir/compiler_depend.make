# Empty compiler generated dependencies file for bench_structured.
# This may be replaced when dependencies are built.
