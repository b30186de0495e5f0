#!/usr/bin/env python3
"""The `/metrics` scrape benchmark of `make bench-compare` (scripts/bench-compare.sh).

    python3 scripts/bench-compare-metrics.py BIN WORK_DIR

Starts the agent (BIN run) on a kubelet-shaped tree of METRICS_PODS (default
2,000) pod logs, each with one closed start-up gap, a dropped spend batch and
a budget miss, waits until it tracks every pod, then measures from
/proc/<pid>/stat (utime + stime) and /proc/<pid>/status (VmHWM):

* idle: the agent's CPU with nobody scraping (subtracted below);
* CPU per scrape when nothing changed, gzip (as Prometheus asks) and plain,
  SCRAPES (default 300) scrapes back to back;
* CPU per scrape when pod state changed before each scrape (one budget-miss
  line appended to one pod's file, 1 s apart; includes tailing that line);
* bytes on the wire with and without gzip, series on the page;
* peak RSS while scraped every second for SCRAPE_SECONDS (default 30).

Checks (exit 1): the agent tracks every pod, the gzip answer carries
Content-Encoding and Vary and decodes to the plain page, and the counter
appended before a scrape is on that scrape's page.
"""
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import time

PODS = int(os.environ.get("METRICS_PODS", "2000"))
SCRAPES = int(os.environ.get("SCRAPES", "300"))
SCRAPE_SECONDS = int(os.environ.get("SCRAPE_SECONDS", "30"))
CHANGED_SCRAPES = int(os.environ.get("CHANGED_SCRAPES", "20"))
TICK = os.sysconf("SC_CLK_TCK")


def rfc(ns):
    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


def cri(ns, stream, msg):
    return f"{rfc(ns)} {stream} F {msg}\n"


def pod_log(t0):
    """One closed start with its race: the gap confirmed, then closed by a record 2 minutes later."""
    s = 1_000_000_000
    lines = [
        cri(t0, "stdout", "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)"),
        cri(t0 + s, "stdout", "INFO:     Application startup complete."),
        cri(t0 + 2 * s, "stderr", "\x1b[92m10:15:02 - LiteLLM Proxy:ERROR\x1b[0m: utils.py:3905 - Error in spend logs queue monitor: All connection attempts failed"),
        cri(t0 + 2 * s, "stderr", "httpx.ConnectError: All connection attempts failed"),
        cri(t0 + 3 * s, "stderr", "\x1b[92m10:15:03 - LiteLLM Proxy:WARNING\x1b[0m: auth_checks.py:511 - Budget lookup failed for key; cache will not be populated. Each request will hit the database. Error: All connection attempts failed."),
        cri(t0 + 4 * s, "stdout", 'INFO:     10.0.0.7:46642 - "POST /v1/chat/completions HTTP/1.1" 200 OK'),
        cri(t0 + 120 * s, "stdout", 'INFO:     10.0.0.7:46643 - "POST /v1/chat/completions HTTP/1.1" 200 OK'),
    ]
    return "".join(lines)


def budget_miss(ns):
    return cri(ns, "stderr", "\x1b[92m10:20:00 - LiteLLM Proxy:WARNING\x1b[0m: auth_checks.py:511 - Budget lookup failed for key; cache will not be populated. Each request will hit the database. Error: All connection attempts failed.")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, binary, work):
        self.port = free_port()
        pods = os.path.join(work, "pods")
        self.files = []
        t0 = time.time_ns() - 3600 * 1_000_000_000
        for n in range(PODS):
            ns = f"team-{n % 20:02d}"
            pod = f"litellm-{n:05d}-7d9f8c6b5-x2k4q"
            d = os.path.join(pods, f"{ns}_{pod}_7d3e8a42-0000-4000-8000-{n:012d}", "litellm")
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, "0.log")
            with open(path, "w") as f:
                f.write(pod_log(t0 + n * 1_000_000))
            self.files.append((ns, pod, path))
        cfg = os.path.join(work, "agent.toml")
        with open(cfg, "w") as f:
            f.write(
                f'globs = ["{pods}/*_*litellm*_*/*/*.log"]\n'
                f'state_file = "{work}/state/state.json"\n'
                f'listen = "127.0.0.1:{self.port}"\n'
                'read_from = "beginning"\n'
                f"max_pods = {PODS + 100}\n"
            )
        self.log = open(os.path.join(work, "agent.log"), "w")
        self.proc = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=self.log)
        self.conn = None

    def get(self, path, gz):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request("GET", path, headers={"Accept-Encoding": "gzip"} if gz else {})
                r = self.conn.getresponse()
                return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def status(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def value(page, name, pod):
    for line in page.splitlines():
        if line.startswith(name + "{") and f'pod="{pod}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def main(binary, work):
    os.makedirs(work, exist_ok=True)
    fail = []
    agent = Agent(binary, work)
    try:
        # Every pod tracked (asked through the API: no /metrics render yet).
        deadline = time.monotonic() + 300
        tracked = 0
        while tracked < PODS:
            if time.monotonic() > deadline:
                print(f"metrics: the agent tracks {tracked} of {PODS} pods after 300 s (log: {work}/agent.log)", file=sys.stderr)
                return 1
            try:
                _, _, body = agent.get("/api/v1/pods?limit=1", False)
                tracked = json.loads(body)["total"]
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        time.sleep(3)  # the read of the tree settles (checkpoint, lag gauges)
        hwm_unscraped, rss_unscraped = agent.status("VmHWM"), agent.status("VmRSS")
        # Every gap closed (the page is then stable while nothing is appended).
        while True:
            _, _, body = agent.get("/metrics", True)
            in_gap = [l for l in gzip.decompress(body).decode().splitlines() if l.startswith("litellm_sentinel_in_startup_gap{")]
            if len(in_gap) == PODS and all(l.endswith(" 0") for l in in_gap):
                break
            if time.monotonic() > deadline:
                print(f"metrics: gaps still open after 300 s (log: {work}/agent.log)", file=sys.stderr)
                return 1
            time.sleep(0.5)
        hwm_first = agent.status("VmHWM")

        # Idle rate: nobody scrapes.
        c0, t0 = agent.cpu_s(), time.monotonic()
        time.sleep(10)
        idle_rate = (agent.cpu_s() - c0) / (time.monotonic() - t0)

        def per_scrape(gz, n):
            agent.get("/metrics", gz)  # the cache is filled (and the gzip stream made) once
            c0, t0 = agent.cpu_s(), time.monotonic()
            size = 0
            for _ in range(n):
                status, headers, body = agent.get("/metrics", gz)
                size = len(body)
                if status != 200:
                    fail.append(f"/metrics answered {status}")
                    break
            dt = time.monotonic() - t0
            return ((agent.cpu_s() - c0) - idle_rate * dt) / n * 1000, dt / n * 1000, size, headers

        # As Prometheus scrapes (gzip) first; plain scrapes, which make the
        # agent keep the ~5 MB text as well, last.
        gz_ms, gz_wall, gz_bytes, gz_headers = per_scrape(True, SCRAPES)
        _, h, zipped = agent.get("/metrics", True)
        if h.get("content-encoding") != "gzip" or h.get("vary") != "Accept-Encoding":
            fail.append(f"gzip answer headers: {h}")
        page = gzip.decompress(zipped).decode()
        series = sum(1 for l in page.splitlines() if l and not l.startswith("#"))

        # Scraped every second (what a 1 s scrape interval costs).
        hwm_b2b = agent.status("VmHWM")
        c0, t0 = agent.cpu_s(), time.monotonic()
        for _ in range(SCRAPE_SECONDS):
            start = time.monotonic()
            agent.get("/metrics", True)
            time.sleep(max(0.0, 1 - (time.monotonic() - start)))
        every_s = (agent.cpu_s() - c0) / (time.monotonic() - t0) * 100
        hwm_every = agent.status("VmHWM")

        # State changes before each scrape: one budget miss appended to one pod, 1 s apart.
        changed_ms = []
        for i in range(CHANGED_SCRAPES):
            ns, pod, path = agent.files[(i * 97) % PODS]
            before = value(page, "litellm_sentinel_budget_cache_misses_total", pod) or 0
            # A budget miss after the gap closed opens a DB outage; it closes after the quiet period.
            with open(path, "a") as f:
                f.write(budget_miss(time.time_ns()))
            time.sleep(1)
            c0 = agent.cpu_s()
            _, _, body = agent.get("/metrics", True)
            changed_ms.append((agent.cpu_s() - c0) * 1000)
            page = gzip.decompress(body).decode()
            if value(page, "litellm_sentinel_budget_cache_misses_total", pod) != before + 1:
                fail.append(f"scrape {i}: the budget miss appended to {pod} 1 s before is not on the page")
        # One scrape is about one 10 ms clock tick: the mean over the scrapes.
        changed_per = sum(changed_ms) / CHANGED_SCRAPES
        hwm_changed = agent.status("VmHWM")

        # Plain scrapes (curl, a browser): the text is cached beside the gzip stream.
        plain_ms, plain_wall, plain_bytes, plain_headers = per_scrape(False, SCRAPES)
        if "content-encoding" in plain_headers:
            fail.append("a scrape without Accept-Encoding got Content-Encoding")
        _, _, zipped = agent.get("/metrics", True)
        _, _, plain = agent.get("/metrics", False)
        # The small families (lines read, …) may move between the two requests; the pod part may not.
        pods_part = lambda b: b[b.index(b"# HELP litellm_sentinel_db_connect_errors_total"):]
        if pods_part(gzip.decompress(zipped)) != pods_part(plain):
            fail.append("the gzip page does not decode to the plain page")
        hwm_plain, rss = agent.status("VmHWM"), agent.status("VmRSS")

    finally:
        agent.stop()

    print(f"\nmetrics: {PODS} pods, {series} series on the page")
    print(f"{'measurement':<58} {'value':>14}")
    rows = [
        ("agent CPU idle, nobody scraping (% of a core)", f"{idle_rate * 100:.2f} %"),
        (f"CPU per scrape, nothing changed, gzip ({SCRAPES} back to back)", f"{gz_ms:.2f} ms"),
        (f"CPU per scrape, nothing changed, plain ({SCRAPES} back to back)", f"{plain_ms:.2f} ms"),
        ("wall time per scrape, gzip / plain (client included)", f"{gz_wall:.2f} / {plain_wall:.2f} ms"),
        (f"CPU per scrape after a state change, gzip ({CHANGED_SCRAPES} scrapes)", f"{changed_per:.1f} ms"),
        ("bytes per scrape, gzip", f"{gz_bytes:,}"),
        ("bytes per scrape, plain", f"{plain_bytes:,}"),
        (f"agent CPU while scraped every second, gzip ({SCRAPE_SECONDS} s)", f"{every_s:.2f} %"),
        ("RSS (VmRSS) / peak (VmHWM) with every pod read, not yet scraped", f"{rss_unscraped:.1f} / {hwm_unscraped:.1f} MiB"),
        ("peak RSS after the first gzip scrapes", f"{hwm_first:.1f} MiB"),
        ("peak RSS after the back-to-back gzip scrapes", f"{hwm_b2b:.1f} MiB"),
        ("peak RSS after the 1 s gzip scrapes", f"{hwm_every:.1f} MiB"),
        ("peak RSS after the state changes (gzip)", f"{hwm_changed:.1f} MiB"),
        ("peak RSS / RSS after the plain scrapes too", f"{hwm_plain:.1f} / {rss:.1f} MiB"),
    ]
    for k, v in rows:
        print(f"{k:<58} {v:>14}")
    print("\ntargets (issue 15):")
    for what, ok, got in [
        ("<= 5 ms of agent CPU per scrape when nothing changed", gz_ms <= 5, f"{gz_ms:.2f} ms"),
        ("<= 200 KB on the wire with gzip", gz_bytes <= 200_000, f"{gz_bytes / 1000:.0f} KB"),
        ("peak RSS <= 32 MiB while scraped (gzip) every second", hwm_changed <= 32, f"{hwm_changed:.1f} MiB"),
    ]:
        print(f"  {what:<54} {got:>12}  {'met' if ok else 'MISSED'}")
    if fail:
        print("\nmetrics: FAIL: " + "; ".join(fail), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
