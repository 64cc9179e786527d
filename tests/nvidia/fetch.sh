#!/usr/bin/env bash
# Fetches NVIDIA's driver library and CUDA runtime into the build tree for the tests that run
# against them (tests/e2e/tests/real_driver.rs), installing nothing and changing nothing on the
# system:
#   - libcuda.so.1 from Debian non-free's `libcuda1` (535.x on Debian 12, driver API 12.2):
#     `apt-get download` with a private sources list (this system's Debian mirrors, non-free
#     component) and private list/cache directories, then `dpkg -x`;
#   - libcudart.so.12 from the `nvidia-cuda-runtime-cu12` 12.9 wheel: `pip download --no-deps`.
# Both land in DEST/lib (libcuda.so.1, its libcuda.so link, libcudart.so.12); DEST/VERSIONS says
# what was fetched. NVIDIA's files never belong in the repository: DEST is under target/.
#   tests/nvidia/fetch.sh [DEST]   (default: ${CARGO_TARGET_DIR:-target}/nvidia)
# Idempotent: when DEST already holds both, it does nothing (no network). Prints ONE line, what
# it fetched or found, or why it failed; exits 0, or 1 on failure. Details go to DEST/fetch.log.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${1:-${CARGO_TARGET_DIR:-$root/target}/nvidia}"
mkdir -p "$dest" || { echo "real-driver tier: NOT RUN: cannot create $dest"; exit 1; }
dest="$(cd "$dest" && pwd)"
log="$dest/fetch.log"
wheel_spec='nvidia-cuda-runtime-cu12==12.9.*'

ready() { [ -f "$dest/VERSIONS" ] && [ -e "$dest/lib/libcuda.so.1" ] && [ -e "$dest/lib/libcudart.so.12" ]; }
fail() {
  echo "real-driver tier: NOT RUN: $1 (details: $log); everything else still runs"
  exit 1
}
if ready; then
  echo "real-driver tier: $(paste -sd ' ' "$dest/VERSIONS" | sed 's/ / + /2') already in $dest/lib"
  exit 0
fi

start=$SECONDS
work="$(mktemp -d "$dest/.fetch.XXXXXX")" || fail "cannot create a temporary directory in $dest"
trap 'rm -rf "$work"' EXIT
: >"$log"

# --- libcuda1 from Debian non-free -------------------------------------------------------------
command -v apt-get >/dev/null && command -v dpkg >/dev/null || fail "apt-get/dpkg not found (not Debian)"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/deb"
# This system's Debian mirrors and suites, with the non-free component added.
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
opt=""
[ -r "$keyring" ] && opt="[signed-by=$keyring] "
apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' \
    'Created-By: Packages' 'Component: main' 2>>"$log" | sort -u |
  while read -r uri suite; do echo "deb ${opt}${uri} ${suite} non-free"; done >"$work/sources.list"
[ -s "$work/sources.list" ] || fail "no Debian mirror in this system's apt sources"
apt_opts=(-q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
  -o APT::Sandbox::User=root)
{ echo "== sources"; cat "$work/sources.list"; echo "== apt-get update"; } >>"$log"
apt-get "${apt_opts[@]}" update >>"$log" 2>&1 || fail "apt-get update of Debian non-free failed"
(cd "$work/deb" && apt-get "${apt_opts[@]}" download libcuda1) >>"$log" 2>&1 ||
  fail "apt-get download libcuda1 (Debian non-free) failed"
deb="$(ls "$work/deb"/libcuda1_*.deb 2>/dev/null | head -1)"
[ -n "$deb" ] || fail "apt-get download libcuda1 left no .deb"
dpkg -x "$deb" "$work/x" >>"$log" 2>&1 || fail "dpkg -x $(basename "$deb") failed"
real="$(find "$work/x" -name 'libcuda.so.*.*' -type f | head -1)"
[ -n "$real" ] || fail "$(basename "$deb") holds no libcuda.so"
mkdir -p "$work/lib"
cp "$real" "$work/lib/" && ln -s "$(basename "$real")" "$work/lib/libcuda.so.1" &&
  ln -s libcuda.so.1 "$work/lib/libcuda.so" || fail "cannot copy libcuda out of the package"
cuda_version="$(dpkg-deb -f "$deb" Version)"

# --- cudart 12.9 from the nvidia-cuda-runtime-cu12 wheel ----------------------------------------
echo "== pip download $wheel_spec" >>"$log"
PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip download -q --no-deps --only-binary=:all: \
    --retries 2 --timeout 20 -d "$work/whl" "$wheel_spec" >>"$log" 2>&1 ||
  fail "pip download $wheel_spec failed"
whl="$(ls "$work/whl"/*.whl 2>/dev/null | head -1)"
[ -n "$whl" ] || fail "pip download $wheel_spec left no wheel"
python3 - "$whl" "$work/lib" >>"$log" 2>&1 <<'PY' || fail "no libcudart.so.12 in $(basename "$whl")"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    member = next(n for n in z.namelist() if n.endswith("/lib/libcudart.so.12"))
    with z.open(member) as src, open(sys.argv[2] + "/libcudart.so.12", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
cudart_version="$(basename "$whl" | cut -d- -f2)"

# --- install into DEST (VERSIONS last: it says the files are complete) ---------------------------
printf 'libcuda1 %s\nnvidia-cuda-runtime-cu12 %s\n' "$cuda_version" "$cudart_version" >"$work/VERSIONS"
rm -rf "$dest/lib" "$dest/VERSIONS"
mv "$work/lib" "$dest/lib" && mv "$work/VERSIONS" "$dest/VERSIONS" ||
  fail "cannot move the files into $dest"
kib=$(( ($(stat -c %s "$deb") + $(stat -c %s "$whl")) / 1024 ))
echo "real-driver tier: fetched libcuda1 $cuda_version + nvidia-cuda-runtime-cu12" \
  "$cudart_version (${kib} KiB downloaded) into $dest/lib in $((SECONDS - start)) s"
