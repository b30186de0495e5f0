#!/usr/bin/env bash
# `make bench-compare`: litellm-sentinel side by side with ripgrep, mtail and
# cat on the same generated CRI corpus, in one run, then the `/metrics`
# scrape benchmark at 2,000 pods (scripts/bench-compare-metrics.py).
#
#   CORPUS_MB=640 RUNS=3 bash scripts/bench-compare.sh
#
# CORPUS_MB    size of bench/gen_corpus.py's 10-pod corpus (default 640: one
#              pod's file is 64 MiB)
# RUNS         runs of each measurement, alternated (default 3; medians shown)
# SEED         corpus seed (default 1)
# PARTS        "scan metrics" (default), or one of them
# SENTINEL_BIN use this binary instead of building target/release/litellm-sentinel
# BENCH_CACHE  where corpora are kept between runs (default $TMPDIR/litellm-sentinel-bench)
#
# Measurements (per round, in this order):
#   ours/1 core  taskset -c 0 litellm-sentinel report --json <pod 0's file>
#   ours/all     litellm-sentinel report --json <the corpus: 10 pods> on every core
#   rg -j1       taskset -c 0 rg -j1 --no-mmap -c -F -f <the pack's literals> <pod 0's file>
#   mtail        taskset -c 0 mtail --one_shot, scripts/bench-compare.mtail (two patterns), <pod 0's file>
#   cat          taskset -c 0 cat <pod 0's file> >/dev/null
# Wall time from the shell's microsecond clock; CPU time and peak RSS from
# /usr/bin/time -v. Exits 1 when a count differs from the corpus's
# expected.json: ours (every count, one pod and ten pods) and mtail's two
# counters (against the line-level counts).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORPUS_MB=${CORPUS_MB:-640}
RUNS=${RUNS:-3}
SEED=${SEED:-1}
PARTS=${PARTS:-"scan metrics"}
CACHE=${BENCH_CACHE:-${TMPDIR:-/tmp}/litellm-sentinel-bench}

for tool in mtail rg taskset python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench-compare: $tool is not installed (make deps)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench-compare: /usr/bin/time is not installed (Debian package time)" >&2; exit 2; }
python3 -c 'import tomllib' 2>/dev/null || { echo "bench-compare: python3 >= 3.11 needed (tomllib)" >&2; exit 2; }

if [ -n "${SENTINEL_BIN:-}" ]; then
  BIN=$SENTINEL_BIN
else
  echo "bench-compare: cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --quiet)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/litellm-sentinel"
fi
echo "bench-compare: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench-compare: $(rg --version | head -1), mtail $(mtail --version 2>&1 | grep -o 'version [^ ]*' | head -1 | cut -d' ' -f2), $(python3 --version), kernel $(uname -r)"
echo "bench-compare: binary $BIN ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo '+changes'))"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/litellm-sentinel-bench-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

status=0
if [[ " $PARTS " == *" scan "* ]]; then
  # --- corpus: the same cache layout as bench/compare.sh -------------------------
  GEN="$ROOT/bench/gen_corpus.py"
  GEN_HASH=$(sha256sum "$GEN" | cut -c1-12)
  CORPUS="$CACHE/corpus-${CORPUS_MB}mb-seed${SEED}-${GEN_HASH}"
  if [ ! -f "$CORPUS/expected.json" ]; then
    rm -rf "$CORPUS" "$CORPUS.tmp"
    mkdir -p "$CACHE"
    echo "bench-compare: generating a ${CORPUS_MB} MiB corpus in $CORPUS" >&2
    python3 "$GEN" "$CORPUS_MB" "$CORPUS.tmp" "$SEED"
    mv "$CORPUS.tmp" "$CORPUS"
  fi
  ONE=$(find "$CORPUS" -path '*/llm_litellm-0_*/litellm/0.log' -type f | head -1)
  [ -n "$ONE" ] || { echo "bench-compare: no litellm-0 file in $CORPUS" >&2; exit 2; }
  mapfile -t ALL < <(find "$CORPUS" -name '*.log' -type f | sort)

  # The rule pack's literals (every enabled rule's `contains` and the
  # connection-failure wordings), from the pack the binary really uses.
  "$BIN" rules >"$WORK/pack.toml"
  python3 - "$WORK/pack.toml" "$WORK/literals.txt" <<'EOF'
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
EOF
  mkdir -p "$WORK/mtail"
  cp "$ROOT/scripts/bench-compare.mtail" "$WORK/mtail/two-patterns.mtail"

  run() {
    local m=$1 out=$2
    case $m in
      ours1) /usr/bin/time -v -o "$out" taskset -c 0 "$BIN" report --json "$ONE" >"$WORK/ours1.json" ;;
      oursN) /usr/bin/time -v -o "$out" "$BIN" report --json "$CORPUS" >"$WORK/oursN.json" ;;
      # rg exits 1 when nothing matches: not a failure here.
      rg) /usr/bin/time -v -o "$out" taskset -c 0 rg -j1 --no-mmap -c -F -f "$WORK/literals.txt" "$ONE" >"$WORK/rg.txt" || [ $? -eq 1 ] ;;
      mtail) /usr/bin/time -v -o "$out" taskset -c 0 mtail --one_shot --one_shot_format prometheus --port 0 \
          --progs "$WORK/mtail" --logs "$ONE" >"$WORK/mtail.txt" 2>"$WORK/mtail.err" ;;
      cat) /usr/bin/time -v -o "$out" taskset -c 0 cat "$ONE" >/dev/null ;;
    esac
  }
  cat "${ALL[@]}" >/dev/null # page cache warm: every tool reads from memory
  MEASURES="ours1 oursN rg mtail cat"
  for round in $(seq 1 "$RUNS"); do
    for m in $MEASURES; do
      t0=$EPOCHREALTIME
      if ! run "$m" "$WORK/time.$m.$round"; then
        echo "bench-compare: $m failed" >&2
        [ -f "$WORK/$m.err" ] && tail -20 "$WORK/$m.err" >&2
        exit 1
      fi
      t1=$EPOCHREALTIME
      python3 -c "print(f'{$t1 - $t0:.4f}')" >"$WORK/wall.$m.$round"
    done
    echo "bench-compare: round $round of $RUNS done, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  done

  python3 - "$WORK" "$CORPUS/expected.json" "$ONE" "$RUNS" "$(nproc)" <<'EOF' || status=1
import json, os, re, statistics, sys

work, expected_path, one, runs, cores = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
exp = json.load(open(expected_path))
one_bytes = os.path.getsize(one)
all_bytes = exp["totals"]["bytes"]
MiB = 1048576

def sample(m, r):
    t = {}
    for line in open(f"{work}/time.{m}.{r}"):
        k, _, v = line.strip().rpartition(": ")
        t[k] = v
    return {
        "wall": float(open(f"{work}/wall.{m}.{r}").read()),
        "cpu": float(t["User time (seconds)"]) + float(t["System time (seconds)"]),
        "rss": int(t["Maximum resident set size (kbytes)"]) / 1024,
    }

names = {
    "ours1": ("litellm-sentinel report, 1 pod, taskset -c 0", one_bytes),
    "oursN": (f"litellm-sentinel report, 10 pods, {cores} cores", all_bytes),
    "rg": ("rg -j1 --no-mmap -c -F -f <pack literals>, 1 pod, taskset -c 0", one_bytes),
    "mtail": ("mtail --one_shot, 2 patterns, 1 pod, taskset -c 0", one_bytes),
    "cat": ("cat >/dev/null, 1 pod, taskset -c 0", one_bytes),
}
res = {}
for m, (label, nbytes) in names.items():
    s = [sample(m, r) for r in range(1, runs + 1)]
    wall = statistics.median(x["wall"] for x in s)
    cpu = statistics.median(x["cpu"] for x in s)
    res[m] = {
        "label": label, "bytes": nbytes, "wall": wall, "cpu": cpu,
        "walls": [x["wall"] for x in s],
        "rate": nbytes / MiB / wall,
        "cpu_rate": nbytes / MiB / cpu if cpu > 0 else float("inf"),
        "rss": max(x["rss"] for x in s),
    }

print(f"\nscan: pod 0's file {one_bytes / MiB:.1f} MiB, the corpus {all_bytes / MiB:.1f} MiB (10 pods); median of {runs} runs, alternated")
print(f"{'measurement':<62} {'wall s':>7} {'MiB/s':>8} {'CPU s':>7} {'MiB/CPU-s':>10} {'peak RSS MiB':>13}  runs (wall s)")
for m, r in res.items():
    print(f"{r['label']:<62} {r['wall']:>7.3f} {r['rate']:>8.0f} {r['cpu']:>7.2f} {r['cpu_rate']:>10.0f} {r['rss']:>13.1f}  {' '.join(f'{w:.3f}' for w in r['walls'])}")

o = res["ours1"]
print("\nratios (throughput, wall; CPU-time throughput in brackets):")
for other in ("rg", "mtail", "cat"):
    x = res[other]
    print(f"  ours per core / {other:<5} {o['rate'] / x['rate']:>7.2f}x  ({o['cpu_rate'] / x['cpu_rate']:.2f}x)   peak RSS ours/{other} {o['rss'] / x['rss']:.2f}x")
n = res["oursN"]
print(f"  ours {cores} cores, 10 pods / ours 1 core   {n['rate'] / o['rate']:>7.2f}x")

targets = [
    ("ours per core >= 1 GiB/s", o["rate"] >= 1024, f"{o['rate']:.0f} MiB/s"),
    ("ours per core >= 0.8x rg -j1", o["rate"] / res["rg"]["rate"] >= 0.8, f"{o['rate'] / res['rg']['rate']:.2f}x"),
    ("ours per core >= 30x mtail (2 patterns)", o["rate"] / res["mtail"]["rate"] >= 30, f"{o['rate'] / res['mtail']['rate']:.1f}x"),
    (f"{cores} cores with 10 pods >= 1.8x one core", n["rate"] / o["rate"] >= 1.8, f"{n['rate'] / o['rate']:.2f}x"),
    ("report peak RSS <= 16 MiB", max(o["rss"], n["rss"]) <= 16, f"{o['rss']:.1f} / {n['rss']:.1f} MiB"),
]
print("\ntargets (issue 15):")
for what, ok, got in targets:
    print(f"  {what:<44} {got:>16}  {'met' if ok else 'MISSED'}")

# Counts: ours against expected.json, for the one pod and for all ten.
KEYS = ["proxy_starts", "spend_batches_dropped", "spend_rows_lost", "spend_rows_requeued", "budget_cache_misses",
        "deployment_load_failures", "credential_load_failures", "engine_distro_fallbacks", "db_connect_errors",
        "lines", "malformed_lines"]
def ours(path):
    rep = json.load(open(path))
    t = dict(rep["totals"])
    ops = {}
    for pod in rep["pods"]:
        for k, v in pod["counts"]["db_connect_errors_by_operation"].items():
            ops[k] = ops.get(k, 0) + v
    return t, ops
fail = []
pod0 = exp["pods"]["litellm-0"]
rows = []
for label, want, (got, ops) in (("1 pod", pod0, ours(f"{work}/ours1.json")), ("10 pods", exp["totals"], ours(f"{work}/oursN.json"))):
    for k in KEYS:
        rows.append((label, k, want[k], got.get(k)))
    for op, v in sorted(want["db_connect_errors_by_operation"].items()):
        rows.append((label, f"db_connect_errors{{{op}}}", v, ops.get(op, 0)))
# mtail's two counters against what a line-at-a-time matcher can see.
mt = {}
for line in open(f"{work}/mtail.txt"):
    m = re.match(r"^litellm_(\w+)_total\{[^}]*\} (\S+)$", line.strip())
    if m:
        mt[m.group(1)] = int(float(m.group(2)))
for k in ("spend_batches_dropped", "budget_cache_misses"):
    rows.append(("mtail, 1 pod", f"{k} (line-level)", pod0[k] - pod0["split_event_headers"][k], mt.get(k)))
rg_lines = sum(int(l.rsplit(":", 1)[-1]) for l in open(f"{work}/rg.txt") if l.strip())
print(f"\ncounts against {expected_path}:")
print(f"  {'run':<13} {'count':<40} {'expected':>10} {'got':>10}")
for label, k, want, got in rows:
    ok = got == want
    if not ok:
        fail.append(f"{label} {k}: expected {want}, got {got}")
    print(f"  {label:<13} {k:<40} {want:>10} {'-' if got is None else got:>10}  {'ok' if ok else 'MISMATCH'}")
print(f"  rg -c (lines with any pack literal, no expected count): {rg_lines}")
if fail:
    print("\nbench-compare: FAIL: " + "; ".join(fail), file=sys.stderr)
    sys.exit(1)
print("\nbench-compare: every count equals the corpus's expected count")
EOF
fi

if [[ " $PARTS " == *" metrics "* ]]; then
  python3 "$ROOT/scripts/bench-compare-metrics.py" "$BIN" "$WORK/metrics" || status=1
fi
exit $status
