#!/usr/bin/env bash
# Renders every generated man page with groff's warnings all on (-ww) and
# fails on any warning or error; a link page (".so") must name a page that
# exists.
#   check_render.sh <build>/man/man3
set -u
dir=$1
command -v groff >/dev/null || { echo "groff is not installed (apt-get install groff-base)"; exit 77; }
ls "$dir"/*.3 >/dev/null 2>&1 || { echo "no pages in $dir"; exit 1; }
bad=0
pages=0
for f in "$dir"/*.3; do
  if target=$(sed -n 's/^\.so man3\///p' "$f") && [ -n "$target" ]; then
    [ -f "$dir/$target" ] || { echo "FAILED: $(basename "$f") links to a missing $target"; bad=1; }
    continue
  fi
  pages=$((pages + 1))
  out=$(groff -man -ww -z -Tutf8 "$f" 2>&1)
  if [ -n "$out" ]; then
    echo "FAILED: $(basename "$f"):"
    echo "$out"
    bad=1
  fi
done
echo "$pages pages rendered"
exit $bad
