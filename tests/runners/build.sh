#!/usr/bin/env bash
# Builds every runner program against a libcuda (the fake, or a real one).
#   tests/runners/build.sh OUT_DIR LIB_DIR
# LIB_DIR must hold libcuda.so (for -lcuda) and libcuda.so.1 (what the programs load); for the
# fake that is target/<profile>/libcuda.so plus a libcuda.so.1 symlink to it. Every program gets
# LIB_DIR as its RUNPATH, so it runs without LD_LIBRARY_PATH (which still takes precedence).
# CC and CFLAGS are honoured. Outputs in OUT_DIR:
#   linked dlsym cudart_replay llama_shaped llama_shaped_stripped libinterposer.so forker
#   crasher threads py_embed libpy_worker.so
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 OUT_DIR LIB_DIR" >&2
  exit 2
fi
src="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
lib="$(cd "$2" && pwd)"
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

"$cc" "${cflags[@]}" -o "$out/linked" "$src/linked.c" "${link[@]}"
"$cc" "${cflags[@]}" -o "$out/dlsym" "$src/dlsym.c" "${dl[@]}"
"$cc" "${cflags[@]}" -o "$out/cudart_replay" "$src/cudart_replay.c" "${dl[@]}"
"$cc" "${cflags[@]}" "${frames[@]}" -o "$out/llama_shaped" "$src/llama_shaped.c" "${dl[@]}"
# strip to a new file and rename: never rewrite a binary another process may be running.
strip -o "$out/.llama_shaped_stripped.$$" "$out/llama_shaped"
mv -f "$out/.llama_shaped_stripped.$$" "$out/llama_shaped_stripped"
"$cc" "${cflags[@]}" -shared -fPIC -o "$out/libinterposer.so" "$src/interposer.c" -ldl
"$cc" "${cflags[@]}" -o "$out/forker" "$src/forker.c" "${link[@]}"
"$cc" "${cflags[@]}" -o "$out/crasher" "$src/crasher.c" "${link[@]}"
"$cc" "${cflags[@]}" -O2 -pthread -o "$out/threads" "$src/threads.c" "${link[@]}"
"$cc" "${cflags[@]}" -o "$out/py_embed" "$src/py_embed.c" "${dl[@]}"
"$cc" "${cflags[@]}" -shared -fPIC -pthread -o "$out/libpy_worker.so" "$src/py_worker.c" -ldl
