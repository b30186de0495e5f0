#!/usr/bin/env bash
# litellm-sentinel `report --json` against mtail, ripgrep and cat on the same
# generated CRI corpus (`make bench-compare`).
#
#   CORPUS_MB=1024 RUNS=3 SEED=1 bash bench/compare.sh
#
# CORPUS_MB  corpus size (default 1024; 200 keeps a 2-core box reasonable)
# RUNS       runs of each tool, alternated A B C D A B C D … (default 3)
# SEED       corpus seed (default 1)
# BENCH_CACHE where corpora are kept between runs (default $TMPDIR/litellm-sentinel-bench)
# TOOLS      subset to run, e.g. "ours rg cat" (default "ours mtail rg cat")
# SENTINEL_BIN use this binary instead of building target/release/litellm-sentinel
#
# Prints per tool the median wall time, MiB/s, user+sys CPU and peak RSS
# (/usr/bin/time -v), the throughput ratios ours/mtail, ours/rg, ours/cat,
# and the event counts: ours must equal the generator's expected.json (exit 1
# otherwise); mtail's and rg's are printed next to them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORPUS_MB=${CORPUS_MB:-1024}
RUNS=${RUNS:-3}
SEED=${SEED:-1}
TOOLS=${TOOLS:-"ours mtail rg cat"}
CACHE=${BENCH_CACHE:-${TMPDIR:-/tmp}/litellm-sentinel-bench}

# --- tools ---------------------------------------------------------------------
need=()
command -v mtail >/dev/null 2>&1 || need+=(mtail)
command -v rg >/dev/null 2>&1 || need+=(ripgrep)
[ -x /usr/bin/time ] || need+=(time)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "compare: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
python3 -c 'import tomllib' 2>/dev/null || { echo "compare: python3 >= 3.11 needed (tomllib)" >&2; exit 2; }

if [ -n "${SENTINEL_BIN:-}" ]; then
  BIN=$SENTINEL_BIN # a binary built elsewhere (e.g. to compare two builds)
else
  echo "compare: cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --quiet)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/litellm-sentinel"
fi

# --- corpus (cached per size, seed and generator version) ------------------------
GEN="$ROOT/bench/gen_corpus.py"
GEN_HASH=$(sha256sum "$GEN" | cut -c1-12)
CORPUS="$CACHE/corpus-${CORPUS_MB}mb-seed${SEED}-${GEN_HASH}"
if [ ! -f "$CORPUS/expected.json" ]; then
  rm -rf "$CORPUS"
  mkdir -p "$CACHE"
  echo "compare: generating ${CORPUS_MB} MiB corpus in $CORPUS" >&2
  python3 "$GEN" "$CORPUS_MB" "$CORPUS.tmp" "$SEED"
  mv "$CORPUS.tmp" "$CORPUS"
fi
mapfile -t FILES < <(find "$CORPUS" -name '*.log' -type f | sort)
BYTES=$(cat "${FILES[@]}" | wc -c)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/litellm-sentinel-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The rule pack's literals (every enabled rule's `contains` plus the
# connection-failure wordings), from the pack the binary really uses.
"$BIN" rules >"$WORK/pack.toml"
python3 - "$WORK/pack.toml" "$WORK/patterns.txt" <<'EOF'
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

# --- the runs --------------------------------------------------------------------
# One timed run of a tool: /usr/bin/time -v measures the tool's own process.
timed() {
  local tool=$1 out=$2
  case $tool in
    ours) /usr/bin/time -v -o "$out" "$BIN" report --json "$CORPUS" >"$WORK/ours.json" ;;
    mtail) /usr/bin/time -v -o "$out" mtail --one_shot --one_shot_format prometheus --port 0 \
        --progs "$ROOT/bench/mtail" --logs "$CORPUS/*/litellm/*.log" >"$WORK/mtail.txt" 2>"$WORK/mtail.err" ;;
    # rg exits 1 when nothing matches; that is not a failure here.
    rg) /usr/bin/time -v -o "$out" rg --no-mmap -c -F -f "$WORK/patterns.txt" "${FILES[@]}" >"$WORK/rg.txt" || [ $? -eq 1 ] ;;
    cat) /usr/bin/time -v -o "$out" cat "${FILES[@]}" >/dev/null ;;
    *) echo "compare: unknown tool $tool" >&2; exit 2 ;;
  esac
}

cat "${FILES[@]}" >/dev/null # warm the page cache: every tool reads from memory
echo "compare: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "compare: corpus $CORPUS ($((BYTES / 1048576)) MiB, ${#FILES[@]} files); ${RUNS} runs of: $TOOLS" >&2
for round in $(seq 1 "$RUNS"); do
  for tool in $TOOLS; do
    # Wall time from the shell's microsecond clock (time -v's has 10 ms steps).
    t0=$EPOCHREALTIME
    if ! timed "$tool" "$WORK/time.$tool.$round"; then
      echo "compare: $tool failed" >&2
      [ -f "$WORK/$tool.err" ] && tail -20 "$WORK/$tool.err" >&2
      exit 1
    fi
    t1=$EPOCHREALTIME
    wall=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
    echo "$wall" >"$WORK/wall.$tool.$round"
    echo "compare: round $round $tool ${wall}s" >&2
  done
done
echo "compare: load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# Untimed: what a line-at-a-time grep counts per event.
rg_count() { rg --no-mmap -c -F "$@" "${FILES[@]}" | awk -F: '{s += $NF} END {print s + 0}' || true; }
{
  echo "spend_batches_dropped $(rg_count -e 'Error in spend logs queue monitor' -e 'Error flushing spend logs queue on shutdown')"
  echo "budget_cache_misses $(rg_count -e 'Budget lookup failed for ')"
  echo "proxy_starts $(rg_count -e 'Uvicorn running on ' -e 'Listening at: http')"
  echo "engine_distro_fallbacks $(rg_count -e "Prisma doesn't know which engines to download for the Linux distro")"
  echo "db_connect_errors $(rg_count -f <(python3 -c 'import sys,tomllib; print("\n".join(tomllib.load(open(sys.argv[1],"rb"))["connection_failure"]["contains"]))' "$WORK/pack.toml"))"
} >"$WORK/rg_events.txt"

python3 - "$WORK" "$CORPUS/expected.json" "$BYTES" "$RUNS" "$TOOLS" <<'EOF'
import json, re, statistics, sys

work, expected_path, nbytes, runs, tools = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split()
mib = nbytes / 1048576

def parse_time(path, wall_path):
    t = {}
    for line in open(path):
        k, _, v = line.strip().rpartition(": ")
        t[k] = v
    wall = float(open(wall_path).read())
    return {
        "wall": wall,
        "cpu": float(t["User time (seconds)"]) + float(t["System time (seconds)"]),
        "rss_kib": int(t["Maximum resident set size (kbytes)"]),
        "exit": int(t.get("Exit status", "0")),
    }

res = {}
for tool in tools:
    samples = [parse_time(f"{work}/time.{tool}.{r}", f"{work}/wall.{tool}.{r}") for r in range(1, runs + 1)]
    bad = [s["exit"] for s in samples if s["exit"] != 0]
    if bad:
        print(f"compare: {tool} exited with {bad}", file=sys.stderr)
        sys.exit(1)
    wall = statistics.median(s["wall"] for s in samples)
    res[tool] = {
        "wall": wall,
        "walls": [s["wall"] for s in samples],
        "mibps": mib / wall if wall > 0 else float("inf"),
        "cpu": statistics.median(s["cpu"] for s in samples),
        "rss_mib": max(s["rss_kib"] for s in samples) / 1024,
    }

names = {"ours": "litellm-sentinel report --json", "mtail": "mtail --one_shot", "rg": "rg --no-mmap -c -F -f <pack literals>", "cat": "cat >/dev/null"}
print(f"\ncorpus: {mib:.0f} MiB, median of {runs} runs (alternated)")
print(f"{'tool':<40} {'wall s':>8} {'MiB/s':>9} {'CPU s':>8} {'CPU MiB/s':>10} {'peak RSS MiB':>13}   runs (wall s)")
for tool in tools:
    r = res[tool]
    cpu_rate = mib / r["cpu"] if r["cpu"] > 0 else float("inf")
    print(f"{names[tool]:<40} {r['wall']:>8.2f} {r['mibps']:>9.1f} {r['cpu']:>8.2f} {cpu_rate:>10.1f} {r['rss_mib']:>13.1f}   {' '.join(f'{w:.2f}' for w in r['walls'])}")
if "ours" in res:
    print()
    for other in ("mtail", "rg", "cat"):
        if other in res:
            o, r = res[other], res["ours"]
            cpu = f"{o['cpu'] / r['cpu']:.2f}x" if r["cpu"] and o["cpu"] else "n/a (CPU time below 10 ms)"
            print(f"throughput ours/{other}: {o['wall'] / r['wall']:.3f}x (wall)   {cpu} (CPU)   peak RSS ours/{other}: {r['rss_mib'] / o['rss_mib']:.2f}x")

exp = json.load(open(expected_path))
et = exp["totals"]
fail = False
ours_t, ours_ops = {}, {}
if "ours" in res:
    rep = json.load(open(f"{work}/ours.json"))
    ours_t = rep["totals"]
    for pod in rep["pods"]:
        for k, v in pod["counts"]["db_connect_errors_by_operation"].items():
            ours_ops[k] = ours_ops.get(k, 0) + v
mt = {}
if "mtail" in res:
    for line in open(f"{work}/mtail.txt"):
        m = re.match(r'^(\w+)\{(.*)\} (\S+)$', line.strip())
        if m:
            name = m.group(1).removeprefix("litellm_").removesuffix("_total")
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            key = name + ("." + labels["operation"] if "operation" in labels else "") + ("." + labels["kind"] if "kind" in labels else "")
            mt[key] = mt.get(key, 0) + float(m.group(3))
            if "operation" in labels:
                mt[name] = mt.get(name, 0) + float(m.group(3))
mtail_map = {
    "proxy_starts": "proxy_starts", "db_connect_errors": "db_connect_errors",
    "spend_batches_dropped": "spend_batches_dropped", "budget_cache_misses": "budget_cache_misses",
    "deployment_load_failures": "config_load_failures.deployments", "credential_load_failures": "config_load_failures.credentials",
    "engine_distro_fallbacks": "engine_distro_fallback",
}
rg_ev = dict(l.split() for l in open(f"{work}/rg_events.txt"))
line_level = exp.get("line_level", {})
print(f"\n{'count':<34} {'expected':>10} {'ours':>10} {'mtail':>10} {'rg':>10} {'line-level':>11}")
keys = ["proxy_starts", "spend_batches_dropped", "spend_rows_lost", "spend_rows_requeued", "budget_cache_misses",
        "deployment_load_failures", "credential_load_failures", "engine_distro_fallbacks", "db_connect_errors",
        "lines", "malformed_lines"]
rows = [(k, et[k], ours_t.get(k)) for k in keys]
rows += [(f"db_connect_errors{{{op}}}", v, ours_ops.get(op, 0) if ours_t else None) for op, v in sorted(et["db_connect_errors_by_operation"].items())]
for k, want, got in rows:
    mk = mtail_map.get(k) or (("db_connect_errors." + k.split("{")[1].rstrip("}")) if k.startswith("db_connect_errors{") else None)
    m = mt.get(mk, 0) if (mk and mt) else None
    g = rg_ev.get(k)
    ok = "" if got is None else ("ok" if got == want else "MISMATCH")
    if got is not None and got != want:
        fail = True
    fmt = lambda v: "-" if v is None else f"{int(v)}"
    print(f"{k:<34} {want:>10} {fmt(got):>10} {fmt(m):>10} {g or '-':>10} {fmt(line_level.get(k)):>11}  {ok}")
split = et["split_event_headers"]
print(f"\n{sum(split.values())} event headers are split across CRI P/F records ({', '.join(f'{k} {v}' for k, v in split.items())}):")
print("mtail and rg read one physical line at a time and miss them; `line-level` is what such a matcher can see at best.")
print("mtail/rg db_connect_errors are not comparable: they cannot fold tracebacks (each traceback's `ConnectError` line counts again,")
print("look-alike tracebacks count, errors on the line after a header do not); see bench/mtail/litellm.mtail.")
if fail:
    print("\ncompare: FAIL: litellm-sentinel's counts differ from the corpus's expected counts", file=sys.stderr)
    sys.exit(1)
if ours_t:
    print("\ncompare: litellm-sentinel's counts equal the corpus's expected counts")
EOF
