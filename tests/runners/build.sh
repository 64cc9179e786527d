#!/usr/bin/env bash
# Builds the runner programs against a libcuda (the fake, or a real one).
#   tests/runners/build.sh OUT_DIR LIB_DIR [PROGRAM...]
# LIB_DIR must hold libcuda.so (for -lcuda) and libcuda.so.1 (what the programs load); for the
# fake that is target/<profile>/libcuda.so plus a libcuda.so.1 symlink to it. Every program gets
# LIB_DIR as its RUNPATH, so it runs without LD_LIBRARY_PATH (which still takes precedence).
# CC and CFLAGS are honoured. Without PROGRAMs it builds, in OUT_DIR:
#   linked dlsym cudart_replay lookups llama_shaped llama_shaped_stripped libinterposer.so forker
#   crasher threads
# `cudart` (linked against NVIDIA's libcudart.so.12, which LIB_DIR must then hold) is built only
# when named.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT_DIR LIB_DIR [PROGRAM...]" >&2
  exit 2
fi
src="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
lib="$(cd "$2" && pwd)"
shift 2
for f in libcuda.so libcuda.so.1; do
  [ -e "$lib/$f" ] || { echo "$0: $lib/$f is missing (symlink libcuda.so.1 -> libcuda.so)" >&2; exit 1; }
done
cc="${CC:-gcc}"
cflags=(-std=gnu11 -Wall -Wextra -g ${CFLAGS:-})
link=(-L"$lib" -lcuda -Wl,-rpath,"$lib")
dl=(-ldl -Wl,-rpath,"$lib")
# Real frames for stack attribution: no inlining across them (noipa in the source), frame
# pointers, no tail calls.
frames=(-O1 -fno-omit-frame-pointer -fno-optimize-sibling-calls)

build() {
  case "$1" in
    linked | forker | crasher) "$cc" "${cflags[@]}" -o "$out/$1" "$src/$1.c" "${link[@]}" ;;
    dlsym | cudart_replay | lookups) "$cc" "${cflags[@]}" -o "$out/$1" "$src/$1.c" "${dl[@]}" ;;
    llama_shaped)
      "$cc" "${cflags[@]}" "${frames[@]}" -o "$out/llama_shaped" "$src/llama_shaped.c" "${dl[@]}"
      # strip to a new file and rename: never rewrite a binary another process may be running.
      strip -o "$out/.llama_shaped_stripped.$$" "$out/llama_shaped"
      mv -f "$out/.llama_shaped_stripped.$$" "$out/llama_shaped_stripped"
      ;;
    libinterposer.so) "$cc" "${cflags[@]}" -shared -fPIC -o "$out/$1" "$src/interposer.c" -ldl ;;
    threads) "$cc" "${cflags[@]}" -O2 -pthread -o "$out/$1" "$src/$1.c" "${link[@]}" ;;
    cudart)
      [ -e "$lib/libcudart.so.12" ] || { echo "$0: $lib/libcudart.so.12 is missing" >&2; exit 1; }
      "$cc" "${cflags[@]}" -o "$out/$1" "$src/$1.c" -L"$lib" -l:libcudart.so.12 -Wl,-rpath,"$lib"
      ;;
    *) echo "$0: no program $1" >&2; exit 2 ;;
  esac
}

if [ $# -eq 0 ]; then
  set -- linked dlsym cudart_replay lookups llama_shaped libinterposer.so forker crasher threads
fi
for p in "$@"; do build "$p"; done
