# Empty dependencies file for echo_server_cio_sock.
# This may be replaced when dependencies are built.
