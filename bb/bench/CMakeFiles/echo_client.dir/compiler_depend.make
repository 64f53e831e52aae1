# Empty compiler generated dependencies file for echo_client.
# This may be replaced when dependencies are built.
