#!/usr/bin/env bash
# The system-call floor of bench/live.sh's load (`make bench-floor`): the
# same shape of writer (FLOOR_FILES files, 2 CRI-sized lines each every
# 100 ms) read by examples/read_floor.rs, which does one `pread` per file
# per 100 ms tick and nothing else. Its CPU is what the kernel alone costs
# at this load on this machine; compare the agent's `load` CPU with it.
#
#   FLOOR_FILES=500 FLOOR_SECONDS=30 FLOOR_TICK_MS=100 bash bench/floor.sh
#
# FLOOR_TICK_MS=180 reads each file as often as the agent reads a file
# written continuously (every other 90 ms tick).
#
# CPU from /proc/<pid>/schedstat (run time in ns, exact) and from
# /proc/<pid>/stat (clock ticks, what bench/live.sh uses), over the middle
# FLOOR_SECONDS of the run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FILES=${FLOOR_FILES:-500}
SECONDS_=${FLOOR_SECONDS:-30}
TICK_MS=${FLOOR_TICK_MS:-100}
(cd "$ROOT" && cargo build --release --quiet --example read_floor)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/read_floor"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/litellm-sentinel-floor.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
for i in $(seq 0 $((FILES - 1))); do : >"$WORK/$i.log"; done
python3 - "$WORK" "$FILES" "$((SECONDS_ + 10))" <<'PY' &
import os, sys, time
d, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fds = [os.open(f"{d}/{i}.log", os.O_WRONLY | os.O_APPEND) for i in range(n)]
line = (b'2026-12-02T06:00:00.123456789Z stdout F INFO:     10.0.1.2:40000 - '
        b'"POST /v1/chat/completions HTTP/1.1" 200 OK' + b' ' * 90 + b'\n')
start = time.monotonic(); nxt = start
while time.monotonic() - start < secs:
    for fd in fds:
        os.write(fd, line * 2)
    nxt += 0.1
    if nxt > time.monotonic():
        time.sleep(nxt - time.monotonic())
PY
"$BIN" "$WORK" "$FILES" "$((SECONDS_ + 6))" "$TICK_MS" >"$WORK/out.txt" &
PID=$!
sleep 3
run0=$(cut -d' ' -f1 "/proc/$PID/schedstat"); tick0=$(awk '{print $14 + $15}' "/proc/$PID/stat"); t0=$(date +%s.%N)
sleep "$SECONDS_"
run1=$(cut -d' ' -f1 "/proc/$PID/schedstat"); tick1=$(awk '{print $14 + $15}' "/proc/$PID/stat"); t1=$(date +%s.%N)
wait "$PID"
python3 - <<PY
wall = $t1 - $t0
print(f"floor: {$FILES} files x 2 lines per 100 ms, one pread per file every $TICK_MS ms, {wall:.1f} s")
print(f"CPU of one core (schedstat run time) {($run1 - $run0) / 1e9 / wall * 100:.3f} %")
print(f"CPU of one core (clock ticks)        {($tick1 - $tick0) / $(getconf CLK_TCK) / wall * 100:.3f} %")
print(open("$WORK/out.txt").read().strip())
PY
