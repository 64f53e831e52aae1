# Empty dependencies file for cio_static.
# This may be replaced when dependencies are built.
