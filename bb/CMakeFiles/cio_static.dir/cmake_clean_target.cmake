file(REMOVE_RECURSE
  "libcio.a"
)
