#!/usr/bin/env bash
# Builds the torch-like native library the framework-shaped programs allocate through:
#   tests/frameworks/build.sh OUT_DIR      -> OUT_DIR/libc10_cuda.so
# Named like PyTorch's library so a profiler sees the same module name. CXX and CXXFLAGS are
# honoured. Frames are real: noipa in the source, frame pointers, no tail calls.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
src="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
cxx="${CXX:-g++}"
flags=(-std=c++17 -Wall -Wextra -g -O1 -fno-omit-frame-pointer -fno-optimize-sibling-calls -shared -fPIC)
# Build to a new file and rename: never rewrite a library another process may have mapped.
tmp="$out/.libc10_cuda.so.$$"
"$cxx" "${flags[@]}" ${CXXFLAGS:-} -I"$src/../runners" -o "$tmp" "$src/native/CUDACachingAllocator.cpp" -ldl
mv -f "$tmp" "$out/libc10_cuda.so"
