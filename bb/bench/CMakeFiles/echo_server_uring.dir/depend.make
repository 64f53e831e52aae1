# Empty dependencies file for echo_server_uring.
# This may be replaced when dependencies are built.
