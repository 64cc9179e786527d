#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain: libFuzzer (the libfuzzer-sys crate, which
# compiles it from source) over the targets in fuzz/src, with rustc's SanitizerCoverage pass
# switched on by codegen flags, as cargo-fuzz does with `--sanitizer none`. No nightly needed.
#
#   fuzz/run.sh fetch                        download what the build needs (crates.io)
#   fuzz/run.sh build                        build the fuzzers into target/fuzz
#   fuzz/run.sh TARGET|all SECONDS [OPT...]  fuzz TARGET (every target in turn with `all`) for
#                                            SECONDS each; OPTs go to libFuzzer (-seed=1, ...)
#   fuzz/run.sh minimize TARGET|all          fold what the runs found into fuzz/corpus/TARGET,
#                                            kept small (see minimize below)
#   fuzz/run.sh list                         the targets
#
# A run first runs the worst-case 1 MiB inputs and the fixed findings (fuzz/regressions/TARGET)
# once each, then fuzzes: it reads fuzz/corpus/TARGET and writes what it finds to
# target/fuzz/corpus/TARGET; the committed corpus changes only by `minimize`. A panic, a hang over 2 s or one allocation above
# 1 GiB is a finding: its input is saved in target/fuzz/artifacts/TARGET/ and the run exits 1.
# Fix it, then copy the input to fuzz/regressions/TARGET/, which `cargo test` replays.
# Exit codes: 0 nothing found, 1 a finding, 2 usage, 3 the download failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
targets=(trace_reader analysis report_diff rules sweep_http)
manifest=fuzz/libfuzzer/Cargo.toml
export CARGO_TARGET_DIR=$root/target/fuzz
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$CARGO_TARGET_DIR/$host/release

usage() {
  sed -n '6,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

fetch() {
  cargo fetch --manifest-path "$manifest" -q || {
    echo "fuzz: could not download the fuzzer's crates from crates.io; not fuzzing (the corpus is still replayed by cargo test)" >&2
    exit 3
  }
}

build() {
  fetch
  mkdir -p "$CARGO_TARGET_DIR"
  # The fuzz targets never run `vramtrace run`: an empty file stands in for the embedded shim,
  # which would otherwise be built by a nested cargo that inherits the coverage flags.
  : >"$CARGO_TARGET_DIR/no-shim.so"
  # --target keeps the flags off build scripts and proc macros, as cargo-fuzz does.
  VRAMTRACE_EMBED_SHIM=$CARGO_TARGET_DIR/no-shim.so \
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
    cargo build -q --release --manifest-path "$manifest" --target "$host" --bins
}

known() {
  local t
  for t in "${targets[@]}"; do [ "$t" = "$1" ] && return 0; done
  echo "fuzz: no target $1 (targets: ${targets[*]})" >&2
  exit 2
}

# The worst-case 1 MiB inputs (fuzz/src/large.rs), written to target/fuzz/large/<target>/: the
# fuzzer seldom grows an input that far by itself.
large() {
  rm -rf "$CARGO_TARGET_DIR/large"
  # A plain build, in the workspace's own target directory (cargo test has built it there).
  CARGO_TARGET_DIR=$root/target cargo run -q -p vramtrace-fuzz --example large -- "$CARGO_TARGET_DIR/large"
}

# libfuzzer TARGET LOG ARG...: the target's fuzzer under the limits every run keeps (a hang is
# over 2 s, 2 GiB of RSS in all; -malloc_limit_mb needs sanitizer hooks, so the binaries' own
# allocator enforces the 1 GiB bound on one allocation), in a scratch TMPDIR; its exit status.
libfuzzer() {
  local t=$1 log=$2 rc=0
  shift 2
  mkdir -p "$CARGO_TARGET_DIR/tmp/$t"
  TMPDIR=$CARGO_TARGET_DIR/tmp/$t "$bin_dir/$t" -timeout=2 -rss_limit_mb=2048 -max_len=1048576 "$@" >"$log" 2>&1 || rc=$?
  rm -rf "$CARGO_TARGET_DIR/tmp/$t"
  return "$rc"
}

# found TARGET WHAT LOG: a finding, in one line and the log's telling lines.
found() {
  echo "fuzz: $1: $2; log: $3" >&2
  grep -E 'Running:|panicked|ERROR: libFuzzer|SUMMARY|vramtrace-fuzz:' "$3" | tail -5 >&2
}

# check TARGET: the large inputs and every fixed finding (fuzz/regressions/TARGET), each run once
# under the fuzz run's limits, so a hang that once was fixed is a finding again.
check() {
  local t=$1 log=$CARGO_TARGET_DIR/$1.check.log files=() rc=0
  for f in "$CARGO_TARGET_DIR/large/$t"/* "fuzz/regressions/$t"/*; do [ -f "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 0
  libfuzzer "$t" "$log" "${files[@]}" || rc=$?
  if [ "$rc" -ne 0 ]; then
    found "$t" "a large or fixed input FAILED (exit $rc)" "$log"
    return 1
  fi
  echo "fuzz: $t: ${#files[@]} large and fixed inputs ran clean"
}

# fuzz TARGET SECONDS [OPT...]: one libFuzzer run, summarised in one line.
fuzz() {
  local t=$1 secs=$2 log=$CARGO_TARGET_DIR/$1.log rc=0 execs cov ft
  shift 2
  mkdir -p "$CARGO_TARGET_DIR/corpus/$t" "$CARGO_TARGET_DIR/artifacts/$t"
  libfuzzer "$t" "$log" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$CARGO_TARGET_DIR/artifacts/$t/" \
    "$@" "$CARGO_TARGET_DIR/corpus/$t" "fuzz/corpus/$t" || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ "$rc" -ne 0 ]; then
    found "$t" "FOUND a crash, hang or allocation above 1 GiB (exit $rc); input: $CARGO_TARGET_DIR/artifacts/$t/" "$log"
    return 1
  fi
  echo "fuzz: $t: ${execs:-0} executions in ${secs}s, coverage ${cov:-?} edges, ${ft:-?} features; nothing found"
}

# The committed corpus is kept small (a few hundred KiB in all): the bytes each target may keep.
budget() {
  case $1 in
    analysis | report_diff) echo 114688 ;;
    trace_reader) echo 32768 ;;
    rules) echo 24576 ;;
    *) echo 8192 ;;
  esac
}

# minimize TARGET: libFuzzer runs every input once (crash-resistant -merge) and records the edges
# each covers; then, smallest first, an input is kept when it covers an edge that none kept before
# does and the target's budget allows it, and last, kept inputs whose every edge another kept
# input covers are dropped.
minimize() {
  local t=$1 work=$CARGO_TARGET_DIR/merged/$1 ctl=$CARGO_TARGET_DIR/$1.merge.ctl
  rm -rf "$work" "$ctl" && mkdir -p "$work/libfuzzer" "$work/kept" "$CARGO_TARGET_DIR/corpus/$t"
  libfuzzer "$t" "$CARGO_TARGET_DIR/$t.merge.log" -merge=1 -merge_control_file="$ctl" \
    "$work/libfuzzer" "fuzz/corpus/$t" "$CARGO_TARGET_DIR/corpus/$t"
  awk 'NR == 1 { n = $1 } NR > 2 && NR <= n + 2 { path[NR - 3] = $0 }
       $1 == "STARTED" { size[$2] = $3 } $1 == "COV" { $1 = ""; cov[$2] = $0 }
       END { for (i in cov) { c = cov[i]; sub(/^ *[0-9]+/, "", c); print size[i], path[i], c } }' "$ctl" |
    sort -n -k1,1 -k2,2 |
    awk -v budget="$(budget "$t")" '{ size[NR] = $1; file[NR] = $2; ne[NR] = NF - 2; for (i = 3; i <= NF; i++) e[NR, i - 2] = $i }
      END {
        # Smallest first: keep what adds an edge, within the budget.
        for (r = 1; r <= NR; r++) {
          add = 0; for (i = 1; i <= ne[r]; i++) if (!(e[r, i] in n)) add = 1
          if (add && total + size[r] <= budget) { total += size[r]; kept[r] = 1; for (i = 1; i <= ne[r]; i++) n[e[r, i]]++ }
        }
        # Then drop every kept input whose edges all stay covered by the others.
        for (r = 1; r <= NR; r++) if (r in kept) {
          redundant = 1; for (i = 1; i <= ne[r]; i++) if (n[e[r, i]] < 2) redundant = 0
          if (redundant) { delete kept[r]; for (i = 1; i <= ne[r]; i++) n[e[r, i]]-- }
        }
        for (r = 1; r <= NR; r++) if (r in kept) print file[r]
      }' |
    while read -r f; do cp "$f" "$work/kept/$(sha1sum <"$f" | cut -c1-40)"; done
  rm -rf "fuzz/corpus/$t"
  mv "$work/kept" "fuzz/corpus/$t"
  echo "fuzz: $t: corpus $(ls "fuzz/corpus/$t" | wc -l) files, $(cat "fuzz/corpus/$t"/* | wc -c) bytes"
}

[ $# -ge 1 ] || usage
case $1 in
  list) printf '%s\n' "${targets[@]}" ;;
  fetch) fetch ;;
  build) build ;;
  minimize)
    [ $# -eq 2 ] || usage
    build
    if [ "$2" = all ]; then for t in "${targets[@]}"; do minimize "$t"; done; else known "$2"; minimize "$2"; fi
    ;;
  *)
    [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || usage
    [ "$1" = all ] || known "$1"
    build
    large
    sel=("$1")
    [ "$1" = all ] && sel=("${targets[@]}")
    status=0
    for t in "${sel[@]}"; do
      if check "$t"; then fuzz "$t" "${@:2}" || status=1; else status=1; fi
    done
    exit $status
    ;;
esac
