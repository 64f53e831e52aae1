#!/usr/bin/env bash
# Smoke test of bench/plot_micro.py: runs it on a committed results file
# into a temporary directory and checks that it rewrote the section between
# the markers of a scratch document with the tables, and (when gnuplot is
# installed) that it drew every chart as a non-empty PNG. It never looks at
# the values.
#
#   check_plot.sh <python3> <plot_micro.py> <results-file>
set -u
if [ $# -ne 3 ]; then
  echo "usage: $0 <python3> <plot_micro.py> <results-file>" >&2
  exit 2
fi
python=$1 script=$2 results=$3
dir=$(mktemp -d) || exit 2
trap 'rm -rf "$dir"' EXIT
printf 'before\n<!-- micro-table:begin -->\nold\n<!-- micro-table:end -->\nafter\n' >"$dir/doc.md"
"$python" "$script" "$results" --png-dir "$dir/img" --doc "$dir/doc.md" || {
  echo "check_plot: plot_micro.py failed" >&2
  exit 1
}
bad=0
for want in '^before$' '^after$' '^### Context switch$' '^### Tasks, futures and the loop$' \
            '^| `switch_cio` |' '^### Goals$' 'img/micro-switch.png'; do
  grep -q -- "$want" "$dir/doc.md" || { echo "check_plot: '$want' missing from the document" >&2; bad=1; }
done
if grep -q '^old$' "$dir/doc.md"; then
  echo "check_plot: the old section was not replaced" >&2
  bad=1
fi
if command -v gnuplot >/dev/null 2>&1; then
  for png in micro-switch micro-tasks micro-timers micro-io micro-structured micro-memory; do
    f=$dir/img/$png.png
    if [ ! -s "$f" ] || [ "$(head -c 4 "$f" | tail -c 3)" != PNG ]; then
      echo "check_plot: $png.png was not drawn" >&2
      bad=1
    fi
  done
else
  echo "check_plot: no gnuplot, PNGs not checked"
fi
exit $bad
