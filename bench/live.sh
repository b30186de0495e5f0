#!/usr/bin/env bash
# The release agent tailing live pod logs (`make bench-live`).
#
#   LIVE_SECONDS=60 bash bench/live.sh
#
# Two measurements, each with a fresh agent on a temporary /var/log/pods-like
# tree (globs on it, read_from = "end", listen on a free loopback port):
#
# 1. idle:  IDLE_FILES (1000) watched files, no writes for IDLE_SECONDS (30):
#           agent CPU % of one core, peak RSS.
# 2. load:  LIVE_PODS (500) pod directories each appending LIVE_RATE (20)
#           CRI lines/s for LIVE_SECONDS (60), written by a Python writer in
#           bursts every 100 ms (a realistic LiteLLM mix, ~1 % race lines).
#           First half: agent CPU % of one core (only the writer runs).
#           Second half: every PROBE_EVERY (0.5) s the writer appends a
#           budget-miss line to a dedicated probe pod and polls /metrics
#           every POLL_MS (10) ms until that pod's counter rises: the
#           append→/metrics latency (p50, p99, max). CPU of that half is
#           printed too (it includes the agent rendering those scrapes).
#           Peak RSS (VmHWM) over the whole run.
#
# SENTINEL_BIN runs that binary instead of building target/release/litellm-sentinel.
#
# CPU comes from /proc/<pid>/stat (utime+stime deltas), RSS from
# /proc/<pid>/status (VmHWM). Targets (issue 5): idle < 0.5 % of a core,
# load < 2 % of a core, RSS < 32 MiB, p99 latency < 250 ms.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIVE_SECONDS=${LIVE_SECONDS:-60}
LIVE_PODS=${LIVE_PODS:-500}
LIVE_RATE=${LIVE_RATE:-20}
IDLE_FILES=${IDLE_FILES:-1000}
IDLE_SECONDS=${IDLE_SECONDS:-30}
PROBE_EVERY=${PROBE_EVERY:-0.5}
POLL_MS=${POLL_MS:-10}

command -v python3 >/dev/null 2>&1 || {
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3
}

if [ -n "${SENTINEL_BIN:-}" ]; then
  BIN=$SENTINEL_BIN # a binary built elsewhere (e.g. to compare two builds)
else
  echo "live: cargo build --release" >&2
  (cd "$ROOT" && cargo build --release --quiet)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/litellm-sentinel"
fi

# The agent keeps every followed file open (IDLE_FILES of them at once).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d "${TMPDIR:-/tmp}/litellm-sentinel-live.XXXXXX")
AGENT_PID=""
stop_agent() {
  if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
  fi
  AGENT_PID=""
}
trap 'stop_agent; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_agent NAME: a fresh agent on $WORK/NAME/pods; sets AGENT_PID and PORT.
start_agent() {
  local name=$1
  PORT=$(free_port)
  mkdir -p "$WORK/$name/state"
  cat >"$WORK/$name/config.toml" <<EOF
globs = ["$WORK/$name/pods/*_*litellm*_*/*/*.log"]
state_file = "$WORK/$name/state/state.json"
read_from = "end"
listen = "127.0.0.1:$PORT"
EOF
  "$BIN" run --config "$WORK/$name/config.toml" >"$WORK/$name/agent.log" 2>&1 &
  AGENT_PID=$!
}

# The measuring side: a Python helper with subcommands (mkpods, wait, idle, load).
cat >"$WORK/live.py" <<'PY'
import os, re, sys, time, random, statistics, urllib.request, datetime, threading, uuid

CLK = os.sysconf("SC_CLK_TCK")

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)

def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # MiB
    return float("nan")

def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode("utf-8", "replace")

def metric(text, name, **labels):
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r'^(\w+)(\{[^}]*\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            found = True
    return total if found else None

def cri_now():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}123Z"

ORDINARY = [
    ("stdout", 'INFO:     10.0.{a}.{b}:{p} - "POST /v1/chat/completions HTTP/1.1" 200 OK'),
    ("stdout", 'INFO:     10.0.{a}.{b}:{p} - "POST /v1/embeddings HTTP/1.1" 200 OK'),
    ("stdout", 'INFO:     10.0.0.1:{p} - "GET /health/readiness HTTP/1.1" 200 OK'),
    ("stdout", 'INFO:     10.0.0.1:{p} - "GET /health/liveliness HTTP/1.1" 200 OK'),
    ("stdout", 'INFO:     10.0.{a}.{b}:{p} - "POST /v1/chat/completions HTTP/1.1" 429 Too Many Requests'),
    ("stderr", "\x1b[92m{clk} - LiteLLM Proxy:INFO\x1b[0m: router.py:1050 - litellm.acompletion(model=azure/gpt-4o) 200 OK"),
    ("stdout", '{{"message": "litellm.acompletion(model=gpt-4o-mini) 200 OK - messages=' + "the model returned a streaming chunk with usage tokens " * 12 + '", "level": "INFO", "timestamp": "2026-11-24T10:15:02.123456"}}'),
]
RACE = ("stderr", "\x1b[92m{clk} - LiteLLM Proxy:ERROR\x1b[0m: utils.py:2721 - LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed")
PROBE = "\x1b[92m{clk} - LiteLLM Proxy:WARNING\x1b[0m: auth_checks.py:511 - Budget lookup failed for user; cache will not be populated. Each request will hit the database. Error: All connection attempts failed."

def line(rng):
    stream, text = RACE if rng.random() < 0.01 else rng.choice(ORDINARY)
    text = text.format(a=rng.randint(0, 255), b=rng.randint(1, 254), p=rng.randint(32768, 60999), clk=time.strftime("%H:%M:%S"))
    return f"{cri_now()} {stream} F {text}\n".encode()

def pod_dir(root, name):
    uid = uuid.UUID(int=random.Random(name).getrandbits(128), version=4)
    return os.path.join(root, f"llm_{name}_{uid}", "litellm")

def mkpods(root, n, probe):
    """n pod directories with a little history each (read_from = end skips it)."""
    rng = random.Random(1)
    names = [f"litellm-{i}" for i in range(n)] + (["litellm-probe"] if probe == "1" else [])
    for name in names:
        d = pod_dir(root, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "0.log"), "wb") as f:
            for _ in range(5):
                f.write(line(rng))

def wait_watching(port, files, pid, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        os.kill(pid, 0)  # the agent must still be running
        try:
            last = metric(scrape(port), "litellm_sentinel_files_watched")
            if last is not None and last >= files:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"live: the agent watches {last} files after {timeout}s, expected {files}")

def idle(pid, seconds):
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    cpu = (c1 - c0) / CLK / (t1 - t0) * 100
    print(f"idle_cpu_percent {cpu:.3f}")
    print(f"idle_rss_mib {vm(pid, 'VmRSS'):.1f}")
    print(f"idle_peak_rss_mib {vm(pid, 'VmHWM'):.1f}")

def writer(root, pods, rate, seconds, out):
    """LIVE_PODS files, each appended `rate` lines/s in 100 ms bursts."""
    rng = random.Random(2)
    fds = [os.open(os.path.join(pod_dir(root, f"litellm-{i}"), "0.log"), os.O_WRONLY | os.O_APPEND) for i in range(pods)]
    tick = 0.1
    debt, written = 0.0, 0
    start = time.monotonic()
    next_t = start
    late = 0
    while time.monotonic() - start < seconds:
        debt += rate * tick
        n = int(debt)
        debt -= n
        if n:
            for fd in fds:
                os.write(fd, b"".join(line(rng) for _ in range(n)))
            written += n * len(fds)
        next_t += tick
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
    elapsed = time.monotonic() - start
    with open(out, "w") as f:
        f.write(f"load_lines_per_second {written / elapsed:.0f}\nwriter_late_ticks {late}\n")

def measure(root, port, pid, seconds, probe_every, poll_ms):
    """First half: agent CPU while the writer runs. Second half: probes."""
    probe_fd = os.open(os.path.join(pod_dir(root, "litellm-probe"), "0.log"), os.O_WRONLY | os.O_APPEND)
    start = time.monotonic()
    half = seconds / 2
    time.sleep(min(2.0, half / 4))  # let the first bursts settle
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(max(0.0, start + half - time.monotonic()))
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    name = "litellm_sentinel_budget_cache_misses_total"
    latencies, scrapes, timeouts = [], 0, 0
    base = metric(scrape(port), name, pod="litellm-probe") or 0.0
    next_probe = time.monotonic()
    while time.monotonic() < start + seconds:
        now = time.monotonic()
        if now < next_probe:
            time.sleep(next_probe - now)
        next_probe += probe_every
        text = PROBE.format(clk=time.strftime("%H:%M:%S"))
        sent = time.monotonic()
        os.write(probe_fd, f"{cri_now()} stderr F {text}\n".encode())
        while True:
            v = metric(scrape(port), name, pod="litellm-probe") or 0.0
            scrapes += 1
            if v > base:
                latencies.append((time.monotonic() - sent) * 1000)
                base = v
                break
            if time.monotonic() - sent > 5:
                timeouts += 1
                break
            time.sleep(poll_ms / 1000)
    t2, c2 = time.monotonic(), cpu_ticks(pid)
    print(f"load_cpu_percent {(c1 - c0) / CLK / (t1 - t0) * 100:.3f}")
    print(f"load_cpu_window_seconds {t1 - t0:.1f}")
    print(f"probe_half_cpu_percent {(c2 - c1) / CLK / (t2 - t1) * 100:.3f}")
    print(f"probe_scrapes {scrapes}")
    print(f"load_peak_rss_mib {vm(pid, 'VmHWM'):.1f}")
    print(f"load_rss_mib {vm(pid, 'VmRSS'):.1f}")
    print(f"probes {len(latencies)}")
    print(f"probe_timeouts {timeouts}")
    print(f"lines_read_total {metric(scrape(port), 'litellm_sentinel_lines_read_total') or 0:.0f}")
    if latencies:
        lat = sorted(latencies)
        pct = lambda q: lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))]
        print(f"latency_p50_ms {pct(0.50):.1f}")
        print(f"latency_p99_ms {pct(0.99):.1f}")
        print(f"latency_max_ms {lat[-1]:.1f}")

cmd = sys.argv[1]
if cmd == "mkpods":
    mkpods(sys.argv[2], int(sys.argv[3]), sys.argv[4])
elif cmd == "wait":
    wait_watching(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
elif cmd == "idle":
    idle(int(sys.argv[2]), float(sys.argv[3]))
elif cmd == "writer":
    writer(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
elif cmd == "measure":
    measure(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]))
PY

echo "live: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# 1. idle
python3 "$WORK/live.py" mkpods "$WORK/idle/pods" "$IDLE_FILES" 0
start_agent idle
python3 "$WORK/live.py" wait "$PORT" "$IDLE_FILES" "$AGENT_PID"
echo "live: idle: $IDLE_FILES files watched; measuring ${IDLE_SECONDS}s" >&2
python3 "$WORK/live.py" idle "$AGENT_PID" "$IDLE_SECONDS" >"$WORK/idle.txt"
stop_agent

# 2. load
python3 "$WORK/live.py" mkpods "$WORK/load/pods" "$LIVE_PODS" 1
start_agent load
python3 "$WORK/live.py" wait "$PORT" "$((LIVE_PODS + 1))" "$AGENT_PID"
echo "live: load: $LIVE_PODS pods x $LIVE_RATE lines/s for ${LIVE_SECONDS}s (probes in the second half)" >&2
# The writer and the measuring side are separate processes (no shared GIL).
python3 "$WORK/live.py" writer "$WORK/load/pods" "$LIVE_PODS" "$LIVE_RATE" "$LIVE_SECONDS" "$WORK/writer.txt" &
WRITER_PID=$!
python3 "$WORK/live.py" measure "$WORK/load/pods" "$PORT" "$AGENT_PID" "$LIVE_SECONDS" "$PROBE_EVERY" "$POLL_MS" >"$WORK/load.txt"
wait "$WRITER_PID"
stop_agent

python3 - "$WORK/idle.txt" "$WORK/load.txt" "$WORK/writer.txt" "$IDLE_FILES" "$LIVE_PODS" "$LIVE_RATE" "$LIVE_SECONDS" <<'EOF'
import sys
r = {}
for path in sys.argv[1:4]:
    for line in open(path):
        k, v = line.split()
        r[k] = float(v)
idle_files, pods, rate, seconds = sys.argv[4:8]
lines_read = f"{r['lines_read_total']:.0f}"
def row(name, value, unit, target, ok):
    mark = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"{name:<52} {value:>10} {unit:<8} {target:<12} {mark}")
print()
print(f"{'measure':<52} {'value':>10} {'unit':<8} {'target':<12}")
row(f"idle: {idle_files} files, CPU of one core", f"{r['idle_cpu_percent']:.3f}", "%", "< 0.5 %", r["idle_cpu_percent"] < 0.5)
row("idle: peak RSS (VmHWM)", f"{r['idle_peak_rss_mib']:.1f}", "MiB", "< 32 MiB", r["idle_peak_rss_mib"] < 32)
row(f"load: {pods} pods x {rate} lines/s, CPU of one core", f"{r['load_cpu_percent']:.3f}", "%", "< 2 %", r["load_cpu_percent"] < 2)
row(f"load: lines written per second (late 100 ms ticks: {int(r['writer_late_ticks'])})", f"{r['load_lines_per_second']:.0f}", "lines/s", "", None)
row(f"load: agent lines_read_total at the end", lines_read, "lines", "", None)
row(f"probe half: CPU incl. {int(r['probe_scrapes'])} /metrics scrapes", f"{r['probe_half_cpu_percent']:.3f}", "%", "", None)
row("load: peak RSS (VmHWM)", f"{r['load_peak_rss_mib']:.1f}", "MiB", "< 32 MiB", r["load_peak_rss_mib"] < 32)
if r.get("probes"):
    row(f"append -> /metrics latency p50 ({int(r['probes'])} probes)", f"{r['latency_p50_ms']:.1f}", "ms", "", None)
    row("append -> /metrics latency p99", f"{r['latency_p99_ms']:.1f}", "ms", "< 250 ms", r["latency_p99_ms"] < 250)
    row("append -> /metrics latency max", f"{r['latency_max_ms']:.1f}", "ms", "", None)
row("probes not seen within 5 s", f"{int(r['probe_timeouts'])}", "", "0", r["probe_timeouts"] == 0)
EOF
