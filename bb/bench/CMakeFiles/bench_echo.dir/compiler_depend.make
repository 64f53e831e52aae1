# Empty custom commands generated dependencies file for bench_echo.
# This may be replaced when dependencies are built.
