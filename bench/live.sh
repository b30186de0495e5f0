#!/usr/bin/env bash
# The release agent tailing live pod logs (`make bench-live`), against every
# target of issue 11 in one run.
#
#   LIVE_SECONDS=60 bash bench/live.sh
#
# Each phase starts a fresh agent on a temporary /var/log/pods-like tree
# (globs on it, read_from = "end", listen on a free loopback port):
#
# 1. idle:     IDLE_FILES (5000) watched files (made 3 s before the agent
#              starts, as on a node whose pods are older than the agent),
#              no writes for IDLE_SECONDS (60): agent CPU % of one core,
#              peak RSS. The agent's safety rescan of the globs runs every
#              poll_interval (60 s default): a shorter window may miss it
#              and read low (a warning says so).
# 2. load:     LIVE_PODS (500) pod directories each appending LIVE_RATE (20)
#              CRI lines/s, written by a separate Python writer process in
#              bursts every 100 ms (a realistic LiteLLM mix, ~1 % race
#              lines). The agent and mtail (bench/mtail/litellm.mtail, the
#              rule pack's regexes, on the same glob, its default 250 ms
#              polling: rc50 has no inotify mode, --disable_fsnotify is a
#              no-op) both watch every file before the writer starts.
#    a. CPU:   first half of LIVE_SECONDS (60): agent and mtail CPU % of one
#              core over the same window, lines each read in that window.
#              mtail is stopped after it; then ALONE_SECONDS (10) of agent
#              CPU without mtail, for reference (not a target row).
#    b. probe: second half: every PROBE_EVERY (0.5) s a budget-miss line is
#              appended, alternately to a dedicated quiet probe pod and to a
#              pod the writer appends to every 100 ms, and /metrics is polled
#              every POLL_MS (10) ms until that pod's counter rises: append ->
#              /metrics latency (p50, p99, max) of each. That half's CPU is
#              printed too (it includes rendering those scrapes).
#    c. strace: STRACE_SECONDS (8) of `strace -c -f -p <agent>` while the
#              writer runs (after the CPU window: strace slows the agent):
#              system calls per line read (lines_read_total before/after),
#              top 3 syscalls. If strace cannot attach it says "not measured".
#    d. rotate: ROTATIONS (5) kubelet-style rename rotations of the probe
#              pod's 0.log, ROTATE_EVERY (2) s apart, writer still running:
#              mv 0.log 0.log.<YYYYmmdd-HHMMSS>, create an empty 0.log,
#              append a budget-miss line to it; the time from the mv until
#              the pod's counter rises (deadline ROTATE_DEADLINE, 5 s).
#              Peak RSS (VmHWM) over the whole load phase.
#
# Targets (issue 11): load <= 1.5 % of a core, <= 0.5 syscalls per line,
# idle with 5,000 files <= 0.3 % of a core, append -> /metrics p99 <= 250 ms,
# peak RSS <= 32 MiB, a rotation's first line counted within 1 s.
#
# CPU comes from /proc/<pid>/stat (utime+stime deltas, all threads), RSS from
# /proc/<pid>/status (VmHWM). The machine's load average is printed: the
# writer, mtail and the agent share its cores.
#
# SENTINEL_BIN runs that binary instead of building target/release/litellm-sentinel.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIVE_SECONDS=${LIVE_SECONDS:-60}
LIVE_PODS=${LIVE_PODS:-500}
LIVE_RATE=${LIVE_RATE:-20}
IDLE_FILES=${IDLE_FILES:-5000}
IDLE_SECONDS=${IDLE_SECONDS:-60}
PROBE_EVERY=${PROBE_EVERY:-0.5}
POLL_MS=${POLL_MS:-10}
STRACE_SECONDS=${STRACE_SECONDS:-8}
ROTATIONS=${ROTATIONS:-5}
ROTATE_EVERY=${ROTATE_EVERY:-2}
ROTATE_DEADLINE=${ROTATE_DEADLINE:-5}
ALONE_SECONDS=${ALONE_SECONDS:-10}
MTAIL_PROGS=${MTAIL_PROGS:-$ROOT/bench/mtail}

missing=""
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
command -v mtail >/dev/null 2>&1 || missing="$missing mtail"
command -v strace >/dev/null 2>&1 || missing="$missing strace"
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # shellcheck disable=SC2086 # one word per package
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

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
MTAIL_PID=""
WRITER_PID=""
stop_pid() { # stop_pid PID: SIGTERM one process we started and reap it
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
stop_agent() { stop_pid "$AGENT_PID"; AGENT_PID=""; }
stop_mtail() { stop_pid "$MTAIL_PID"; MTAIL_PID=""; }
trap 'stop_pid "$WRITER_PID"; stop_mtail; stop_agent; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

glob_of() { echo "$WORK/$1/pods/*_*litellm*_*/*/*.log"; }

# start_agent NAME: a fresh agent on $WORK/NAME/pods; sets AGENT_PID and PORT.
start_agent() {
  local name=$1
  PORT=$(free_port)
  mkdir -p "$WORK/$name/state"
  cat >"$WORK/$name/config.toml" <<EOF
globs = ["$(glob_of "$name")"]
state_file = "$WORK/$name/state/state.json"
read_from = "end"
listen = "127.0.0.1:$PORT"
EOF
  "$BIN" run --config "$WORK/$name/config.toml" >"$WORK/$name/agent.log" 2>&1 &
  AGENT_PID=$!
}

# start_mtail NAME: mtail on the same glob; sets MTAIL_PID and MTAIL_PORT.
start_mtail() {
  local name=$1
  MTAIL_PORT=$(free_port)
  mkdir -p "$WORK/$name/mtail-log"
  mtail --progs "$MTAIL_PROGS" --logs "$(glob_of "$name")" \
    --address 127.0.0.1 --port "$MTAIL_PORT" --log_dir "$WORK/$name/mtail-log" \
    >"$WORK/$name/mtail.out" 2>&1 &
  MTAIL_PID=$!
}

# The measuring side: a Python helper with subcommands (see the bottom).
# Each measuring subcommand prints one JSON object.
cat >"$WORK/live.py" <<'PY'
import os, re, sys, time, json, random, signal, shutil, statistics, subprocess, threading, urllib.request, datetime, uuid

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

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode("utf-8", "replace")

def scrape(port):
    return get(port, "/metrics")

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

LINES = "litellm_sentinel_lines_read_total"
MISSES = "litellm_sentinel_budget_cache_misses_total"

def lines_read(port):
    return metric(scrape(port), LINES) or 0.0

def mtail_lines(port):
    return metric(scrape(port), "mtail_lines_total") or 0.0

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

def probe_line():
    return f"{cri_now()} stderr F {PROBE.format(clk=time.strftime('%H:%M:%S'))}\n".encode()

def pod_dir(root, name):
    uid = uuid.UUID(int=random.Random(name).getrandbits(128), version=4)
    return os.path.join(root, f"llm_{name}_{uid}", "litellm")

def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]

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

def wait_until(what, pid, files, read, timeout=60):
    """Until read() >= files, the process pid alive, within timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(f"live: {what} (pid {pid}) exited before watching {files} files")
        try:
            last = read()
            if last is not None and last >= files:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.1)
    sys.exit(f"live: {what} watches {last} files after {timeout}s, expected {files}")

def wait_agent(port, files, pid):
    wait_until("the agent", pid, files, lambda: metric(scrape(port), "litellm_sentinel_files_watched"))

def wait_mtail(port, files, pid):
    # mtail's expvar log_count: the log files its tailer has open.
    wait_until("mtail", pid, files, lambda: json.loads(get(port, "/debug/vars")).get("log_count"))

def idle(pid, seconds):
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    print(json.dumps({
        "idle_cpu_percent": (c1 - c0) / CLK / (t1 - t0) * 100,
        "idle_tick_percent": 100 / CLK / (t1 - t0),  # one clock tick: the resolution
        "idle_rss_mib": vm(pid, "VmRSS"),
        "idle_peak_rss_mib": vm(pid, "VmHWM"),
        "idle_loadavg": loadavg(),
    }))

STOP = False

def writer(root, pods, rate, max_seconds, out):
    """`pods` files, each appended `rate` lines/s in 100 ms bursts, until SIGTERM."""
    def stop(*_):
        global STOP
        STOP = True
    signal.signal(signal.SIGTERM, stop)
    rng = random.Random(2)
    fds = [os.open(os.path.join(pod_dir(root, f"litellm-{i}"), "0.log"), os.O_WRONLY | os.O_APPEND) for i in range(pods)]
    tick = 0.1
    debt, written = 0.0, 0
    start = time.monotonic()
    next_t = start
    late = 0
    while not STOP and time.monotonic() - start < max_seconds:
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
        json.dump({"writer_lines_per_second": written / elapsed, "writer_late_ticks": late, "writer_seconds": elapsed}, f)

def cpu(port, pid, mport, mpid, settle, window):
    """Agent and mtail CPU over the same window (scrapes outside it)."""
    time.sleep(settle)  # let the first bursts settle
    l0, m0 = lines_read(port), mtail_lines(mport)
    t0, c0, d0 = time.monotonic(), cpu_ticks(pid), cpu_ticks(mpid)
    time.sleep(window)
    t1, c1, d1 = time.monotonic(), cpu_ticks(pid), cpu_ticks(mpid)
    l1, m1 = lines_read(port), mtail_lines(mport)
    dt = t1 - t0
    print(json.dumps({
        "load_cpu_percent": (c1 - c0) / CLK / dt * 100,
        "mtail_cpu_percent": (d1 - d0) / CLK / dt * 100,
        "cpu_window_seconds": dt,
        "agent_lines_per_second": (l1 - l0) / dt,
        "mtail_lines_per_second": (m1 - m0) / dt,
        "mtail_peak_rss_mib": vm(mpid, "VmHWM"),
        "load_loadavg": loadavg(),
    }))

def alone(port, pid, seconds):
    """Agent CPU with mtail stopped (the writer still running): for reference."""
    l0 = lines_read(port)
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    l1 = lines_read(port)
    print(json.dumps({"alone_cpu_percent": (c1 - c0) / CLK / (t1 - t0) * 100, "alone_seconds": t1 - t0, "alone_lines_per_second": (l1 - l0) / (t1 - t0)}))

def probes(root, port, pid, seconds, probe_every, poll_ms):
    """append -> /metrics latency of budget-miss lines, alternately on the
    quiet probe pod and on a pod the writer appends to every 100 ms (the
    agent reads a file written continuously every other tick)."""
    targets = {kind: (pod, os.open(os.path.join(pod_dir(root, pod), "0.log"), os.O_WRONLY | os.O_APPEND))
               for kind, pod in (("quiet", "litellm-probe"), ("busy", "litellm-0"))}
    start = time.monotonic()
    c0 = cpu_ticks(pid)
    latencies, scrapes, timeouts = {"quiet": [], "busy": []}, 0, 0
    text = scrape(port)
    base = {kind: metric(text, MISSES, pod=pod) or 0.0 for kind, (pod, _) in targets.items()}
    next_probe, n = time.monotonic(), 0
    while time.monotonic() < start + seconds:
        now = time.monotonic()
        if now < next_probe:
            time.sleep(next_probe - now)
        next_probe += probe_every
        kind = ("quiet", "busy")[n % 2]
        n += 1
        pod, fd = targets[kind]
        sent = time.monotonic()
        os.write(fd, probe_line())
        while True:
            v = metric(scrape(port), MISSES, pod=pod) or 0.0
            scrapes += 1
            if v > base[kind]:
                latencies[kind].append((time.monotonic() - sent) * 1000)
                base[kind] = v
                break
            if time.monotonic() - sent > 5:
                timeouts += 1
                break
            time.sleep(poll_ms / 1000)
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    for _, fd in targets.values():
        os.close(fd)
    r = {
        "probe_half_cpu_percent": (c1 - c0) / CLK / (t1 - start) * 100,
        "probe_scrapes": scrapes,
        "probe_timeouts": timeouts,
    }
    for kind, values in latencies.items():
        r[f"probes_{kind}"] = len(values)
        if values:
            r.update({f"latency_{kind}_p50_ms": percentile(values, 0.50), f"latency_{kind}_p99_ms": percentile(values, 0.99), f"latency_{kind}_max_ms": max(values)})
    print(json.dumps(r))

def strace_phase(port, pid, seconds, out):
    """strace -c -f -p pid for `seconds`; syscalls per line read meanwhile."""
    r = {}
    try:
        p = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out], stderr=subprocess.PIPE, text=True)
    except OSError as e:
        print(json.dumps({"strace_error": f"strace did not start: {e}"}))
        return
    err, attached = [], threading.Event()
    def drain():
        for l in p.stderr:
            err.append(l.strip())
            if "attached" in l:
                attached.set()
    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 5
    while not attached.is_set() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not attached.is_set():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=10)
        print(json.dumps({"strace_error": "strace did not attach: " + (" / ".join(err) or f"exit {p.returncode}")}))
        return
    time.sleep(0.5)  # strace -f attaches thread by thread; let it finish
    l0, t0 = lines_read(port), time.monotonic()
    time.sleep(seconds)
    l1, t1 = lines_read(port), time.monotonic()
    p.send_signal(signal.SIGINT)  # detach and write the summary
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        print(json.dumps({"strace_error": "strace did not exit after SIGINT"}))
        return
    calls, total = {}, None
    with open(out) as f:
        for row in f:
            fields = row.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) in (5, 6) and fields[3].isdigit():
                if fields[-1] == "total":
                    total = int(fields[3])
                else:
                    calls[fields[-1]] = calls.get(fields[-1], 0) + int(fields[3])
    lines = l1 - l0
    if total is None or lines <= 0:
        print(json.dumps({"strace_error": f"no summary or no lines read (lines {lines:.0f}, strace: {' / '.join(err)})"}))
        return
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:3]
    r.update(
        syscalls_total=total,
        strace_lines=lines,
        strace_seconds=t1 - t0,
        strace_lines_per_second=lines / (t1 - t0),
        syscalls_per_line=total / lines,
        strace_top=[[name, n / lines] for name, n in top],
    )
    print(json.dumps(r))

def rotate(root, port, pid, n, every, deadline_s):
    """kubelet-style rename rotations of the probe pod; time until counted."""
    path = os.path.join(pod_dir(root, "litellm-probe"), "0.log")
    times, timeouts, fd = [], 0, None
    for i in range(n):
        start = time.monotonic()
        os.kill(pid, 0)
        base = metric(scrape(port), MISSES, pod="litellm-probe") or 0.0
        while True:
            rotated = f"{path}.{time.strftime('%Y%m%d-%H%M%S')}"
            if not os.path.exists(rotated):
                break
            time.sleep(0.05)  # kubelet names by the second
        t0 = time.monotonic()
        os.rename(path, rotated)
        new = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        if fd is not None:
            os.close(fd)  # the runtime reopens: the old file gets no more lines
        fd = new
        os.write(fd, probe_line())
        while True:
            v = metric(scrape(port), MISSES, pod="litellm-probe") or 0.0
            if v > base:
                times.append((time.monotonic() - t0) * 1000)
                break
            if time.monotonic() - t0 > deadline_s:
                timeouts += 1
                break
            time.sleep(0.01)
        if i + 1 < n:
            time.sleep(max(0.0, start + every - time.monotonic()))
    if fd is not None:
        os.close(fd)
    r = {"rotations": n, "rotation_timeouts": timeouts, "load_peak_rss_mib": vm(pid, "VmHWM"), "load_rss_mib": vm(pid, "VmRSS"), "lines_read_total": lines_read(port)}
    if times:
        r.update(rotation_max_ms=max(times), rotation_median_ms=statistics.median(times))
    print(json.dumps(r))

cmd, a = sys.argv[1], sys.argv[2:]
if cmd == "mkpods":
    mkpods(a[0], int(a[1]), a[2])
elif cmd == "wait-agent":
    wait_agent(int(a[0]), int(a[1]), int(a[2]))
elif cmd == "wait-mtail":
    wait_mtail(int(a[0]), int(a[1]), int(a[2]))
elif cmd == "idle":
    idle(int(a[0]), float(a[1]))
elif cmd == "writer":
    writer(a[0], int(a[1]), float(a[2]), float(a[3]), a[4])
elif cmd == "cpu":
    cpu(int(a[0]), int(a[1]), int(a[2]), int(a[3]), float(a[4]), float(a[5]))
elif cmd == "alone":
    alone(int(a[0]), int(a[1]), float(a[2]))
elif cmd == "probes":
    probes(a[0], int(a[1]), int(a[2]), float(a[3]), float(a[4]), float(a[5]))
elif cmd == "strace":
    strace_phase(int(a[0]), int(a[1]), float(a[2]), a[3])
elif cmd == "rotate":
    rotate(a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]), float(a[5]))
else:
    sys.exit(f"live.py: unknown subcommand {cmd}")
PY
LIVE="python3 $WORK/live.py"

echo "live: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "live: $("$BIN" --version 2>&1 | head -1), $(mtail --version 2>&1 | head -1 | cut -d' ' -f1-3)" >&2

# 1. idle
$LIVE mkpods "$WORK/idle/pods" "$IDLE_FILES" 0
# A node's pod directories are older than the agent: it keeps the listing
# of a directory whose last change is at least 2 s old (a change within the
# file system's timestamp granule could go unseen), and reuses it on later
# passes. Directories made a moment ago would all be listed again on the
# first rescan, which is not the steady state this phase measures.
sleep 3
start_agent idle
$LIVE wait-agent "$PORT" "$IDLE_FILES" "$AGENT_PID"
echo "live: idle: $IDLE_FILES files watched; measuring ${IDLE_SECONDS}s" >&2
$LIVE idle "$AGENT_PID" "$IDLE_SECONDS" >"$WORK/idle.json"
stop_agent

# 2. load
$LIVE mkpods "$WORK/load/pods" "$LIVE_PODS" 1
start_agent load
start_mtail load
$LIVE wait-agent "$PORT" "$((LIVE_PODS + 1))" "$AGENT_PID"
$LIVE wait-mtail "$MTAIL_PORT" "$((LIVE_PODS + 1))" "$MTAIL_PID"
HALF=$(python3 -c "print($LIVE_SECONDS / 2)")
SETTLE=$(python3 -c "print(min(2.0, $HALF / 4))")
WINDOW=$(python3 -c "print($HALF - $SETTLE)")
echo "live: load: agent and mtail watch $((LIVE_PODS + 1)) files; $LIVE_PODS pods x $LIVE_RATE lines/s: CPU ${WINDOW}s, probes ${HALF}s, strace ${STRACE_SECONDS}s, $ROTATIONS rotations" >&2
# The writer and the measuring side are separate processes (no shared GIL).
# It runs until SIGTERM (bounded in case this script dies).
$LIVE writer "$WORK/load/pods" "$LIVE_PODS" "$LIVE_RATE" "$((LIVE_SECONDS * 3 + 600))" "$WORK/writer.json" &
WRITER_PID=$!
$LIVE cpu "$PORT" "$AGENT_PID" "$MTAIL_PORT" "$MTAIL_PID" "$SETTLE" "$WINDOW" >"$WORK/cpu.json"
stop_mtail
echo "live: load: CPU window done, mtail stopped; agent alone ${ALONE_SECONDS}s, then probes" >&2
$LIVE alone "$PORT" "$AGENT_PID" "$ALONE_SECONDS" >"$WORK/alone.json"
$LIVE probes "$WORK/load/pods" "$PORT" "$AGENT_PID" "$HALF" "$PROBE_EVERY" "$POLL_MS" >"$WORK/probes.json"
echo "live: load: strace -c -f -p $AGENT_PID for ${STRACE_SECONDS}s" >&2
$LIVE strace "$PORT" "$AGENT_PID" "$STRACE_SECONDS" "$WORK/strace.txt" >"$WORK/strace.json"
echo "live: load: $ROTATIONS rename rotations" >&2
$LIVE rotate "$WORK/load/pods" "$PORT" "$AGENT_PID" "$ROTATIONS" "$ROTATE_EVERY" "$ROTATE_DEADLINE" >"$WORK/rotate.json"
stop_pid "$WRITER_PID"
WRITER_PID=""
stop_agent

python3 - "$WORK" "$IDLE_FILES" "$LIVE_PODS" "$LIVE_RATE" "$IDLE_SECONDS" <<'EOF'
import sys, json, os
work = sys.argv[1]
idle_files, pods, rate, idle_seconds = sys.argv[2:6]
r = {}
for name in ("idle", "writer", "cpu", "alone", "probes", "strace", "rotate"):
    with open(os.path.join(work, name + ".json")) as f:
        r.update(json.load(f))
def row(name, value, unit, target="", ok=None):
    mark = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"{name:<58} {value:>10} {unit:<8} {target:<12} {mark}")
print()
print(f"{'measure':<58} {'value':>10} {'unit':<8} {'target':<12}")
row(f"idle: {idle_files} files, CPU of one core (1 tick = {r['idle_tick_percent']:.3f} %)", f"{r['idle_cpu_percent']:.3f}", "%", "<= 0.3 %", r["idle_cpu_percent"] <= 0.3)
row("idle: peak RSS (VmHWM)", f"{r['idle_peak_rss_mib']:.1f}", "MiB", "<= 32 MiB", r["idle_peak_rss_mib"] <= 32)
row("idle: RSS at the end (VmRSS)", f"{r['idle_rss_mib']:.1f}", "MiB")
row(f"load: {pods} pods x {rate} lines/s, CPU of one core ({r['cpu_window_seconds']:.0f} s)", f"{r['load_cpu_percent']:.3f}", "%", "<= 1.5 %", r["load_cpu_percent"] <= 1.5)
row("load: mtail, same files, same window, CPU of one core", f"{r['mtail_cpu_percent']:.3f}", "%")
row("load: lines read per second in that window, agent", f"{r['agent_lines_per_second']:.0f}", "lines/s")
row("load: lines read per second in that window, mtail", f"{r['mtail_lines_per_second']:.0f}", "lines/s")
row(f"load: agent alone, mtail stopped, CPU of one core ({r['alone_seconds']:.0f} s)", f"{r['alone_cpu_percent']:.3f}", "%")
row(f"load: lines written per second (late 100 ms ticks: {r['writer_late_ticks']})", f"{r['writer_lines_per_second']:.0f}", "lines/s")
row("load: mtail peak RSS (VmHWM)", f"{r['mtail_peak_rss_mib']:.1f}", "MiB")
row(f"probe half: CPU incl. {r['probe_scrapes']} /metrics scrapes", f"{r['probe_half_cpu_percent']:.3f}", "%")
for kind, what in (("quiet", "a quiet file"), ("busy", "a file written every 100 ms")):
    if r.get(f"probes_{kind}"):
        p99 = r[f"latency_{kind}_p99_ms"]
        row(f"append -> /metrics, {what}: p50 ({r[f'probes_{kind}']} probes)", f"{r[f'latency_{kind}_p50_ms']:.1f}", "ms")
        row(f"append -> /metrics, {what}: p99", f"{p99:.1f}", "ms", "<= 250 ms", p99 <= 250)
        row(f"append -> /metrics, {what}: max", f"{r[f'latency_{kind}_max_ms']:.1f}", "ms")
    else:
        row(f"append -> /metrics, {what}: p99 (no probe seen)", "n/a", "ms", "<= 250 ms", False)
row("probes not seen within 5 s", f"{r['probe_timeouts']}", "", "0", r["probe_timeouts"] == 0)
if "strace_error" in r:
    row("syscalls per line read: NOT MEASURED (see below)", "n/a", "", "<= 0.5", False)
else:
    row(f"syscalls per line read (strace -c -f, {r['strace_seconds']:.0f} s, {r['strace_lines']:.0f} lines)", f"{r['syscalls_per_line']:.3f}", "calls", "<= 0.5", r["syscalls_per_line"] <= 0.5)
    for name, per in r["strace_top"]:
        row(f"  {name} per line", f"{per:.3f}", "calls")
    row("  lines read per second under strace", f"{r['strace_lines_per_second']:.0f}", "lines/s")
if r.get("rotation_max_ms") is not None:
    row(f"rename rotation -> first line counted, median ({r['rotations'] - r['rotation_timeouts']} seen)", f"{r['rotation_median_ms']:.1f}", "ms")
    row("rename rotation -> first line counted, max", f"{r['rotation_max_ms']:.1f}", "ms", "<= 1000 ms", r["rotation_max_ms"] <= 1000)
else:
    row("rename rotation -> first line counted (none seen)", "n/a", "ms", "<= 1000 ms", False)
row(f"rotations not counted within the deadline (of {r['rotations']})", f"{r['rotation_timeouts']}", "", "0", r["rotation_timeouts"] == 0)
row("load: peak RSS (VmHWM), whole load phase", f"{r['load_peak_rss_mib']:.1f}", "MiB", "<= 32 MiB", r["load_peak_rss_mib"] <= 32)
row("load: agent lines_read_total at the end", f"{r['lines_read_total']:.0f}", "lines")
print(f"load average (1, 5, 15 min): idle phase end {r['idle_loadavg']}; CPU window end {r['load_loadavg']}")
if float(idle_seconds) < 60:
    print(f"idle window {idle_seconds} s is shorter than the agent's 60 s poll_interval: it may miss the periodic rescan (use IDLE_SECONDS >= 60)")
if r["mtail_lines_per_second"] < 0.95 * r["writer_lines_per_second"]:
    print(f"mtail fell behind the writer ({r['mtail_lines_per_second']:.0f} of {r['writer_lines_per_second']:.0f} lines/s): its CPU % is bounded by the cores left, not its need")
if "strace_error" in r:
    print(f"syscalls per line: not measured: {r['strace_error']}")
EOF
