
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt-fix/bench/bench_switch.c" "bench/CMakeFiles/bench_switch.dir/bench_switch.c.o" "gcc" "bench/CMakeFiles/bench_switch.dir/bench_switch.c.o.d"
  "/work/wt-fix/bench/bench_switch_boost.cpp" "bench/CMakeFiles/bench_switch.dir/bench_switch_boost.cpp.o" "gcc" "bench/CMakeFiles/bench_switch.dir/bench_switch_boost.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/wt-fix/bb/CMakeFiles/cio_static.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
