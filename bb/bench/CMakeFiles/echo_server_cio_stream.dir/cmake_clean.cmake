file(REMOVE_RECURSE
  "CMakeFiles/echo_server_cio_stream.dir/echo/server_cio_stream.c.o"
  "CMakeFiles/echo_server_cio_stream.dir/echo/server_cio_stream.c.o.d"
  "echo_server_cio_stream"
  "echo_server_cio_stream.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/echo_server_cio_stream.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
