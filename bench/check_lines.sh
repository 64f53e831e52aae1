#!/usr/bin/env bash
# Smoke test of one benchmark: runs it (the caller sets CIO_BENCH_QUICK=1)
# and checks that it exits 0 and that every line it prints is either a
# figure, "<name> <number> <unit>", or a comment starting with '#', with at
# least one figure. It never looks at the values.
#
#   check_lines.sh <program> [args...]
set -u
if [ $# -lt 1 ]; then
  echo "usage: $0 <program> [args...]" >&2
  exit 2
fi
out=$(mktemp) || exit 2
trap 'rm -f "$out"' EXIT
"$@" >"$out"
rc=$?
cat "$out"
if [ $rc -ne 0 ]; then
  echo "check_lines: $* exited with $rc" >&2
  exit 1
fi
figures=0
bad=0
while IFS= read -r line; do
  case "$line" in
    '#'*) continue ;;
  esac
  if [[ "$line" =~ ^[a-z][a-z0-9_]*\ -?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\ [A-Za-z/%]+$ ]]; then
    figures=$((figures + 1))
  else
    echo "check_lines: malformed line: '$line'" >&2
    bad=1
  fi
done <"$out"
if [ $figures -eq 0 ]; then
  echo "check_lines: no figures printed" >&2
  exit 1
fi
exit $bad
