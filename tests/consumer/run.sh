#!/usr/bin/env bash
# The consumer test: installs the build tree into a temporary prefix, then
# builds and runs tests/consumer/main.c against it in every way a C
# programmer would: find_package (shared and static), pkg-config (shared
# and static) and a plain cc line. It also checks what the shared library
# exports (only cio_ symbols) and its soname.
# Last, it builds the program with cio's sources added by add_subdirectory.
#   tests/consumer/run.sh <build-dir>
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'libcio.so' | head -1)")
cc=${CC:-cc}

run() {
  local what=$1; shift
  if out=$(LD_LIBRARY_PATH="$libdir" "$@" 2>&1) && [ "$out" = "consumer: ok" ]; then
    echo "ok: $what"
  else
    echo "FAILED: $what: $out" >&2
    exit 1
  fi
}

for target in cio::cio cio::cio_static; do
  b=$work/build-${target#cio::}
  cmake -S "$here" -B "$b" -DCMAKE_PREFIX_PATH="$prefix" -DCIO_TARGET="$target" >"$b.log" 2>&1 \
    || { cat "$b.log"; exit 1; }
  cmake --build "$b" >>"$b.log" 2>&1 || { cat "$b.log"; exit 1; }
  run "find_package, $target" "$b/consumer"
done

export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046
$cc -o "$work/pc-shared" "$here/main.c" $(pkg-config --cflags --libs cio)
run "pkg-config, shared" "$work/pc-shared"
# shellcheck disable=SC2046
$cc -o "$work/pc-static" "$here/main.c" $(pkg-config --cflags cio) "$libdir/libcio.a" \
  $(pkg-config --static --libs-only-l cio | sed 's/-lcio//')
run "pkg-config, static" "$work/pc-static"
$cc -o "$work/cc-plain" -I"$prefix/include" "$here/main.c" -L"$libdir" -lcio
run "plain cc line" "$work/cc-plain"
# Checks read a captured output through a here-string, never `... | grep -q`:
# grep -q leaves at its first match, and under pipefail the writer's SIGPIPE
# on its next chunk (bash's echo writes 4 KiB at a time) fails the pipeline
# at random on a busy machine.
linked=$(ldd "$work/pc-static")
if grep -q libcio <<<"$linked"; then
  echo "FAILED: the static build links libcio.so" >&2
  exit 1
fi

b=$work/build-subdir
cmake -S "$here" -B "$b" -DCIO_SOURCE_DIR="$here/../.." >"$b.log" 2>&1 || { cat "$b.log"; exit 1; }
cmake --build "$b" -j2 >>"$b.log" 2>&1 || { cat "$b.log"; exit 1; }
run "add_subdirectory, cio::cio" "$b/consumer"

# The reference pages come with the install: `man cio_sleep` (a link page
# to its group's page) and the overview cio(3) render from the prefix.
mandir=$prefix/share/man
for page in cio_sleep cio_queue_put cio; do
  [ -f "$mandir/man3/$page.3" ] || { echo "FAILED: $mandir/man3/$page.3 is not installed" >&2; exit 1; }
done
if command -v man >/dev/null; then
  for page in cio_sleep cio_queue_put cio; do
    out=$(MANWIDTH=80 man -M "$mandir" "$page" 2>&1) || { echo "FAILED: man $page: $out" >&2; exit 1; }
    grep -q "^NAME" <<<"$out" || { echo "FAILED: man $page renders no NAME: $out" >&2; exit 1; }
  done
  out=$(MANWIDTH=80 man -M "$mandir" cio_sleep 2>&1)
  grep -q "int cio_sleep(double delay);" <<<"$out" \
    || { echo "FAILED: man cio_sleep shows no synopsis: $out" >&2; exit 1; }
  echo "ok: man -M <prefix>/share/man cio_sleep, cio_queue_put, cio"
else
  echo "ok: man pages installed (man is not installed: not rendered)"
fi

# The gdb script (tools/cio-gdb.py) comes with the install too.
[ -f "$prefix/share/cio/cio-gdb.py" ] || { echo "FAILED: share/cio/cio-gdb.py is not installed" >&2; exit 1; }
echo "ok: share/cio/cio-gdb.py installed"

soname=$(objdump -p "$libdir/libcio.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libcio.so.0" ] || { echo "FAILED: soname is '$soname'" >&2; exit 1; }
echo "ok: soname $soname"
leaked=$(nm -D --defined-only "$libdir/libcio.so" | awk '{print $3}' | grep -v '^cio_[a-z]' || true)
if [ -n "$leaked" ]; then
  echo "FAILED: libcio.so exports symbols outside the API:" $leaked >&2
  exit 1
fi
echo "ok: libcio.so exports only cio_ functions ($(nm -D --defined-only "$libdir/libcio.so" | wc -l))"
