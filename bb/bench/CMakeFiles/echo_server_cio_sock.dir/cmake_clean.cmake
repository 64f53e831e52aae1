file(REMOVE_RECURSE
  "CMakeFiles/echo_server_cio_sock.dir/echo/server_cio_sock.c.o"
  "CMakeFiles/echo_server_cio_sock.dir/echo/server_cio_sock.c.o.d"
  "echo_server_cio_sock"
  "echo_server_cio_sock.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/echo_server_cio_sock.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
