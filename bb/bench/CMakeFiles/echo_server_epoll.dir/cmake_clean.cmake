file(REMOVE_RECURSE
  "CMakeFiles/echo_server_epoll.dir/echo/server_epoll.c.o"
  "CMakeFiles/echo_server_epoll.dir/echo/server_epoll.c.o.d"
  "echo_server_epoll"
  "echo_server_epoll.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/echo_server_epoll.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
