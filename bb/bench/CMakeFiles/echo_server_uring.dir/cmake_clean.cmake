file(REMOVE_RECURSE
  "CMakeFiles/echo_server_uring.dir/echo/server_uring.c.o"
  "CMakeFiles/echo_server_uring.dir/echo/server_uring.c.o.d"
  "echo_server_uring"
  "echo_server_uring.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/echo_server_uring.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
