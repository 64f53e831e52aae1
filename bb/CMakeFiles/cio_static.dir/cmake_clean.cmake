file(REMOVE_RECURSE
  "libcio.a"
  "libcio.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang ASM C)
  include(CMakeFiles/cio_static.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
