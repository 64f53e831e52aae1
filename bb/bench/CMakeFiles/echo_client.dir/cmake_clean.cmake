file(REMOVE_RECURSE
  "CMakeFiles/echo_client.dir/echo/client.c.o"
  "CMakeFiles/echo_client.dir/echo/client.c.o.d"
  "echo_client"
  "echo_client.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/echo_client.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
