file(REMOVE_RECURSE
  "CMakeFiles/bench_files.dir/bench_files.c.o"
  "CMakeFiles/bench_files.dir/bench_files.c.o.d"
  "bench_files"
  "bench_files.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_files.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
