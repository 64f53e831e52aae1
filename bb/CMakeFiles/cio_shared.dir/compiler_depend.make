# Empty compiler generated dependencies file for cio_shared.
# This may be replaced when dependencies are built.
