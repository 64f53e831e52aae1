file(REMOVE_RECURSE
  "CMakeFiles/bench_memory.dir/bench_memory.c.o"
  "CMakeFiles/bench_memory.dir/bench_memory.c.o.d"
  "bench_memory"
  "bench_memory.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_memory.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
