file(REMOVE_RECURSE
  "CMakeFiles/echo_server_cio_protocol.dir/echo/server_cio_protocol.c.o"
  "CMakeFiles/echo_server_cio_protocol.dir/echo/server_cio_protocol.c.o.d"
  "echo_server_cio_protocol"
  "echo_server_cio_protocol.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/echo_server_cio_protocol.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
