"""Copies captures with their truth to a directory for others to use:

    python3 tests/litellm/publish.py DEST [VERSION-SCENARIO ...]

Each DEST/<version>-<scenario>/ gets output.txt (the proxy's stdout+stderr
as received), raw.jsonl (one record per line: receive time, stream, text),
pods/ (the CRI tree: pods/e2e_<pod>_<uid>/litellm/0.log), engine-events.jsonl
(the stand-in's spawn/bind/exit/write records), truth.json and a README
line saying what happened.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import env as envmod

OUT = envmod.REPO / "target" / "litellm-e2e"
FILES = ("output.txt", "raw.jsonl", "engine-events.jsonl", "truth.json", "config.yaml")


def summary(t: dict) -> str:
    L = t["proxy_launch_at"]
    acc = t.get("first_accepted") or {}
    exp = t.get("expected", {})

    def rel(x):
        return f"{x - L:.1f} s" if isinstance(x, (int, float)) else "never"

    parts = [
        f"LiteLLM {t['version']} ({t['workers']} worker(s), JSON_LOGS={t['json_logs']}, "
        f"engine {t['engine_mode']}): first accepted connection {rel(acc.get('response_at'))} "
        f"after launch",
        f"engines spawned {t['engine_spawns']}, bound {t['engine_binds']}, first bind after "
        f"accept {rel(t.get('first_bind_after_accept_at'))}",
    ]
    if exp.get("engine_ready_at_accept"):
        parts.append("an engine was already up when the proxy accepted: no gap")
    elif exp.get("gap_open_at_end"):
        parts.append("gap still open when the logs end")
    elif "gap_seconds" in exp:
        parts.append(f"gap {exp['gap_seconds']:.1f} s with {exp['requests_in_gap']} requests")
    if t.get("kill"):
        o = exp.get("outage", {})
        parts.append(f"engine PID killed at {rel(t['kill']['at'])}, next bind "
                     f"{rel(o.get('ended_at'))} ({o.get('requests')} requests in between)")
    parts.append(f"requests served {t['requests_served']}, failed {t['requests_failed']}, "
                 f"spend rows in PostgreSQL {t['spend_rows_found']}, rows lost {t['rows_lost']}")
    if t.get("notes"):
        parts.append("notes: " + "; ".join(t["notes"]))
    return "; ".join(parts) + "."


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    dest = Path(argv[0])
    names = argv[1:] or sorted(p.name for p in OUT.iterdir() if (p / "truth.json").exists())
    for name in names:
        src = OUT / name
        t = json.loads((src / "truth.json").read_text())
        d = dest / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for f in FILES:
            if (src / f).exists():
                shutil.copy2(src / f, d / f)
        shutil.copytree(src / "pods", d / "pods")
        (d / "README").write_text(summary(t) + "\n")
        print(f"{d}: {summary(t)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
