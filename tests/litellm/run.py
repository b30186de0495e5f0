"""Entry point: ``python3 tests/litellm/run.py [--version V] [--scenario S]``.

Builds (or reuses) the cached environments, starts one PostgreSQL cluster,
runs the scenarios and leaves captures + truth under
``target/litellm-e2e/<version>-<scenario>/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import env as envmod
import harness

OUT = envmod.REPO / "target" / "litellm-e2e"


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    # SIGTERM/SIGINT end the run through the cleanup paths (proxy process
    # group, PostgreSQL cluster); a background shell ignores SIGINT otherwise.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", action="append", choices=sorted(envmod.RELEASES))
    ap.add_argument("--scenario", action="append", choices=sorted(harness.SCENARIOS))
    a = ap.parse_args()
    versions = a.version or [envmod.NEWEST, envmod.USER]
    scenarios = a.scenario or list(harness.SCENARIOS)
    t0 = time.monotonic()
    try:
        for v in versions:
            envmod.ensure(v)
    except envmod.EnvError as e:
        print(f"litellm e2e: {e}", file=sys.stderr)
        return 2
    print(f"litellm e2e: environments ready in {time.monotonic() - t0:.0f} s", flush=True)
    pg = harness.Postgres()
    try:
        for v in versions:
            for s in scenarios:
                out = OUT / f"{v}-{s}"
                shutil.rmtree(out, ignore_errors=True)
                t1 = time.monotonic()
                truth = harness.Run(v, harness.SCENARIOS[s], pg, out).run()
                print(f"litellm e2e: {v} {s}: {time.monotonic() - t1:.0f} s, "
                      f"{truth['capture_lines']} lines, engines spawned {truth['engine_spawns']} "
                      f"bound {truth['engine_binds']}, served {truth['requests_served']} "
                      f"failed {truth['requests_failed']}, rows {truth['spend_rows_found']} "
                      f"lost {truth['rows_lost']}, expected {json.dumps(truth['expected'])}",
                      flush=True)
    finally:
        pg.stop()
    print(f"litellm e2e: total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
