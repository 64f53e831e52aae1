# Empty dependencies file for cio-ps.
# This may be replaced when dependencies are built.
