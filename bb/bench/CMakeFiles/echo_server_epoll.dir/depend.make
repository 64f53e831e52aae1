# Empty dependencies file for echo_server_epoll.
# This may be replaced when dependencies are built.
