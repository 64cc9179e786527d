#!/usr/bin/env bash
# Records samples/llama-sim: the llama.cpp-shaped runner (tests/runners/llama_shaped.c) on the
# fake driver (tests/fake-cuda), under `vramtrace run`. SIMULATED: no GPU was involved.
#   samples/make-llama-sim.sh        (from anywhere; rebuilds what it needs in release mode)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release -q -p vramtrace -p vramtrace-shim -p vramtrace-fake-cuda
fake="$root/target/release/fake-cuda"
mkdir -p "$fake"
cp target/release/libcuda.so "$fake/libcuda.so.1"
ln -sf libcuda.so.1 "$fake/libcuda.so"
bash tests/runners/build.sh target/release/runners "$fake" >/dev/null
out="$root/samples/llama-sim"
rm -rf "$out"
# An 8 GiB GPU; a 7B-q4-like model: 3.8 GiB weights, 1 GiB f16 KV, 0.5 GiB compute; the prompt is
# processed in 16 batches of 512 tokens, ggml's VMM pool growing 32 KiB per token, and a final
# batch that no longer fits: ggml aborts, as llama-server does on a CUDA OOM.
env FAKE_CUDA_CAPACITY=8GiB FAKE_CUDA_RUNTIME_BYTES=$((300 << 20)) \
    LLAMA_WEIGHTS_BYTES=$((3891 << 20)) LLAMA_KV_BYTES=$((1024 << 20)) LLAMA_COMPUTE_BYTES=$((512 << 20)) \
    LLAMA_STEPS=16 LLAMA_TOKENS_PER_STEP=512 LLAMA_POOL_BYTES_PER_TOKEN=32768 LLAMA_OOM_AT_END=1 \
    target/release/vramtrace run --quiet --out "$out" -- target/release/runners/llama_shaped >/dev/null 2>&1 || true
# The trace keeps the zero-filled space reserved ahead of the last record: trim it for the repo.
python3 - "$out" <<'PY'
import glob, sys
for p in glob.glob(sys.argv[1] + "/*.vtr"):
    b = open(p, "rb").read()
    end = len(b.rstrip(b"\0"))
    open(p, "wb").write(b[: (end + 7) // 8 * 8])
PY
# The binary, so the stacks symbolize on any machine (found by name next to the trace, checked
# by build-id).
cp target/release/runners/llama_shaped "$out/"
target/release/vramtrace report "$out" -o "$out/report" >/dev/null
echo "recorded $out"
