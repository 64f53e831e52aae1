file(REMOVE_RECURSE
  "libcio.pdb"
  "libcio.so"
  "libcio.so.0"
  "libcio.so.0.2.0"
)

# Per-language clean rules from dependency scanning.
foreach(lang ASM C)
  include(CMakeFiles/cio_shared.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
