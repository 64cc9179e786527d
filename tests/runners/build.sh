#!/usr/bin/env bash
# Builds the runner programs against a libcuda (the fake, or a real one).
#   tests/runners/build.sh OUT_DIR LIB_DIR [PROGRAM...]
# LIB_DIR must hold libcuda.so (for -lcuda) and libcuda.so.1 (what the programs load); for the
# fake that is target/<profile>/libcuda.so plus a libcuda.so.1 symlink to it. Every program gets
# LIB_DIR as its RUNPATH, so it runs without LD_LIBRARY_PATH (which still takes precedence).
# CC and CFLAGS are honoured. Without PROGRAMs it builds, in OUT_DIR:
#   linked dlsym cudart_replay lookups llama_shaped llama_shaped_stripped libinterposer.so forker
#   crasher threads steady growing fds race spawn exits secure reload py_embed libpy_worker.so
# and, for the hostile-environment tests, the lock-free stub driver stub/libcuda.so.1 (+ the
# libcuda.so link) with the runners that need it, linked against it: sigcall forkstorm.
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

stub_driver() {
  # Built to a new file and renamed into place (a running test may have it mapped).
  mkdir -p "$out/stub"
  "$cc" "${cflags[@]}" -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$out/stub/.libcuda.so.1.$$" "$src/stub_cuda.c"
  mv -f "$out/stub/.libcuda.so.1.$$" "$out/stub/libcuda.so.1"
  ln -sfn libcuda.so.1 "$out/stub/libcuda.so"
}
stub=(-L"$out/stub" -lcuda -Wl,-rpath,"$out/stub")

build() {
  case "$1" in
    linked | forker | crasher | spawn | exits | fds) "$cc" "${cflags[@]}" -o "$out/$1" "$src/$1.c" "${link[@]}" ;;
    dlsym | cudart_replay | lookups | reload) "$cc" "${cflags[@]}" -o "$out/$1" "$src/$1.c" "${dl[@]}" ;;
    llama_shaped)
      "$cc" "${cflags[@]}" "${frames[@]}" -o "$out/llama_shaped" "$src/llama_shaped.c" "${dl[@]}"
      # strip to a new file and rename: never rewrite a binary another process may be running.
      strip -o "$out/.llama_shaped_stripped.$$" "$out/llama_shaped"
      mv -f "$out/.llama_shaped_stripped.$$" "$out/llama_shaped_stripped"
      ;;
    libinterposer.so) "$cc" "${cflags[@]}" -shared -fPIC -o "$out/$1" "$src/interposer.c" -ldl ;;
    py_embed) "$cc" "${cflags[@]}" -o "$out/$1" "$src/$1.c" "${dl[@]}" ;;
    libpy_worker.so) "$cc" "${cflags[@]}" -shared -fPIC -pthread -o "$out/$1" "$src/py_worker.c" -ldl ;;
    threads) "$cc" "${cflags[@]}" -O2 -pthread -o "$out/$1" "$src/$1.c" "${link[@]}" ;;
    steady) "$cc" "${cflags[@]}" -O2 -o "$out/$1" "$src/$1.c" "${link[@]}" ;;
    growing) "$cc" "${cflags[@]}" -O1 -o "$out/$1" "$src/$1.c" "${link[@]}" ;;
    race) "$cc" "${cflags[@]}" -O2 -pthread -o "$out/$1" "$src/$1.c" "${link[@]}" -ldl ;;
    secure) "$cc" "${cflags[@]}" -o "$out/$1" "$src/$1.c" -ldl ;;
    sigcall) "$cc" "${cflags[@]}" -O2 -o "$out/$1" "$src/$1.c" "${stub[@]}" -ldl -lrt ;;
    forkstorm) "$cc" "${cflags[@]}" -O2 -pthread -o "$out/$1" "$src/$1.c" "${stub[@]}" ;;
    cudart)
      [ -e "$lib/libcudart.so.12" ] || { echo "$0: $lib/libcudart.so.12 is missing" >&2; exit 1; }
      "$cc" "${cflags[@]}" -o "$out/$1" "$src/$1.c" -L"$lib" -l:libcudart.so.12 -Wl,-rpath,"$lib"
      ;;
    *) echo "$0: no program $1" >&2; exit 2 ;;
  esac
}

if [ $# -eq 0 ]; then
  set -- linked dlsym cudart_replay lookups llama_shaped libinterposer.so forker crasher threads \
    steady growing fds race spawn exits secure reload sigcall forkstorm py_embed libpy_worker.so
fi
case " $* " in *" sigcall "* | *" forkstorm "*) stub_driver ;; esac
for p in "$@"; do build "$p"; done
