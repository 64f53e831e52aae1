file(REMOVE_RECURSE
  "CMakeFiles/bench_switch.dir/bench_switch.c.o"
  "CMakeFiles/bench_switch.dir/bench_switch.c.o.d"
  "CMakeFiles/bench_switch.dir/bench_switch_boost.cpp.o"
  "CMakeFiles/bench_switch.dir/bench_switch_boost.cpp.o.d"
  "bench_switch"
  "bench_switch.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C CXX)
  include(CMakeFiles/bench_switch.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
