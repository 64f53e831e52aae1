file(REMOVE_RECURSE
  "CMakeFiles/bench_echo"
)

# Per-language clean rules from dependency scanning.
foreach(lang )
  include(CMakeFiles/bench_echo.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
