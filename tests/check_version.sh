#!/usr/bin/env bash
# Fails when the version drifts between the places that state it: the
# CIO_VERSION_* macros of include/cio.h, the CMake project version, the
# soname of the built libcio.so (libcio.so.<major>) and CHANGELOG.md (a
# heading for the version).
#   check_version.sh <include/cio.h> <project version> <libcio.so> <CHANGELOG.md>
set -u
header=$1
project=$2
lib=$3
changelog=$4
bad=0
macro() { sed -n "s/^#define CIO_VERSION_$1 \\([0-9][0-9]*\\)\$/\\1/p" "$header"; }
major=$(macro MAJOR)
minor=$(macro MINOR)
patch=$(macro PATCH)
header_version="$major.$minor.$patch"
echo "cio.h: $header_version; CMake project: $project"
if [ -z "$major" ] || [ -z "$minor" ] || [ -z "$patch" ]; then
  echo "FAILED: cio.h lacks one of CIO_VERSION_MAJOR, _MINOR, _PATCH"
  bad=1
elif [ "$header_version" != "$project" ]; then
  echo "FAILED: cio.h says $header_version, CMakeLists.txt's project() says $project"
  bad=1
fi
soname=$(objdump -p "$lib" 2>/dev/null | awk '/SONAME/ {print $2}')
echo "soname: $soname"
if [ "$soname" != "libcio.so.$major" ]; then
  echo "FAILED: the soname is '$soname', not libcio.so.$major"
  bad=1
fi
# The real file behind the soname link carries the full version.
real=$(basename "$(readlink -f "$lib")")
if [ "$real" != "libcio.so.$project" ]; then
  echo "FAILED: the library file is $real, not libcio.so.$project"
  bad=1
fi
if ! grep -qE "^## \\[$header_version\\]" "$changelog"; then
  echo "FAILED: CHANGELOG.md has no '## [$header_version]' heading"
  bad=1
fi
exit $bad
