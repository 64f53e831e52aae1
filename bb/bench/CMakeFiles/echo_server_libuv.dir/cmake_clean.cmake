file(REMOVE_RECURSE
  "CMakeFiles/echo_server_libuv.dir/echo/server_libuv.c.o"
  "CMakeFiles/echo_server_libuv.dir/echo/server_libuv.c.o.d"
  "echo_server_libuv"
  "echo_server_libuv.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/echo_server_libuv.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
