#!/usr/bin/env bash
# Seeds the fuzzers from real runs: the test runners under `vramtrace run` (linked, threads,
# forks, a crash, an early _exit, llama.cpp's shape, Python stacks) and samples/llama-sim,
# turned into inputs of every target by `cargo run --example seeds` and written where a fuzz run
# writes what it finds (target/fuzz/corpus/<target>/); `fuzz/run.sh minimize all` then folds
# them into the committed corpus.
# Needs target/debug/vramtrace and the runners, which the end-to-end tests build
# (`cargo test -p vramtrace-e2e --test runners_plain`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug
for f in "$bin/vramtrace" "$bin/runners/linked" "$bin/fake-cuda/libcuda.so.1"; do
  [ -e "$f" ] || { echo "fuzz/seeds.sh: $f is missing: run cargo test -p vramtrace-e2e --test runners_plain first" >&2; exit 1; }
done
runs=target/fuzz/seed-runs
rm -rf "$runs" && mkdir -p "$runs"
export LD_LIBRARY_PATH=$PWD/$bin/fake-cuda
record() { # NAME VRAMTRACE_RUN_OPTION... -- PROGRAM ARGS...: a run; a failing program is fine
  local name=$1
  shift
  "$bin/vramtrace" run --out "$runs/$name" "$@" >/dev/null 2>&1 || true
}
record linked -- "$bin/runners/linked"
record dlsym -- "$bin/runners/dlsym"
record depth4 --stack-depth 4 -- "$bin/runners/linked"
record threads -- "$bin/runners/threads" 3 20
record forker -- "$bin/runners/forker"
record crasher -- "$bin/runners/crasher" 20 abort
record exits -- "$bin/runners/exits" _exit 3
record steady -- "$bin/runners/steady" 50 10 20
record llama -- env LLAMA_STEPS=3 "$bin/runners/llama_shaped"
py=$(ls -d ~/.pyenv/versions/3.1[0-9]*/bin/python3 2>/dev/null | head -1 || true)
[ -n "$py" ] && record python -- "$py" tests/python/alloc_stacks.py main,thread,generator,recursion cdll
dirs=(samples/llama-sim)
for d in "$runs"/*/; do ls "$d"*.vtr >/dev/null 2>&1 && dirs+=("$d"); done
cargo run -q -p vramtrace-fuzz --example seeds -- target/fuzz/corpus "${dirs[@]}"
for t in target/fuzz/corpus/*/; do echo "fuzz/seeds.sh: $(ls "$t" | wc -l) inputs in $t"; done
