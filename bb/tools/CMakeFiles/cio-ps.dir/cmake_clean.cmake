file(REMOVE_RECURSE
  "CMakeFiles/cio-ps.dir/cio-ps.c.o"
  "CMakeFiles/cio-ps.dir/cio-ps.c.o.d"
  "cio-ps"
  "cio-ps.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/cio-ps.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
