"""`make test-litellm`: the real LiteLLM proxy, two releases, four scenarios
each, checked against `litellm-sentinel report --json`.

    python3 tests/litellm/test_litellm.py [--version V] [--scenario S]
        [--reuse] [--bin PATH] [--jobs N] [--no-live] [--no-sidecar]

--reuse checks the captures already under target/litellm-e2e/ instead of
running the proxy again. Exit 0 only when every check passed; 2 when an
environment could not be built (PyPI / npm unreachable: never a skip).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import check  # noqa: E402
import env as envmod  # noqa: E402
import harness  # noqa: E402

OUT = envmod.REPO / "target" / "litellm-e2e"


# Seconds one run took (warm cache, one `make test-litellm` at load ~13 on 2
# cores), only to order the runs.
_EXPECTED_S = {
    ("1.110.2", "late-engine"): 237, ("1.110.2", "engine-kill"): 205,
    ("1.110.2", "engine-never"): 180, ("1.110.2", "two-workers-json"): 276,
    ("1.83.14", "late-engine"): 166, ("1.83.14", "engine-kill"): 155,
    ("1.83.14", "engine-never"): 126, ("1.83.14", "two-workers-json"): 267,
}


def run_version(version: str, scenarios: list[str], live_agent: Path | None,
                sidecar: Path | None) -> int:
    """One run.py process (its own PostgreSQL cluster) for ``version`` and
    ``scenarios``."""
    env = dict(os.environ)
    env.pop("SENTINEL_LIVE_AGENT", None)
    env.pop("SENTINEL_SIDECAR", None)
    if live_agent is not None:
        env["SENTINEL_LIVE_AGENT"] = str(live_agent)
    if sidecar is not None:
        env["SENTINEL_SIDECAR"] = str(sidecar)
    p = subprocess.run([sys.executable, str(HERE / "run.py"), "--version", version]
                       + sum((["--scenario", s] for s in scenarios), []), env=env)
    return p.returncode


def pod_preflight() -> str | None:
    """Why pod.py cannot make a pod here (None: it can)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="litellm-e2e-preflight") as d:
        (Path(d) / "proc").mkdir()
        p = subprocess.run([sys.executable, str(HERE / "pod.py"), "--proc", f"{d}/proc", "--",
                            "test", "-e", f"{d}/proc/1/cmdline"],
                           capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        return None
    return (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", action="append", choices=sorted(envmod.RELEASES))
    ap.add_argument("--scenario", action="append", choices=sorted(harness.SCENARIOS))
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--fixtures", action="store_true",
                    help="only check the small committed captures in tests/litellm/fixtures/")
    ap.add_argument("--bin", default=os.environ.get(
        "SENTINEL_BIN", str(envmod.REPO / "target" / "debug" / "litellm-sentinel")))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-live", action="store_true",
                    help="do not run the node agent tailing each capture as it is written")
    ap.add_argument("--no-sidecar", action="store_true",
                    help="do not run the agent as the pod's sidecar (own PID namespace; needs root)")
    a = ap.parse_args()
    versions = a.version or [envmod.NEWEST, envmod.USER]
    scenarios = a.scenario or list(harness.SCENARIOS)
    binary = Path(a.bin)
    if not binary.exists():
        print(f"test-litellm: {binary} not found (cargo build first)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    if a.fixtures:
        return check_dirs(binary, sorted(p for p in (HERE / "fixtures").iterdir()
                                          if (p / "truth.json").exists()), t0)
    if not a.reuse and not a.no_sidecar:
        why = pod_preflight()
        if why:
            print(f"test-litellm: the sidecar runs in a PID namespace of its own and cannot "
                  f"here ({why}); run as root, or pass --no-sidecar", file=sys.stderr)
            return 2
    if not a.reuse:
        # build environments first, in this process, so a registry outage
        # is reported once and clearly
        try:
            # the releases' venvs build side by side (pip is network- and
            # disk-bound: 2-2.5 min each when cold)
            with ThreadPoolExecutor(max_workers=len(versions)) as ex:
                list(ex.map(envmod.ensure, versions))
        except envmod.EnvError as e:
            print(f"test-litellm: {e}", file=sys.stderr)
            return 2
        # One run (its own PostgreSQL) per release and scenario, `--jobs` at a
        # time, longest first (1.110.2 starts slower than 1.83.14; late-engine
        # runs longest, engine-never shortest): two lanes finish together,
        # instead of the 1.110.2 lane running a minute and a half past the other.
        runs = sorted(((v, sc) for v in versions for sc in scenarios),
                      key=lambda r: (-_EXPECTED_S.get((r[0], r[1]), 0), r))
        with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
            live = None if a.no_live else binary
            side = None if a.no_sidecar else binary
            rcs = list(ex.map(lambda r: run_version(r[0], [r[1]], live, side), runs))
        if any(rcs):
            print(f"test-litellm: a scenario run failed (exit codes {rcs})", file=sys.stderr)
            return 1
    return check_dirs(binary, [OUT / f"{v}-{s}" for v in versions for s in scenarios], t0,
                      OUT / "checks.json")


def check_dirs(binary: Path, caps: list[Path], t0: float, summary_file: Path | None = None) -> int:
    failed = 0
    summary = []
    if not caps:
        print("test-litellm: nothing to check")
        return 1
    for cap in caps:
        v, s = cap.name.split("-", 1)
        if not (cap / "truth.json").exists():
            print(f"FAIL {v} {s}: no capture at {cap}")
            failed += 1
            continue
        try:
            c = check.check_capture(binary, cap)
        except AssertionError as e:
            print(f"FAIL {v} {s}: {e}")
            failed += 1
            continue
        for name, ok, detail in c.results:
            why = c.known_blind(name)
            tag = ("XPASS" if ok else "XFAIL") if why else ("ok  " if ok else "FAIL")
            print(f"{tag} {c.label}: {name}: {detail}" + (f" [known: {why}]" if why else ""))
        for n in c.notes:
            print(f"note {c.label}: {n}")
        failed += len(c.failed)
        summary.append({"capture": c.label, "checks": len(c.results),
                        "failed": [r[0] for r in c.failed]})
    if summary_file is not None:
        summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"test-litellm: {sum(x['checks'] for x in summary)} checks, {failed} failed, "
          f"{time.monotonic() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
