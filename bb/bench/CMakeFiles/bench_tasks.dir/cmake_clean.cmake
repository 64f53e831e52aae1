file(REMOVE_RECURSE
  "CMakeFiles/bench_tasks.dir/bench_tasks.c.o"
  "CMakeFiles/bench_tasks.dir/bench_tasks.c.o.d"
  "bench_tasks"
  "bench_tasks.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_tasks.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
