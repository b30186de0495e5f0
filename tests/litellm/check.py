"""What `litellm-sentinel report --json` must say about a capture, given the
ground truth the harness recorded (never the log text).

Semantics checked are those of DESIGN.md ("Start-ups, gaps and outages",
revised) and issue 14:

* one container run is one start, opened at the first ``Application startup
  complete.`` (the proxy accepts traffic there), whatever the worker count;
* the log-method gap ends with the start-up burst of DB failures, within 2 s
  of the first engine bind after the first accepted connection;
* requests inside the gap are those the harness sent (and got 200 for)
  between accepting and the engine bind;
* spend rows lost = requests served whose row never reached PostgreSQL;
  1.83.x drops batches, 1.108+ re-queues them;
* an engine killed mid-life is an outage of that start (within 2 s, with its
  requests), not a new start;
* an engine that never binds leaves the gap open at the end of the input.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

# Checks no log-based agent can pass, with why. Reported as XFAIL (and
# XPASS if they ever pass), not counted as failures. Keyed by (release
# prefix, scenario, check name).
KNOWN_BLIND = {
    ("1.83", "engine-never", "spend rows lost (PostgreSQL)"):
        "1.83.14 drops its Prisma client when the engine misses the 10 s at start-up "
        "and never tries to write spend logs again: no line states the loss",
    ("1.83", "engine-never", "1.83 drops batches iff rows were lost"):
        "same: no batch is ever attempted, so none is logged as dropped",
    # The same blind spot for the gap: every DB line of the run comes before
    # `Application startup complete.`; after it 1.83.14 logs nothing about the
    # database, so the log cannot tell "engine up just in time" (the
    # late-engine capture, identical after accept) from "client dropped for
    # good". The sidecar sees it (its engine never answers: /gate stays 503).
    ("1.83", "engine-never", "the gap is confirmed by DB failures"):
        "no DB line after accept: indistinguishable from an engine up in time",
    ("1.83", "engine-never", "gap open at the end of the input"):
        "same: no DB line after accept",
    ("1.83", "engine-never", "open gap has no closed gap_seconds"):
        "same: no DB line after accept",
    ("1.83", "engine-never", "open gap: failing until the proxy stopped"):
        "same: no DB line after accept",
    ("1.83", "engine-never", "requests inside the open gap"):
        "same: no DB line after accept",
}

TOL_S = 2.0          # seconds: the tolerance for gap and outage times
TOL_REQ = 2          # requests: one per second, so 2 s of boundary is 2 requests
PROBE_TIMEOUT_S = 2.0  # the harness's accept probe (harness.Run._first_accept)


def ts(s: str | None) -> float | None:
    if s is None:
        return None
    s = s.replace("Z", "+00:00")
    # Python < 3.11 cannot parse 9 fractional digits; trim to microseconds
    if "." in s:
        head, rest = s.split(".", 1)
        frac = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(frac):]
        s = f"{head}.{frac[:6]}{tail}"
    return datetime.fromisoformat(s).timestamp()


def report(binary: Path, tree: Path, quiet_period: str | None = None) -> dict:
    argv = [str(binary), "report", "--json", str(tree)]
    if quiet_period:
        argv += ["--quiet-period", quiet_period]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"report --json exited {p.returncode}: {p.stderr.strip()[:500]}")
    return json.loads(p.stdout)


class Checks:
    """Collects named pass/fail results for one capture."""

    def __init__(self, label: str, version: str = "", scenario: str = "") -> None:
        self.label = label
        self.version = version
        self.scenario = scenario
        self.results: list[tuple[str, bool, str]] = []
        self.notes: list[str] = []
        # agent defects this run shows (reported to the lead), by check name:
        # XFAIL/XPASS like KNOWN_BLIND, but decided from the run's own evidence
        self.agent_defects: dict[str, str] = {}

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.results.append((name, bool(ok), detail))

    def known_blind(self, name: str) -> str | None:
        return (KNOWN_BLIND.get((self.version[:4], self.scenario, name))
                or self.agent_defects.get(name))

    def near(self, name: str, got, want, tol) -> None:
        ok = got is not None and want is not None and abs(got - want) <= tol
        self.check(name, ok, f"got {_fmt(got)}, truth {_fmt(want)} (±{tol})")

    def eq(self, name: str, got, want) -> None:
        self.check(name, got == want, f"got {got!r}, truth {want!r}")

    @property
    def failed(self) -> list:
        return [r for r in self.results if not r[1] and not self.known_blind(r[0])]


def _fmt(v):
    return f"{v:.2f}" if isinstance(v, float) else repr(v)


def check_capture(binary: Path, capdir: Path) -> Checks:
    truth = json.loads((capdir / "truth.json").read_text())
    c = Checks(f"{truth['version']} {truth['scenario']}", truth["version"], truth["scenario"])
    # Default settings, whatever quiet period a capture's own run used (the
    # committed captures record 20 s; users run the default).
    rep = report(binary, capdir / "pods")
    pods = rep.get("pods", [])
    c.eq("one pod in the report", len(pods), 1)
    if not pods:
        return c
    pod = pods[0]
    c.eq("pod name from the CRI path", pod.get("pod"), truth["pod"])
    counts = pod.get("counts", {})
    exp = truth["expected"]
    if not exp.get("accepted", True):
        # the proxy never accepted a connection (e.g. its workers never came
        # up): no start, nothing at risk
        c.eq("never accepted: no start", counts.get("proxy_starts"), 0)
        c.eq("never accepted: no requests at risk", counts.get("requests_during_gap"), 0)
        _live(c, binary, capdir, truth, counts, {})
        _sidecar(c, binary, capdir, truth)
        return c
    c.eq("proxy_starts (one container run, whatever the workers)", counts.get("proxy_starts"),
         exp["starts"])
    starts = pod.get("starts", [])
    c.eq("one start", len(starts), 1)
    if not starts:
        return c
    s = starts[0]
    acc = truth["first_accepted"]
    # The start opens when the proxy accepts: at or before the first HTTP
    # response, and not more than TOL_S before the probe that got it was sent.
    la = ts(s.get("listening_at"))
    # The probe before the successful one may have been accepted and not
    # answered within its timeout (a loaded worker): the accept lies in
    # [sent_at - PROBE_TIMEOUT, response_at].
    c.check("start opens at the first accepted connection",
            la is not None
            and acc["sent_at"] - PROBE_TIMEOUT_S - TOL_S <= la <= acc["response_at"] + 0.5,
            f"listening_at {_fmt(la and la - truth['proxy_launch_at'])} s after launch, "
            f"first accepted between {_fmt(acc['sent_at'] - truth['proxy_launch_at'])} and "
            f"{_fmt(acc['response_at'] - truth['proxy_launch_at'])} s")
    in_gap = counts.get("requests_during_gap")
    if exp.get("engine_ready_at_accept"):
        # an engine was up before the proxy accepted: a provisional start that
        # no DB failure confirmed, gap 0, nothing at risk
        c.eq("no gap: start stays unconfirmed", s.get("confirmed"), False)
        c.eq("no gap: closed", s.get("open"), False)
        c.eq("no gap: gap_seconds 0", s.get("gap_seconds"), 0.0)
        c.eq("no gap: no requests at risk", in_gap, 0)
    else:
        c.eq("the gap is confirmed by DB failures", s.get("confirmed"), True)
    if exp.get("engine_ready_at_accept"):
        pass
    elif not exp["gap_open_at_end"]:
        c.eq("gap closed", s.get("open"), False)
        gap = s.get("gap_seconds")
        c.near("log-method gap ends at the first engine bind after accept",
               la + gap if la is not None and gap is not None else None,
               truth["first_bind_after_accept_at"], TOL_S)
        c.near("requests inside the gap", in_gap, exp["requests_in_gap"], TOL_REQ)
    else:
        c.eq("gap open at the end of the input", s.get("open"), True)
        c.eq("open gap has no closed gap_seconds", s.get("gap_seconds"), None)
        # Failing until the proxy stopped serving (SIGTERM → `Shutting down`):
        # the flush failures of the shutdown itself are not the gap.
        end = truth["proxy_stopped_at"]
        last_fail_window = end - acc["response_at"]
        fs = s.get("failing_seconds")
        c.check("open gap: failing until the proxy stopped",
                fs is not None and last_fail_window - 15 <= fs <= last_fail_window + TOL_S,
                f"got {_fmt(fs)}, proxy stopped {_fmt(last_fail_window)} s after accept")
        c.near("requests inside the open gap", in_gap, exp["requests_in_gap"], TOL_REQ)
    # spend
    lost = truth["rows_lost"]
    c.eq("spend rows lost (PostgreSQL)", counts.get("spend_rows_lost"), lost)
    if truth["version"].startswith("1.83"):
        c.check("1.83 drops batches iff rows were lost",
                (counts.get("spend_batches_dropped", 0) > 0) == (lost > 0),
                f"dropped {counts.get('spend_batches_dropped')}, rows lost {lost}")
    else:
        c.eq("1.108+ re-queues: no batch dropped", counts.get("spend_batches_dropped"), 0)
    # outages
    outages = s.get("outages", [])
    if "outage" in exp:
        o = exp["outage"]
        c.eq("one mid-life outage", len(outages), 1)
        if outages:
            got = outages[0]
            c.near("outage starts at the kill", ts(got.get("started_at")), o["started_at"], TOL_S)
            start, secs = ts(got.get("started_at")), got.get("seconds")
            c.near("outage ends at the next engine bind",
                   start + secs if start is not None and secs is not None else None,
                   o["ended_at"], TOL_S)
            c.near("requests during the outage", got.get("requests"), o["requests"], TOL_REQ)
    else:
        c.eq("no mid-life outage", len(outages), 0)
    _live(c, binary, capdir, truth, counts, s)
    _sidecar(c, binary, capdir, truth)
    return c


def _sidecar(c: Checks, binary: Path, capdir: Path, truth: dict) -> None:
    sc = truth.get("sidecar")
    if not sc:
        return
    if Path(sc["binary"]).resolve() != Path(binary).resolve():
        c.notes.append(f"sidecar not compared: it ran {sc['binary']}, not {binary}")
        return
    check_sidecar(c, capdir, truth)


def _live(c: Checks, binary: Path, capdir: Path, truth: dict, counts: dict, s: dict) -> None:
    mfile = capdir / "metrics.txt"
    live_bin = truth.get("live_agent")
    if mfile.exists() and live_bin and Path(live_bin).resolve() == Path(binary).resolve():
        check_live(c, parse_metrics(mfile.read_text()), truth, counts, s)
    elif mfile.exists():
        c.notes.append(f"live /metrics not compared: they came from {live_bin}, not {binary}")
    elif live_bin:
        c.check("live agent produced /metrics", False, f"no metrics.txt in {capdir}")


def parse_metrics(text: str) -> dict:
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    import re
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def _pod_value(metrics: dict, name: str, pod: str, **want) -> float | None:
    vals = [v for (n, labels), v in metrics.items()
            if n == "litellm_sentinel_" + name and ("pod", pod) in labels
            and all((k, w) in labels for k, w in want.items())]
    return sum(vals) if vals else None


def check_live(c: Checks, m: dict, truth: dict, counts: dict, s: dict) -> None:
    """The node agent tailing the capture while it was written must give the
    numbers `report` gives over the finished file."""
    pod = truth["pod"]
    for metric, field in (("proxy_starts_total", "proxy_starts"),
                          ("requests_during_gap_total", "requests_during_gap"),
                          ("spend_batches_dropped_total", "spend_batches_dropped"),
                          ("spend_rows_lost_total", "spend_rows_lost"),
                          ("spend_rows_requeued_total", "spend_rows_requeued"),
                          ("db_outages_total", "db_outages"),
                          ("requests_during_outage_total", "requests_during_outage")):
        if field not in counts:
            continue
        got = _pod_value(m, metric, pod)
        c.eq(f"live /metrics {metric} = report {field}", got if got is not None else 0.0,
             float(counts[field]))
    if s.get("gap_seconds") is not None and not s.get("open"):
        got = _pod_value(m, "last_startup_gap_seconds", pod)
        c.near("live last_startup_gap_seconds = report gap_seconds", got, s["gap_seconds"], 0.01)


# --------------------------------------------------------------------------
# The sidecar: probes of the real proxy's engines (found through the pod's
# /proc), its /gate as polled by the harness, against the engines' own
# spawn/bind/exit records.

# Scheduling slack on top of one probe interval: a round is two HTTP calls
# per engine to a Python stand-in and a SELECT 1 on PostgreSQL, on a loaded
# 2-core machine.
PROBE_SLACK_S = 0.25


def _end(e: dict) -> float:
    ends = [e[k] for k in ("exit_at", "killed_by_harness_at") if e.get(k) is not None]
    return min(ends) if ends else float("inf")


def every_worker_ready_at(truth: dict, after: float = float("-inf")) -> float | None:
    """The first time (> ``after``) at which every worker has a live, bound
    engine: engines are told apart by their parent (the worker that spawned
    them); with one worker any live bound engine will do."""
    engines = [e for e in truth["engines"] if e.get("bind_at") is not None]
    workers = truth.get("workers", 1)
    for t in sorted(e["bind_at"] for e in engines if e["bind_at"] > after):
        live = [e for e in engines if e["bind_at"] <= t < _end(e)]
        owners = {e.get("ppid", e["pid"]) for e in live} if workers > 1 else {0} if live else set()
        if len(owners) >= workers:
            return t
    return None


def parse_sidecar_pod(capdir: Path, truth: dict) -> dict | None:
    f = capdir / "sidecar-api.json"
    if not f.exists():
        return None
    pods = [p for p in json.loads(f.read_text()).get("pods", [])
            if p.get("pod") == truth["pod"] and p.get("namespace") == truth["namespace"]]
    return pods[0] if len(pods) == 1 else None


def check_sidecar(c: Checks, capdir: Path, truth: dict) -> None:
    """What the sidecar must say next to the real proxy (issue 14 item 5):
    `/gate` 503 until every worker's engine listens, 200 after and then
    latched (src/gate.rs: 200 for the life of the proxy process, whatever
    happens later), the probe-measured gap within one probe interval of the
    engine bind, a killed engine a probe outage with its duration, every
    worker's engine probed."""
    sc = truth["sidecar"]
    fast = sc["probe_fast_interval"]
    poll = sc["gate_poll_period"]
    stopped = truth["proxy_stopped_at"]
    polls = [p for p in sc["gate_polls"] if p["done_at"] < stopped]
    answered = [p for p in polls if p.get("status") in (200, 503)]
    c.check("sidecar: /gate answered", len(answered) > 0,
            f"{len(answered)} of {len(polls)} polls answered 200/503")
    if not answered:
        return
    spawned = [e for e in truth["engines"] if e.get("spawn_at") is not None]
    if spawned:
        # what the sidecar's discovery reads must be what a real engine shows:
        # prisma-client-py's argv (src/prisma/engine/_query.py) and the
        # kernel's 15-byte comm of `query-engine-debian-openssl-3.0.x`
        unlike = [e["pid"] for e in spawned
                  if e.get("comm") != "query-engine-de" or not e.get("cmdline")
                  or Path(e["cmdline"][0]).name != "query-engine-debian-openssl-3.0.x"
                  or e["cmdline"][1:] != ["-p", str(e.get("port")), "--enable-metrics",
                                          "--enable-raw-queries"]]
        c.check("stand-in engines look like the real engine in /proc (cmdline, comm)",
                not unlike, f"{len(spawned)} spawned, unlike a real engine: {unlike}")
    ready = every_worker_ready_at(truth)
    acc = truth.get("first_accepted")
    m = parse_metrics((capdir / "sidecar-metrics.txt").read_text()) \
        if (capdir / "sidecar-metrics.txt").exists() else {}
    # A readiness probe that connected and got no answer in time (1.110.2's
    # /health/readiness waits up to 4 s on its DB check while the engine is
    # down) counts as "accepting" when the proxy answered /health/liveliness
    # alongside, stamped at that connect (src/probe/proxy.rs): the start and
    # the gate open at the accept, not at the first readiness answer. These
    # are reported, not excused: hung readiness probes are response_timeout.
    hung = {reason: sum(v for (n, labels), v in m.items()
                        if n == "litellm_sentinel_probe_failures_total"
                        and ("target", "proxy_readiness") in labels
                        and ("reason", reason) in labels)
            for reason in ("timeout", "response_timeout")}
    c.notes.append(f"sidecar readiness probes: {hung['response_timeout']:.0f} response_timeout "
                   f"(accepted, no answer in time), {hung['timeout']:.0f} timeout (nothing served)")
    opened = next((p for p in polls if p.get("status") == 200), None)
    launch = truth["proxy_launch_at"]
    rel = lambda t: _fmt(t - launch) if t is not None else "never"  # noqa: E731
    if ready is None or acc is None:
        c.check("sidecar: /gate stays 503 (no engine of every worker ever listened)",
                opened is None and all(p["status"] == 503 for p in answered),
                f"first 200 at {rel(opened and opened['sent_at'])} s after launch; "
                f"{sum(1 for p in answered if p['status'] == 503)} polls 503")
    else:
        # 503 before every worker's engine listened and before the proxy could
        # accept; one 503 at least, or the check could not fail
        open_lo = max(ready, acc["sent_at"] - PROBE_TIMEOUT_S)
        before = [p for p in answered if p["done_at"] < open_lo]
        early = [p for p in before if p["status"] == 200]
        c.check("sidecar: /gate 503 until every worker's engine listens",
                not early and len(before) > 0,
                f"{len(before)} polls before the last engine bind ({rel(ready)} s after launch), "
                f"{len(early)} of them 200")
        open_hi = max(ready, acc["response_at"])
        tol = fast + poll + PROBE_SLACK_S
        c.check("sidecar: /gate turns 200 once every engine listens",
                opened is not None and opened["sent_at"] <= open_hi + tol,
                f"first 200 polled {_fmt(opened['sent_at'] - open_hi) if opened else 'never'} s "
                f"after the later of bind and accept (≤ {tol:.2f})")
        if opened is not None:
            after = [p for p in polls if p["sent_at"] >= opened["sent_at"]]
            closed = [p for p in after if p.get("status") != 200]
            c.check("sidecar: /gate stays 200 once open (start-up latch)",
                    not [p for p in closed if p.get("status") == 503],
                    f"{len(after)} polls after opening, {len(closed)} not 200 "
                    f"({sum(1 for p in closed if p.get('status') is None)} unanswered)")
            g = opened.get("gate") or {}
            c.eq("sidecar: /gate open in startup mode", (g.get("mode"), g.get("state")),
                 ("startup", "open"))
        kill = truth.get("kill")
        if kill is not None and opened is not None:
            ended = (truth["expected"].get("outage") or {}).get("ended_at") or stopped
            during = [p for p in polls if kill["at"] <= p["sent_at"] < ended]
            c.check("sidecar: /gate stays 200 through the engine kill",
                    opened["sent_at"] < kill["at"] and during
                    and all(p.get("status") == 200 for p in during if p.get("status") is not None),
                    f"{len(during)} polls between kill and re-bind: "
                    f"{sorted({p.get('status') for p in during}, key=str)}")
    pod = parse_sidecar_pod(capdir, truth)
    if acc is None:
        # never accepted: no start; the pod may be listed (probes ran) or not
        if pod is not None:
            c.eq("sidecar: no start without an accepted connection",
                 len(pod.get("starts") or []), 0)
        return
    c.check("sidecar: the pod in /api/v1/pods", pod is not None,
            f"namespace {truth['namespace']}, pod {truth['pod']}")
    if pod is None:
        return
    engines = pod.get("engines") or {}
    workers = truth.get("workers", 1)
    live_at_end = [e for e in truth["engines"]
                   if e.get("bind_at") is not None and _end(e) > truth["sidecar_snapshot"]["at"]]
    if ready is not None and live_at_end:
        c.eq("sidecar: every worker's engine discovered (/proc)", engines.get("discovered"),
             workers)
        c.eq("sidecar: every worker's engine answering", engines.get("up"), workers)
        c.eq("sidecar: engines_discovered metric",
             _pod_value(m, "engines_discovered", truth["pod"]), float(workers))
    said = sorted({r["litellm_version"] for r in truth.get("readiness", [])
                   if r.get("litellm_version")})
    # 1.110.2's public /health/readiness carries no litellm_version: the
    # sidecar then reads the proxy's installed litellm-<version>.dist-info
    # through the pod's /proc (the engines' parents' maps and root/), so
    # whenever an engine was seen the version is known either way.
    want_version = said[-1] if said else (truth["version"] if ready is not None else None)
    if want_version:
        c.eq("sidecar: LiteLLM version (/health/readiness, else the installed package)",
             engines.get("litellm_version"), want_version)
    starts = pod.get("starts") or []
    c.eq("sidecar: one start", len(starts), 1)
    if not starts:
        return
    s = starts[0]
    la = ts(s.get("listening_at"))
    c.check("sidecar: start opens when the proxy accepts",
            la is not None and acc["sent_at"] - PROBE_TIMEOUT_S <= la
            <= acc["response_at"] + fast + PROBE_SLACK_S,
            f"listening_at {rel(la)} s after launch, first accepted between "
            f"{rel(acc['sent_at'])} and {rel(acc['response_at'])} s")
    if ready is None:
        c.eq("sidecar: gap open at the end (no engine ever listened)", s.get("open"), True)
        return
    er = ts(s.get("engine_ready_at"))
    last = ts(s.get("engines_last_ready_at"))
    if last is not None:
        # the first round in which every engine answered, whatever the proxy
        # port did: the engine probe's own accuracy
        lag = last - ready
        c.check("sidecar: every engine answered within one probe interval of the last bind",
                -0.05 <= lag <= fast + PROBE_SLACK_S,
                f"engines_last_ready_at {_fmt(lag)} s after the bind (≤ {fast} + {PROBE_SLACK_S})")
    if ready > acc["response_at"]:
        # the bind record is written right after the socket listens: the
        # probe may get in a few ms before it
        lag = er - ready if er is not None else None
        c.check("sidecar: probe gap ends at the last engine bind (within one probe interval)",
                lag is not None and -0.05 <= lag <= fast + PROBE_SLACK_S,
                f"engine_ready_at {_fmt(lag)} s after the bind ({rel(ready)} s after launch; "
                f"≤ {fast} + {PROBE_SLACK_S})")
        want = ready - acc["response_at"]
        tol = fast + PROBE_SLACK_S + (acc["response_at"] - acc["sent_at"])
        c.near("sidecar: probe gap_seconds = last engine bind - accept", s.get("gap_seconds"),
               want, round(tol, 2))
    else:
        # every engine listened before the proxy accepted (1.83.x): no gap
        c.near("sidecar: no gap (engines up before the proxy accepted)", s.get("gap_seconds"),
               0.0, fast + PROBE_SLACK_S)
    exp = truth["expected"]
    if "outage" in exp and exp["outage"].get("ended_at") is not None:
        o = exp["outage"]
        outages = s.get("outages") or []
        # an up engine is watched every fast interval between slow rounds
        # (src/probe/engine.rs still_there: /proc + a connect), so even a kill
        # that is respawned within one slow interval is an outage
        c.eq("sidecar: the engine kill is one probe outage", len(outages), 1)
        hist = [v for (n, labels), v in m.items()
                if n == "litellm_sentinel_db_outage_seconds_sum"
                and ("method", "probe") in labels]
        # the outage ends when every worker has a live engine again
        back = every_worker_ready_at(truth, after=o["started_at"])
        if outages:
            got = outages[0]
            st, secs = ts(got.get("started_at")), got.get("seconds")
            c.check("sidecar: probe outage starts at the kill (within one fast interval)",
                    st is not None and o["started_at"] <= st + 0.05
                    <= o["started_at"] + fast + PROBE_SLACK_S,
                    f"started {_fmt(st - o['started_at'] if st else None)} s after the kill "
                    f"(≤ {fast} + {PROBE_SLACK_S})")
            end = st + secs if st is not None and secs is not None else None
            c.check("sidecar: probe outage ends at the re-bind (within one probe interval)",
                    end is not None and back is not None
                    and -0.05 <= end - back <= fast + PROBE_SLACK_S,
                    f"ended {_fmt(end - back if end and back else None)} s after the re-bind")
            c.near("sidecar: probe outage duration = kill → re-bind", secs,
                   (back or o["ended_at"]) - o["started_at"], fast + PROBE_SLACK_S)
        c.check("sidecar: db_outage_seconds (probe) has the outage", sum(hist) > 0,
                f"sum {sum(hist):.2f} s")
