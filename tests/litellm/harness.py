"""Runs the real LiteLLM proxy (from PyPI) against a real PostgreSQL with the
engine stand-in, drives traffic, and writes the capture and its ground truth.

Ground truth comes from what this harness did and saw (its own clocks, the
stand-in's spawn/bind/exit records, HTTP responses, rows in PostgreSQL),
never from the proxy's log text.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import env as envmod
import schema_topup

# How long the proxy may take from launch to its first accepted connection
# (1.110.2 needed 100 s on a loaded 2-core machine).
ACCEPT_TIMEOUT = 240.0

# containerd splits a line longer than this into `P` records.
CRI_MAX_LINE = 16 * 1024


def now() -> float:
    return time.time()


def rfc3339(t: float) -> str:
    """containerd style: UTC, nanoseconds with trailing zeros trimmed, `Z`."""
    dt = datetime.fromtimestamp(int(t), tz=timezone.utc)
    ns = int(round((t - int(t)) * 1e9))
    if ns >= 1_000_000_000:
        dt = datetime.fromtimestamp(int(t) + 1, tz=timezone.utc)
        ns -= 1_000_000_000
    frac = f"{ns:09d}".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free port OUTSIDE the kernel's ephemeral range.

    Prisma picks the query engine's port with bind(0) while LiteLLM starts,
    before Uvicorn binds the proxy's port: a proxy port taken from the same
    ephemeral pool was once handed to the engine first (the proxy died with
    EADDRINUSE and the harness talked to the engine). Ports below the
    ephemeral range are never handed out by bind(0) or connect().
    """
    lo, hi = _ephemeral_range()
    ranges = [(a, b) for a, b in ((10000, lo), (hi + 1, 65536)) if b - a >= 1000]
    if not ranges:
        raise RuntimeError(f"the ephemeral range {lo}-{hi} leaves no ports for the harness: "
                           "narrow net.ipv4.ip_local_port_range")
    start, end = ranges[0]
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randrange(start, end)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found outside the ephemeral range {lo}-{hi}")


def wait_for(cond, timeout: float, what: str, interval: float = 0.1):
    """Polls ``cond`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# PostgreSQL: a Debian cluster of its own on a free loopback port.

def pg_bin() -> Path:
    env_bin = os.environ.get("SENTINEL_PG_BIN")
    if env_bin:
        return Path(env_bin)
    cands = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not cands:
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; "
                           "install the Debian `postgresql` package or set SENTINEL_PG_BIN)")
    return cands[-1]


class Postgres:
    USER = "litellm"

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.as_postgres = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="litellm-e2e-pg", dir="/tmp"))
        self.data = self.dir / "data"
        self.password = secrets.token_hex(12)
        self.port = 0
        self.running = False
        pw = self.dir / "pw"
        pw.write_text(self.password + "\n")
        if self.as_postgres:
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.dir)], check=True)
        self._run([self.bin / "initdb", "-D", self.data, "-U", self.USER, "-A", "scram-sha-256",
                   "-E", "UTF8", "--no-sync", f"--pwfile={pw}"], "initdb")
        pw.unlink()
        for attempt in range(3):
            self.port = free_port()
            opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c max_connections=100")
            r = self._cmd([self.bin / "pg_ctl", "-D", self.data, "-l", self.dir / "postgres.log",
                           "-w", "-t", "60", "-o", opts, "start"])
            if r.returncode == 0:
                self.running = True
                return
        raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}{r.stderr}\n{self.log()}")

    def _cmd(self, argv):
        argv = [str(a) for a in argv]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        return subprocess.run(argv, capture_output=True, text=True, cwd="/tmp")

    def _run(self, argv, what):
        r = self._cmd(argv)
        if r.returncode != 0:
            raise RuntimeError(f"{what} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def log(self) -> str:
        p = self.dir / "postgres.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else ""

    def url(self, db: str) -> str:
        return f"postgresql://{self.USER}:{self.password}@127.0.0.1:{self.port}/{db}"

    def psql(self, db: str, sql: str | None = None, file: Path | None = None) -> str:
        argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", self.USER, "-d", db]
        argv += ["-f", str(file)] if file else ["-c", sql or ""]
        r = subprocess.run(argv, capture_output=True, text=True,
                           env={**os.environ, "PGPASSWORD": self.password})
        if r.returncode != 0:
            raise RuntimeError(f"psql on {db} failed: {r.stderr.strip()[:2000]}")
        return r.stdout

    def create_db(self, db: str) -> None:
        self.psql("postgres", f'CREATE DATABASE "{db}"')

    def stop(self) -> None:
        if self.running:
            self._cmd([self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"])
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)


def apply_schema(pg: Postgres, db: str, version: str):
    """Applies litellm-proxy-extras' migrations in order, then what the
    release's schema.prisma declares beyond them; returns (migrations, added SQL)."""
    mig = envmod.site_packages(version) / "litellm_proxy_extras" / "migrations"
    files = sorted(mig.glob("*/migration.sql"))
    if not files:
        raise RuntimeError(f"no migrations under {mig}")
    # one psql run for all of them (220 files for 1.110.2): a process per
    # file costs tens of seconds on a loaded machine
    allsql = pg.dir / f"migrations-{db}.sql"
    allsql.write_text("".join(f"\\echo {f.parent.name}\n\\i '{f}'\n" for f in files))
    pg.psql(db, file=allsql)
    schema = envmod.site_packages(version) / "litellm" / "proxy" / "schema.prisma"
    enums = set(pg.psql(db, "SELECT typname FROM pg_type WHERE typtype = 'e'").split())
    existing: dict[str, set] = {}
    for line in pg.psql(db, "SELECT table_name || '|' || column_name FROM information_schema.columns "
                            "WHERE table_schema = 'public'").split():
        t, c = line.split("|", 1)
        existing.setdefault(t, set()).add(c)
    added = schema_topup.statements(schema, enums, existing)
    for stmt in added:
        pg.psql(db, stmt)
    return len(files), added


# --------------------------------------------------------------------------
# Capture: the proxy's stdout+stderr with receive timestamps, as CRI.

class Capture:
    """Reads both pipes, stamps each line on receipt and writes a raw JSONL
    record per line plus a CRI file (``P`` for chunks of lines longer than
    ``CRI_MAX_LINE`` and for a final line without newline, ``F`` otherwise)."""

    def __init__(self, outdir: Path, cri_path: Path) -> None:
        self.outdir = outdir
        cri_path.parent.mkdir(parents=True, exist_ok=True)
        self.raw = open(outdir / "raw.jsonl", "w")
        self.cri = open(cri_path, "wb")
        self.text = open(outdir / "output.txt", "wb")
        self.lock = threading.Lock()
        self.lines = 0
        self.last_t = 0.0
        self.threads: list[threading.Thread] = []

    def attach(self, pipe, stream: str) -> None:
        t = threading.Thread(target=self._pump, args=(pipe, stream), daemon=True)
        t.start()
        self.threads.append(t)

    def _emit(self, stream: str, line: bytes, complete: bool, t: float) -> None:
        with self.lock:
            self.lines += 1
            self.last_t = max(self.last_t, t)
            self.raw.write(json.dumps({"t": t, "stream": stream,
                                       "line": line.decode("utf-8", "replace"),
                                       "complete": complete}) + "\n")
            self.text.write(line + (b"\n" if complete else b""))
            chunks = [line[i:i + CRI_MAX_LINE] for i in range(0, len(line), CRI_MAX_LINE)] or [b""]
            ts = rfc3339(t).encode()
            for i, c in enumerate(chunks):
                tag = b"F" if complete and i == len(chunks) - 1 else b"P"
                self.cri.write(ts + b" " + stream.encode() + b" " + tag + b" " + c + b"\n")
            self.cri.flush()
            self.raw.flush()

    def _pump(self, pipe, stream: str) -> None:
        buf = b""
        fd = pipe.fileno()
        while True:
            chunk = os.read(fd, 65536)
            t = now()
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._emit(stream, line, True, t)
        if buf:
            self._emit(stream, buf, False, now())

    def close(self, timeout: float = 30) -> None:
        for t in self.threads:
            t.join(timeout)
        for f in (self.raw, self.cri, self.text):
            f.close()


# --------------------------------------------------------------------------
# HTTP helpers (stdlib only: the harness runs on the host Python).

def http(method: str, url: str, body=None, headers=None, timeout=10.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers or {}), e.read()


class LiveAgent:
    """The node agent tailing the capture's CRI tree while it is written."""

    def __init__(self, binary: Path, out: Path, quiet_period: str | None) -> None:
        self.port = free_port()
        self.out = out
        cfg = out / "agent.toml"
        cfg.write_text(
            f'globs = ["{out}/pods/*_*litellm*_*/*/*.log"]\n'
            f'state_file = "{out}/agent-state.json"\n'
            f'listen = "127.0.0.1:{self.port}"\n'
            'read_from = "beginning"\n'
            + (f'quiet_period = "{quiet_period}"\n' if quiet_period else ""))
        self.log = open(out / "agent.log", "wb")
        self.proc = subprocess.Popen([str(binary), "run", "--config", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_for(self._up, 60, "the agent's /metrics")

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"agent exited with {self.proc.returncode}; see {self.out}/agent.log")
        try:
            return self.metrics()
        except (OSError, urllib.error.URLError):
            return None

    def metrics(self) -> str:
        st, _, body = http("GET", f"http://127.0.0.1:{self.port}/metrics", timeout=5)
        return body.decode() if st == 200 else ""

    def finish(self, size: int) -> str:
        """Waits until the agent has read every byte of the capture, then
        returns /metrics."""
        def caught_up():
            text = self.metrics()
            total = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                        if l.startswith("litellm_sentinel_bytes_read_total"))
            return text if total >= size else None
        try:
            return wait_for(caught_up, 60, f"the agent to read {size} bytes", 0.25)
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.log.close()


class Sidecar:
    """The agent in the sidecar role next to the proxy, inside the pod's PID
    namespace (``pod.py``), configured as ``litellm-sentinel inject`` does
    (``--role sidecar --proxy-url http://127.0.0.1:<port> --gate startup
    --gate-state-file …``, POD_NAME/POD_NAMESPACE, no DATABASE_URL), every
    probe setting at its default. It finds the engines through the pod's
    procfs (``probe.proc_root``, where ``pod.py`` mounted it: the pod's
    ``/proc`` as a sidecar with ``shareProcessNamespace`` sees it).

    The harness polls ``/gate`` like a kubelet readinessProbe would, only
    more often (every ``GATE_POLL`` s), and keeps every answer."""

    GATE_POLL = 0.25

    def __init__(self, binary: Path, out: Path, proxy_port: int, namespace: str, pod: str) -> None:
        self.binary = binary
        self.out = out
        self.port = free_port()
        self.podroot = Path(tempfile.mkdtemp(prefix="litellm-e2e-pod", dir="/tmp"))
        self.proc_root = self.podroot / "proc"
        self.proc_root.mkdir()
        self.config = out / "sidecar.toml"
        self.config.write_text(
            'role = "sidecar"\n'
            f'listen = "127.0.0.1:{self.port}"\n'
            f'state_file = "{out}/sidecar-state.json"\n'
            'gate = "startup"\n'
            f'gate_state_file = "{out}/sidecar-gate.json"\n'
            "[probe]\n"
            f'proxy_url = "http://127.0.0.1:{proxy_port}"\n'
            f'proc_root = "{self.proc_root}"\n'
            f'namespace = "{namespace}"\n'
            f'pod = "{pod}"\n')
        self.log = out / "sidecar.log"
        self.polls: list[dict] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def wrap(self, argv: list[str]) -> list[str]:
        """The proxy's command run as the pod's main container."""
        return [sys.executable, str(Path(__file__).resolve().parent / "pod.py"),
                "--proc", str(self.proc_root), "--sidecar-bin", str(self.binary),
                "--sidecar-config", str(self.config), "--sidecar-log", str(self.log),
                "--"] + argv

    def start_polling(self) -> None:
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        nxt = time.monotonic()
        while not self.stop.is_set():
            rec: dict = {"sent_at": now()}
            try:
                st, _, body = http("GET", f"http://127.0.0.1:{self.port}/gate", timeout=1.0)
                rec["status"] = st
                try:
                    rec["gate"] = json.loads(body)
                except ValueError:
                    rec["body_not_json"] = True
            except (OSError, urllib.error.URLError) as e:
                rec["status"] = None
                rec["error"] = type(e).__name__
            rec["done_at"] = now()
            self.polls.append(rec)
            nxt += self.GATE_POLL
            self.stop.wait(max(0.0, nxt - time.monotonic()))

    def snapshot(self) -> dict:
        """``/api/v1/pods`` and ``/metrics`` while the proxy still runs."""
        snap: dict = {"at": now()}
        try:
            st, _, body = http("GET", f"http://127.0.0.1:{self.port}/api/v1/pods", timeout=5)
            (self.out / "sidecar-api.json").write_bytes(body)
            snap["api_status"] = st
            st, _, body = http("GET", f"http://127.0.0.1:{self.port}/metrics", timeout=5)
            (self.out / "sidecar-metrics.txt").write_bytes(body)
            snap["metrics_status"] = st
        except (OSError, urllib.error.URLError) as e:
            snap["error"] = type(e).__name__
        return snap

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)
        shutil.rmtree(self.podroot, ignore_errors=True)


@dataclass
class Scenario:
    name: str
    workers: int = 1
    json_logs: bool = False
    engine_mode: str = "normal"      # normal | never | unreachable
    engine_after_accept: float = 25.0  # engine binds this long after the proxy accepts
    kill_after_bind: float | None = None  # kill the bound engine this long after it bound
    run_after_bind: float = 25.0     # traffic continues this long after the (last) bind
    run_never: float = 40.0          # never-binding: how long after accept the run lasts
    request_interval: float = 1.0
    readiness_period: float = 2.0
    # LITELLM_LOCAL_MODEL_COST_MAP=True skips the (failing, ~10 s) fetch of
    # the remote cost map; the default (fetch) is kept where it is False.
    local_cost_map: bool = False
    # `quiet_period` of the live agent (None: the default, 30 s, which is what
    # users run and what the checks use; then the run lasts long enough after
    # the bind for the gap to close)
    quiet_period: str | None = None


# Release prefix -> seconds each engine waits after its spawn before binding
# (instead of binding a fixed time after the proxy accepts).
ENGINE_SPAWN_DELAY = {"1.83": 8.0}

SCENARIOS = {
    # traffic runs 70 s past the bind: well past the default quiet period
    "late-engine": Scenario("late-engine", run_after_bind=70.0),
    "two-workers-json": Scenario("two-workers-json", workers=2, json_logs=True,
                                 local_cost_map=True),
    # the kill comes after the start-up burst ended (35 s > the default 30 s
    # quiet period), so the log method can tell the outage from the gap
    "engine-kill": Scenario("engine-kill", engine_after_accept=10.0, kill_after_bind=35.0,
                            run_after_bind=30.0, local_cost_map=True),
    "engine-never": Scenario("engine-never", engine_mode="unreachable"),
}


class Run:
    def __init__(self, version: str, sc: Scenario, pg: Postgres, outdir: Path) -> None:
        self.version = version
        self.sc = sc
        self.pg = pg
        self.out = outdir
        self.out.mkdir(parents=True, exist_ok=True)
        self.db = f"ll_{version.replace('.', '_')}_{sc.name.replace('-', '_')}"
        self.master_key = "sk-sentinel-" + secrets.token_hex(8)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.events = self.out / "engine-events.jsonl"
        self.requests: list[dict] = []
        self.readiness: list[dict] = []
        self.accepted: dict | None = None
        self.stop_traffic = threading.Event()
        self.lock = threading.Lock()
        self.notes: list[str] = []
        # The kubelet's layout, so `report` and the node agent name the pod:
        # /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
        self.pod = f"litellm-{version.replace('.', '-')}-{sc.name}"
        self.cri_path = (self.out / "pods" / f"e2e_{self.pod}_{uuid.uuid4()}" / "litellm"
                         / "0.log")

    # -- engine records written by the stand-in
    def engine_events(self) -> list[dict]:
        if not self.events.exists():
            return []
        out = []
        for line in self.events.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def binds(self) -> list[dict]:
        return [e for e in self.engine_events() if e["event"] == "bind"]

    def config(self) -> Path:
        cfg = self.out / "config.yaml"
        cfg.write_text(
            "model_list:\n"
            "  - model_name: mock-gpt\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4o-mini\n"
            "      api_key: sk-not-used\n"
            "      mock_response: \"pong\"\n"
            "general_settings:\n"
            "  master_key: os.environ/LITELLM_MASTER_KEY\n"
            "  database_url: os.environ/DATABASE_URL\n"
            "  allow_requests_on_db_unavailable: true\n"
        )
        return cfg

    def _traffic(self) -> None:
        n = 0
        nxt = time.monotonic()
        while not self.stop_traffic.is_set():
            n += 1
            t0 = now()
            rec = {"n": n, "sent_at": t0}
            try:
                st, hdr, body = http("POST", self.base + "/v1/chat/completions", {
                    "model": "mock-gpt", "messages": [{"role": "user", "content": f"ping {n}"}]},
                    {"Authorization": f"Bearer {self.master_key}"}, timeout=30)
                rec.update(status=st, done_at=now(),
                           call_id={k.lower(): v for k, v in hdr.items()}.get("x-litellm-call-id"))
                try:
                    rec["response_id"] = json.loads(body).get("id")
                except (ValueError, AttributeError):
                    pass
            except (OSError, urllib.error.URLError) as e:
                rec.update(status=None, done_at=now(), error=type(e).__name__)
            with self.lock:
                self.requests.append(rec)
            nxt += self.sc.request_interval
            self.stop_traffic.wait(max(0.0, nxt - time.monotonic()))

    def _kubelet(self) -> None:
        """/health/readiness every period with a 1 s timeout, as a kubelet
        readinessProbe does (periodSeconds, timeoutSeconds)."""
        nxt = time.monotonic()
        while not self.stop_traffic.is_set():
            t0 = now()
            rec = {"sent_at": t0}
            try:
                st, _, body = http("GET", self.base + "/health/readiness", timeout=1.0)
                rec["status"] = st
                try:
                    b = json.loads(body)
                    rec["db"] = b.get("db")
                    rec["litellm_version"] = b.get("litellm_version")
                except (ValueError, AttributeError):
                    pass
            except (OSError, urllib.error.URLError) as e:
                rec["status"] = None
                rec["error"] = type(e).__name__
            rec["done_at"] = now()
            with self.lock:
                self.readiness.append(rec)
            nxt += self.sc.readiness_period
            self.stop_traffic.wait(max(0.0, nxt - time.monotonic()))

    def _first_accept(self, proc) -> dict:
        """The first HTTP response on a new connection: the proxy accepted a
        connection somewhere between send and response (a listening socket
        alone is not enough: with workers the parent listens long before any
        worker accepts)."""
        deadline = time.monotonic() + ACCEPT_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            t0 = now()
            try:
                st, _, _ = http("GET", self.base + "/health/liveliness", timeout=2.0)
                return {"sent_at": t0, "response_at": now(), "status": st}
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        if proc.poll() is not None:
            self.notes.append(f"proxy exited with {proc.returncode} before accepting a connection")
        else:
            self.notes.append(f"proxy accepted no connection within {ACCEPT_TIMEOUT:.0f} s")
        return None

    def run(self) -> dict:
        sc = self.sc
        self.pg.create_db(self.db)
        migrations, added = apply_schema(self.pg, self.db, self.version)
        cli, engine_hash = envmod.prisma_versions(self.version)
        env = dict(os.environ)
        env.update(envmod.engine_env(self.version, engine_hash))
        env.update({
            "DATABASE_URL": self.pg.url(self.db),
            "LITELLM_MASTER_KEY": self.master_key,
            "DISABLE_SCHEMA_UPDATE": "true",
            "SENTINEL_ENGINE_EVENTS": str(self.events),
            "SENTINEL_ENGINE_MODE": sc.engine_mode,
            "SENTINEL_ENGINE_RAW_FORMAT": (
                "columns" if _ver(cli) >= (5, 17) else "typed-objects"),
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("JSON_LOGS", None)
        env.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
        if sc.local_cost_map:
            env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        if sc.json_logs:
            env["JSON_LOGS"] = "True"
        # Engines bind no earlier than the time in this file: closed (an hour
        # away) until the proxy accepts, then set to accept + the scenario's delay.
        gate = self.out / "engine-bind-after"
        _write_atomic(gate, str(now() + 3600))
        env["SENTINEL_ENGINE_BIND_AFTER_FILE"] = str(gate)
        # 1.83.x connects its engine once, during start-up, before it accepts
        # traffic, and gives up on the DB for good when /status does not answer
        # within prisma-client-py's 10 s: a late engine there is one that binds
        # within those 10 s of its spawn (found by running it; see README).
        spawn_delay = ENGINE_SPAWN_DELAY.get(self.version[:4])
        if spawn_delay is not None:
            _write_atomic(gate, "0")
            env["SENTINEL_ENGINE_DELAY"] = str(spawn_delay)
            truth_engine_delay = spawn_delay
        else:
            truth_engine_delay = None
        argv = [str(envmod.venv_dir(self.version) / "bin" / "litellm"), "--config",
                str(self.config()), "--host", "127.0.0.1", "--port", str(self.port)]
        if sc.workers > 1:
            argv += ["--num_workers", str(sc.workers)]
        sidecar = None
        sidecar_bin = os.environ.get("SENTINEL_SIDECAR")
        if sidecar_bin:
            sidecar = Sidecar(Path(sidecar_bin), self.out, self.port, "e2e", self.pod)
            argv = sidecar.wrap(argv)
        cap = Capture(self.out, self.cri_path)
        agent = None
        agent_bin = os.environ.get("SENTINEL_LIVE_AGENT")
        if agent_bin:
            # the tree must exist before the agent's first scan: the capture
            # created 0.log already
            agent = LiveAgent(Path(agent_bin), self.out, sc.quiet_period)
        launch = now()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=self.out, start_new_session=True)
        cap.attach(proc.stdout, "stdout")
        cap.attach(proc.stderr, "stderr")
        if sidecar is not None:
            sidecar.start_polling()
        truth: dict = {"version": self.version, "scenario": sc.name, "workers": sc.workers,
                       "namespace": "e2e", "pod": self.pod,
                       "report_quiet_period": sc.quiet_period,
                       "cri_log": str(self.cri_path.relative_to(self.out)),
                       "json_logs": sc.json_logs, "engine_mode": sc.engine_mode,
                       "prisma_cli": cli, "engine_hash": engine_hash,
                       "engine_delay_from_spawn": truth_engine_delay,
                       "migrations_applied": migrations,
                       "schema_topup": added, "proxy_launch_at": launch}
        kill = None
        try:
            self.accepted = self._first_accept(proc)
            if self.accepted is None:
                raise _NoAccept()
            threads = [threading.Thread(target=self._traffic, daemon=True),
                       threading.Thread(target=self._kubelet, daemon=True)]
            for t in threads:
                t.start()
            first = None
            if sc.engine_mode == "normal":
                if spawn_delay is None:
                    bind_at = self.accepted["response_at"] + sc.engine_after_accept
                    _write_atomic(gate, str(bind_at))
                    truth["engine_bind_allowed_at"] = bind_at
                try:
                    first = wait_for(lambda: [b for b in self.binds()],
                                     sc.engine_after_accept + 90, "the first engine bind")[0]
                except TimeoutError as e:
                    self.notes.append(str(e))
            if first is not None:
                if sc.kill_after_bind is not None:
                    kill_base = max(first["t"], self.accepted["response_at"])
                    wait_for(lambda: now() >= kill_base + sc.kill_after_bind,
                             sc.kill_after_bind + 5, "kill time", 0.05)
                    live = [b for b in self.binds() if _alive(b["pid"])]
                    if not live:
                        raise RuntimeError(
                            f"no live query engine to kill {sc.kill_after_bind} s after the first "
                            f"bind: engine events in {self.events}, proxy output in "
                            f"{self.out / 'output.txt'}")
                    target = live[-1]
                    kill = {"pid": target["pid"], "port": target["port"], "at": now()}
                    os.kill(target["pid"], signal.SIGKILL)
                    # LiteLLM has to notice and respawn; the new engine may bind at once.
                    try:
                        wait_for(lambda: [b for b in self.binds() if b["t"] > kill["at"]], 90,
                                 "an engine bound after the kill")
                    except TimeoutError as e:
                        self.notes.append(f"after the kill: {e}")
                last_bind = self.binds()[-1]["t"]
                end = last_bind + sc.run_after_bind
                wait_for(lambda: now() >= end or proc.poll() is not None, sc.run_after_bind + 5,
                         "end of traffic", 0.1)
            else:
                end = max(now(), self.accepted["response_at"] + sc.run_never)
                wait_for(lambda: now() >= end or proc.poll() is not None, sc.run_never + 5,
                         "end of traffic", 0.1)
            self.stop_traffic.set()
            for t in threads:
                t.join(35)
            if sidecar is not None:
                truth["sidecar_snapshot"] = sidecar.snapshot()
            served = [r for r in self.requests if r.get("status") == 200]
            if sc.engine_mode == "normal" and first is not None:
                # spend logs are flushed on an interval: wait for the rows
                # (bounded) rather than a fixed sleep
                try:
                    wait_for(lambda: not _missing(served, self.spend_ids()), 45,
                             "spend-log rows", 0.5)
                except TimeoutError:
                    self.notes.append("not every served request had a spend-log row after 45 s")
        except _NoAccept:
            pass
        finally:
            self.stop_traffic.set()
            if sidecar is not None and "sidecar_snapshot" not in truth:
                # the run ended early (no accept): what the sidecar says then
                truth["sidecar_snapshot"] = sidecar.snapshot()
            stopped_at = now()
            if proc.poll() is None:
                # as the kubelet stops a container: SIGTERM to PID 1 only (the
                # engines stay up while LiteLLM shuts down), SIGKILL to the
                # rest after the grace period
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.notes.append("proxy did not exit within 30 s of SIGTERM")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if proc.poll() is None:
                proc.wait(10)
            cap.close()
            if sidecar is not None:
                sidecar.finish()
            # stray engines of this run (the stand-in detaches from nothing,
            # but a SIGKILLed worker can leave one behind)
            for e in self.engine_events():
                if e["event"] == "spawn" and _alive(e["pid"]):
                    try:
                        os.kill(e["pid"], signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        truth["proxy_stopped_at"] = stopped_at
        truth["proxy_exit_code"] = proc.returncode
        truth.update(self._truth(kill))
        truth["capture_lines"] = cap.lines
        truth["capture_last_line_at"] = cap.last_t
        truth["live_agent"] = str(Path(agent_bin).resolve()) if agent is not None else None
        truth["sidecar"] = None if sidecar is None else {
            "binary": str(Path(sidecar_bin).resolve()), "port": sidecar.port,
            "gate_poll_period": sidecar.GATE_POLL, "gate_polls": sidecar.polls,
            # the agent's defaults (README: [probe]); the sidecar runs with them
            "probe_fast_interval": 0.25, "probe_slow_interval": 10.0, "probe_timeout": 2.0}
        if agent is not None:
            try:
                (self.out / "metrics.txt").write_text(agent.finish(self.cri_path.stat().st_size))
            except (TimeoutError, RuntimeError) as e:
                self.notes.append(f"live agent: {e}")
        truth["notes"] = self.notes
        (self.out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        return truth

    def spend_ids(self) -> set:
        out = self.pg.psql(self.db, 'SELECT request_id FROM "LiteLLM_SpendLogs"')
        return set(out.split())

    def _truth(self, kill) -> dict:
        ev = self.engine_events()
        engines: dict[int, dict] = {}
        for e in ev:
            if e["event"] in ("spawn", "bind", "exit"):
                d = engines.setdefault(e["pid"], {"pid": e["pid"], "port": e.get("port")})
                d[f"{e['event']}_at"] = e["t"]
                if e["event"] == "spawn":
                    for k in ("ppid", "cmdline", "cmdline_nul_padding", "cmdline_trimmed",
                              "comm"):
                        if k in e:
                            d[k] = e[k]
                if e["event"] == "exit":
                    d["exit"] = {k: e[k] for k in ("code", "signal", "reason") if k in e}
        if kill:
            engines.setdefault(kill["pid"], {"pid": kill["pid"]})["killed_by_harness_at"] = kill["at"]
        writes = [e for e in ev if e["event"] == "write"]
        acc = self.accepted["response_at"] if self.accepted else None
        acc_lo = self.accepted["sent_at"] if self.accepted else None
        binds = sorted(e["t"] for e in ev if e["event"] == "bind")
        first_bind = next((b for b in binds if acc is not None and b >= acc_lo), None)
        # an engine that bound before the proxy accepted and was still up then:
        # no start-up gap at all
        ready_at_accept = acc is not None and any(
            d.get("bind_at") is not None and d["bind_at"] < acc_lo
            and (d.get("exit_at") is None or d["exit_at"] > acc)
            and (d.get("killed_by_harness_at") is None or d["killed_by_harness_at"] > acc)
            for d in engines.values())
        ids = self.spend_ids()
        served = [r for r in self.requests if r.get("status") == 200]
        lost = _missing(served, ids)
        t: dict = {
            "first_accepted": self.accepted,
            "engines": sorted(engines.values(), key=lambda d: d.get("spawn_at", 0)),
            "engine_spawns": sum(1 for e in ev if e["event"] == "spawn"),
            "engine_binds": len(binds),
            "first_bind_after_accept_at": first_bind,
            "kill": kill,
            "requests": self.requests,
            "readiness": self.readiness,
            "writes": {"total": len(writes), "ok": sum(1 for w in writes if w.get("ok")),
                       "failed": sum(1 for w in writes if not w.get("ok"))},
            "spend_rows_found": len(ids),
            "spend_row_ids": sorted(ids),
            "requests_served": len(served),
            "requests_failed": sum(1 for r in self.requests if r.get("status") != 200),
            "rows_lost": len(lost),
            "served_without_id": sum(1 for r in served
                                     if not r.get("call_id") and not r.get("response_id")),
        }
        exp: dict = {"starts": 1 if acc is not None else 0, "accepted": acc is not None}
        if acc is not None:
            gap_end = first_bind
            exp["gap_start_at"] = acc
            exp["gap_start_window"] = [acc_lo, acc]
            exp["engine_ready_at_accept"] = ready_at_accept
            if ready_at_accept:
                exp["gap_seconds"] = 0.0
                exp["requests_in_gap"] = 0
                exp["gap_open_at_end"] = False
            elif gap_end is not None:
                exp["gap_seconds"] = gap_end - acc
                exp["requests_in_gap"] = sum(1 for r in served if acc_lo <= r["sent_at"] < gap_end)
                exp["gap_open_at_end"] = False
            else:
                exp["gap_open_at_end"] = True
                exp["requests_in_gap"] = len(served)
            if kill:
                after = [b for b in binds if b > kill["at"]]
                exp["outage"] = {"started_at": kill["at"],
                                 "ended_at": after[0] if after else None,
                                 "seconds": (after[0] - kill["at"]) if after else None,
                                 "requests": sum(1 for r in served
                                                 if after and kill["at"] <= r["sent_at"] < after[0])}
        t["expected"] = exp
        return t


class _NoAccept(Exception):
    """The proxy never accepted a connection: the run ends there."""


def _missing(served: list, ids: set) -> list:
    """Served requests whose spend-log row is not in ``ids`` (LiteLLM keys
    the row by the response id, or by the call id)."""
    return [r for r in served
            if (r.get("call_id") or r.get("response_id"))
            and r.get("call_id") not in ids and r.get("response_id") not in ids]


def _ver(v: str) -> tuple:
    return tuple(int(x) for x in v.split(".")[:3] if x.isdigit())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _write_atomic(path: Path, text: str) -> None:
    """Readers (the stand-in engines polling the bind gate) see the old or the
    new content, never the empty file between truncate and write."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
