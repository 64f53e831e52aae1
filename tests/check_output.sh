#!/usr/bin/env bash
# Runs an example and checks its output against a file of expectations.
#
#   check_output.sh <expected-file> <program> [args...]
#
# Fails (exit 1) when the program exits non-zero (a crash, a sanitizer
# report, or the example's own check failing), or when its standard output
# does not meet the expected file, which holds one rule per line:
#
#   <regex>        an extended regular expression (bash =~, POSIX ERE) that
#                  must match some line of stdout; rules match in order,
#                  each on a line after the one the previous rule matched
#   !<regex>       no line of stdout may match it, anywhere
#   %stderr-ok     the program may write to stderr (otherwise anything on
#                  stderr fails the test: cio reports unhandled errors there)
#   # ...          a comment; blank lines are ignored
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 <expected-file> <program> [args...]" >&2
  exit 2
fi
expected=$1; shift
[ -r "$expected" ] || { echo "check_output: cannot read $expected" >&2; exit 2; }

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT

"$@" >"$tmp/out" 2>"$tmp/err"
rc=$?

show() {
  echo "---- stdout of $* ----"
  cat "$tmp/out"
  echo "---- stderr ----"
  cat "$tmp/err"
  echo "----"
}

if [ $rc -ne 0 ]; then
  show "$@"
  echo "FAIL: $1 exited with status $rc"
  exit 1
fi

mapfile -t lines <"$tmp/out"
stderr_ok=0
pos=0       # index of the first stdout line the next rule may match
failed=0
nrules=0
while IFS= read -r rule || [ -n "$rule" ]; do
  case $rule in
    ''|'#'*) continue ;;
    '%stderr-ok') stderr_ok=1; continue ;;
  esac
  nrules=$((nrules + 1))
  if [ "${rule:0:1}" = '!' ]; then
    re=${rule:1}
    for line in "${lines[@]}"; do
      if [[ $line =~ $re ]]; then
        echo "FAIL: a line matches the forbidden /$re/: $line"
        failed=1
        break
      fi
    done
    continue
  fi
  re=$rule
  found=-1
  for ((i = pos; i < ${#lines[@]}; i++)); do
    if [[ ${lines[$i]} =~ $re ]]; then found=$i; break; fi
  done
  if [ $found -lt 0 ]; then
    if [ $pos -gt 0 ]; then
      echo "FAIL: no line after line $pos (\"${lines[$((pos - 1))]}\") matches /$re/"
    else
      echo "FAIL: no line matches /$re/"
    fi
    failed=1
    break
  fi
  pos=$((found + 1))
done <"$expected"

if [ $nrules -eq 0 ]; then
  echo "FAIL: $expected holds no rules"
  failed=1
fi
if [ $stderr_ok -eq 0 ] && [ -s "$tmp/err" ]; then
  echo "FAIL: the program wrote to stderr"
  failed=1
fi
if [ $failed -ne 0 ]; then
  show "$@"
  exit 1
fi
cat "$tmp/out"
echo "PASS: $nrules rules of $(basename "$expected") hold"
