file(REMOVE_RECURSE
  "CMakeFiles/bench_spawn.dir/bench_spawn.c.o"
  "CMakeFiles/bench_spawn.dir/bench_spawn.c.o.d"
  "bench_spawn"
  "bench_spawn.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_spawn.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
