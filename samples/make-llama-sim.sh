#!/usr/bin/env bash
# Records samples/llama-sim: the llama.cpp-shaped runner (tests/runners/llama_shaped.c) on the
# fake driver (tests/fake-cuda), under `vramtrace run`. SIMULATED: no GPU was involved.
#   samples/make-llama-sim.sh        (from anywhere; rebuilds what it needs in release mode)
#
# The committed files carry no path or host name of the machine that made them: the run happens
# in a private mount and UTS namespace (`unshare`, needs root or unprivileged user namespaces)
# where the runner, the shim and the driver live under /opt/llama-sim and the host is "gpu-box";
# the runner is compiled with its source paths relative to the repository and a RUNPATH relative
# to itself, so the copy next to the trace symbolizes anywhere and runs from a clone
# (LD_LIBRARY_PATH, or target/release/fake-cuda built by this script).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release -q -p vramtrace -p vramtrace-shim -p vramtrace-fake-cuda
fake="$root/target/release/fake-cuda"
mkdir -p "$fake"
cp target/release/libcuda.so "$fake/.libcuda.so.1.$$" && mv -f "$fake/.libcuda.so.1.$$" "$fake/libcuda.so.1"
ln -sf libcuda.so.1 "$fake/libcuda.so"

out=samples/llama-sim
rm -rf "$out"
mkdir -p "$out"
# Real frames (as tests/runners/build.sh builds it), paths relative to the repository.
gcc -std=gnu11 -Wall -Wextra -g -O1 -fno-omit-frame-pointer -fno-optimize-sibling-calls \
    -fdebug-prefix-map="$root"=. -o "$out/llama_shaped" tests/runners/llama_shaped.c -ldl \
    -Wl,-rpath,'$ORIGIN/../../target/release/fake-cuda'

# An 8 GiB GPU; a 7B-q4-like model: 3891 MiB weights, 1 GiB f16 KV, 512 MiB compute; the prompt is
# processed in 16 batches of 512 tokens, ggml's VMM pool growing 32 KiB per token, and a final
# batch that no longer fits: ggml aborts, as llama-server does on a CUDA OOM.
unshare --mount --uts --fork --map-root-user sh -eu -c '
    root="$1"; out="$2"
    mount -t tmpfs none /opt
    mkdir -p /opt/llama-sim/bin /opt/llama-sim/lib
    cp "$out/llama_shaped" "$root/target/release/vramtrace" /opt/llama-sim/bin/
    cp "$root/target/release/libvramtrace.so" "$root/target/release/fake-cuda/libcuda.so.1" /opt/llama-sim/lib/
    hostname gpu-box
    cd /opt/llama-sim
    env LD_LIBRARY_PATH=/opt/llama-sim/lib \
        FAKE_CUDA_CAPACITY=8GiB FAKE_CUDA_RUNTIME_BYTES=$((300 << 20)) \
        LLAMA_WEIGHTS_BYTES=$((3891 << 20)) LLAMA_KV_BYTES=$((1024 << 20)) LLAMA_COMPUTE_BYTES=$((512 << 20)) \
        LLAMA_STEPS=16 LLAMA_TOKENS_PER_STEP=512 LLAMA_POOL_BYTES_PER_TOKEN=32768 LLAMA_OOM_AT_END=1 \
        /opt/llama-sim/bin/vramtrace run --quiet --shim /opt/llama-sim/lib/libvramtrace.so \
        --out "$root/$out" -- /opt/llama-sim/bin/llama_shaped >/dev/null 2>&1 || true
' sh "$root" "$out"

# The trace keeps the zero-filled space reserved ahead of the last record: trim it for the repo.
python3 - "$out" <<'PY'
import glob, sys
for p in glob.glob(sys.argv[1] + "/*.vtr"):
    b = open(p, "rb").read()
    end = len(b.rstrip(b"\0"))
    open(p, "wb").write(b[: (end + 7) // 8 * 8])
PY
target/release/vramtrace report "$out" -o "$out/report" >/dev/null
if grep -rIl "$root" "$out" >/dev/null; then
    echo "make-llama-sim: $root still appears in $out" >&2
    exit 1
fi
echo "recorded $out"
