#!/usr/bin/env bash
# Fails when a function declared in the public header is never called in
# the API conventions test, so that no public function escapes the NULL and
# invalid-argument checks of tests/test_api.c.
#
#   check_api_coverage.sh <include/cio.h> <tests/test_api.c>
set -u
header=$1
test_file=$2
# Declarations: a return type, then cio_name( at the start of a line
# (multi-line declarations start that way too).
names=$(grep -oE '^[a-z_][a-z0-9_ ]*[ *]+cio_[a-z0-9_]+\(' "$header" | grep -oE 'cio_[a-z0-9_]+\($' |
        tr -d '(' | sort -u)
[ -n "$names" ] || { echo "check_api_coverage: no declarations found in $header" >&2; exit 2; }
missing=0
for name in $names; do
  if ! grep -qE "\\b${name}\\(" "$test_file"; then
    echo "not called in $(basename "$test_file"): $name"
    missing=1
  fi
done
echo "$(echo "$names" | wc -l) public functions checked"
exit $missing
