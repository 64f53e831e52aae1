# Empty dependencies file for echo_server_libuv.
# This may be replaced when dependencies are built.
