# Empty compiler generated dependencies file for echo_server_cio_stream.
# This may be replaced when dependencies are built.
