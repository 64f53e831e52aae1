# Empty compiler generated dependencies file for cio_static.
# This may be replaced when dependencies are built.
