#!/usr/bin/env bash
# Per-core throughput of `report` on one pod's file, side by side with
# `rg -j1 --no-mmap -c -F -f <the pack's literals>` on the same file
# (`make bench-scan`). Both pinned to one core with taskset.
#
#   SCAN_MB=64 RUNS=5 bash bench/scan.sh
#
# Corpora (cached in $BENCH_CACHE, default $TMPDIR/litellm-sentinel-bench):
#   gen    bench/gen_corpus.py with GEN_PODS=1 (one pod, average line ~227 bytes)
#   short  bench/gen_short.py (one pod, 60-110 byte lines, half access lines)
# Prints the best-of-RUNS wall time, MiB/s and ours/rg per corpus.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCAN_MB=${SCAN_MB:-64}
RUNS=${RUNS:-5}
CPU=${CPU:-0}
CACHE=${BENCH_CACHE:-${TMPDIR:-/tmp}/litellm-sentinel-bench}
if [ -n "${SENTINEL_BIN:-}" ]; then
  BIN=$SENTINEL_BIN
else
  (cd "$ROOT" && cargo build --release --quiet)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/litellm-sentinel"
fi
command -v rg >/dev/null || { echo "scan: ripgrep needed" >&2; exit 2; }

mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/litellm-sentinel-scan.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$BIN" rules >"$WORK/pack.toml"
python3 - "$WORK/pack.toml" "$WORK/patterns.txt" <<'PY'
import sys, tomllib
pack = tomllib.load(open(sys.argv[1], "rb"))
lits = list(pack.get("connection_failure", {}).get("contains", []))
for rule in pack["rule"]:
    if rule.get("enabled", True):
        c = rule.get("contains", [])
        lits += [c] if isinstance(c, str) else c
out = []
for lit in lits:
    if lit not in out:
        out.append(lit)
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
echo "scan: $(wc -l <"$WORK/patterns.txt") literals; cpu $CPU of $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)"

best() { # best wall time (s) of RUNS runs of "$@"
  local b=""
  for _ in $(seq "$RUNS"); do
    local t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1 || [ $? -eq 1 ]
    local t1=$EPOCHREALTIME
    b=$(python3 -c "t=$t1-$t0; b='$b'; print(f'{t:.4f}' if not b or t<float(b) else b)")
  done
  echo "$b"
}

for corpus in gen short; do
  dir="$CACHE/scan-$corpus-${SCAN_MB}mb"
  if [ ! -d "$dir" ]; then
    case $corpus in
      gen) GEN_PODS=1 python3 "$ROOT/bench/gen_corpus.py" "$SCAN_MB" "$dir.tmp" 1 ;;
      short) python3 "$ROOT/bench/gen_short.py" "$SCAN_MB" "$dir.tmp" 1 ;;
    esac
    mv "$dir.tmp" "$dir"
  fi
  file=$(find "$dir" -name '0.log' | head -1)
  bytes=$(stat -c %s "$file")
  cat "$file" >/dev/null
  ours=$(best taskset -c "$CPU" "$BIN" report --json "$file")
  rg=$(best taskset -c "$CPU" rg -j1 --no-mmap -c -F -f "$WORK/patterns.txt" "$file")
  python3 - "$corpus" "$bytes" "$ours" "$rg" <<'PY'
import sys
name, n, ours, rg = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
mib = n / 1048576
print(f"scan: {name:5} {mib:.0f} MiB  ours {ours:.3f} s = {mib/ours:7.0f} MiB/s   rg -j1 {rg:.3f} s = {mib/rg:7.0f} MiB/s   ours/rg {rg/ours:.2f}x")
PY
done
