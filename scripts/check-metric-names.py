#!/usr/bin/env python3
"""Check that every litellm_sentinel_* metric the alerts and dashboards use
exists in a real /metrics scrape of the agent.

A typo in an alert expression is silent: the alert simply never fires. This
script extracts every `litellm_sentinel_*` name used in

  alerts/*.yaml (rule files and their promtool tests),
  dashboards/*.json (panel targets and template variable queries),
  deploy/prometheusrule.yaml,

strips `_bucket` / `_sum` / `_count` from names whose base is a histogram (or
summary) in the scrape, and fails listing every name the scrape lacks, with
the files that use it. A bare histogram name (no suffix) is an error too: a
classic histogram has no such series.

Usage:
  scripts/check-metric-names.py METRICS_FILE [--allow-absent NAME[,NAME...]]...
                                 [--repo-root DIR] [FILE ...]

  METRICS_FILE   a Prometheus text-format scrape (`curl -s host:9464/metrics`),
                 `-` for stdin.
  --allow-absent names (base names, without histogram suffixes) that this
                 particular scrape cannot contain, e.g. probe metrics in a
                 node-role scrape: labelled metric families appear only once
                 they have a series. They are reported but do not fail.
  --allow-absent-file FILE
                 the same, one name a line (# comments), e.g.
                 scripts/testdata/pending-metric-names.txt.
  FILE ...       check these files instead of the default set.

Exit status: 0 all names found, 1 names missing (or a bare histogram name),
2 usage or input errors. Standard library only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

PREFIX = "litellm_sentinel_"
# A full metric name: the prefix plus at least one character, not ending in
# "_" (which excludes regex fragments such as {__name__=~"litellm_sentinel_.*"}).
NAME_RE = re.compile(r"(?<![A-Za-z0-9_:])litellm_sentinel_[A-Za-z0-9_:]*[A-Za-z0-9:]")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def parse_scrape(text: str) -> tuple[set[str], dict[str, str]]:
    """Return (sample metric names, {family name: type}) of a text-format scrape."""
    samples: set[str] = set()
    types: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                name = parts[2]
                if parts[1] == "TYPE":
                    types[name] = parts[3].strip() if len(parts) > 3 else "untyped"
                else:
                    types.setdefault(name, "untyped")
            continue
        match = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if match:
            samples.add(match.group(0))
    return samples, types


def strip_comment_lines(text: str) -> str:
    """Drop YAML comment lines (PromQL comments start with # as well)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def dashboard_queries(node) -> list[str]:
    """Every PromQL string of a Grafana dashboard: targets' expr and variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(dashboard_queries(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(dashboard_queries(item))
    return found


def names_in_file(path: str) -> set[str]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise SystemExit(f"check-metric-names: {path}: invalid JSON: {err}") from err
        text = "\n".join(dashboard_queries(doc))
    else:
        text = strip_comment_lines(text)
    return set(NAME_RE.findall(text))


def default_files(repo_root: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(repo_root, "alerts", "*.yaml")))
    files += sorted(glob.glob(os.path.join(repo_root, "dashboards", "*.json")))
    rule_cr = os.path.join(repo_root, "deploy", "prometheusrule.yaml")
    if os.path.exists(rule_cr):
        files.append(rule_cr)
    return files


def base_name(name: str, types: dict[str, str], samples: set[str]) -> str:
    """The family a used name belongs to (histogram suffix stripped when it is one)."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if types.get(base) in ("histogram", "summary") or f"{base}_bucket" in samples:
                return base
    return name


def strip_suffix(name: str) -> str:
    """The name without a histogram suffix, whether or not the scrape knows the family."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics_file")
    parser.add_argument("files", nargs="*")
    parser.add_argument("--allow-absent", action="append", default=[], metavar="NAMES")
    parser.add_argument("--allow-absent-file", action="append", default=[], metavar="FILE")
    parser.add_argument("--repo-root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = parser.parse_args(argv)

    try:
        if args.metrics_file == "-":
            scrape = sys.stdin.read()
        else:
            with open(args.metrics_file, encoding="utf-8", errors="replace") as handle:
                scrape = handle.read()
    except OSError as err:
        print(f"check-metric-names: cannot read {args.metrics_file}: {err}", file=sys.stderr)
        return 2
    samples, types = parse_scrape(scrape)
    if not any(n.startswith(PREFIX) for n in samples | set(types)):
        print(f"check-metric-names: {args.metrics_file} contains no {PREFIX}* metric at all", file=sys.stderr)
        return 2

    allowed = {n.strip() for item in args.allow_absent for n in item.split(",") if n.strip()}
    for path in args.allow_absent_file:
        try:
            with open(path, encoding="utf-8") as handle:
                allowed |= {l.strip() for l in handle if l.strip() and not l.lstrip().startswith("#")}
        except OSError as err:
            print(f"check-metric-names: cannot read {path}: {err}", file=sys.stderr)
            return 2
    files = args.files or default_files(args.repo_root)
    if not files:
        print("check-metric-names: no files to check", file=sys.stderr)
        return 2

    used: dict[str, set[str]] = {}
    for path in files:
        try:
            for name in names_in_file(path):
                used.setdefault(name, set()).add(os.path.relpath(path, args.repo_root))
        except OSError as err:
            print(f"check-metric-names: cannot read {path}: {err}", file=sys.stderr)
            return 2

    present = samples | set(types)
    missing: dict[str, set[str]] = {}
    bare_histograms: dict[str, set[str]] = {}
    tolerated: dict[str, set[str]] = {}
    for name, where in sorted(used.items()):
        base = base_name(name, types, samples)
        if base == name and types.get(name) in ("histogram", "summary"):
            bare_histograms[name] = where
        elif name in present or base in present:
            continue
        elif allowed & {name, base, strip_suffix(name)}:
            tolerated[name] = where
        else:
            missing[name] = where

    for name, where in tolerated.items():
        print(f"check-metric-names: note: {name} not in this scrape (allowed absent); used in {', '.join(sorted(where))}")
    for name, where in bare_histograms.items():
        print(f"check-metric-names: {name} is a histogram: query {name}_bucket/_sum/_count instead; used in {', '.join(sorted(where))}", file=sys.stderr)
    for name, where in missing.items():
        print(f"check-metric-names: {name} not in {args.metrics_file}; used in {', '.join(sorted(where))}", file=sys.stderr)
    if missing or bare_histograms:
        print(f"check-metric-names: FAILED: {len(missing)} unknown, {len(bare_histograms)} bare histogram name(s)", file=sys.stderr)
        return 1
    note = f" ({len(tolerated)} allowed absent)" if tolerated else ""
    print(f"check-metric-names: OK: {len(used)} {PREFIX}* names used in {len(files)} file(s) found in {args.metrics_file}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
