file(REMOVE_RECURSE
  "CMakeFiles/bench_structured.dir/bench_structured.c.o"
  "CMakeFiles/bench_structured.dir/bench_structured.c.o.d"
  "bench_structured"
  "bench_structured.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/bench_structured.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
