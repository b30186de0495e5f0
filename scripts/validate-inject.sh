#!/usr/bin/env bash
# Schema check of `litellm-sentinel inject` output: the chart-shaped fixture
# (tests/fixtures/inject/litellm-helm.yaml) before and after injection, with
# --probe readiness and --probe startup, each document through
# `kubernetes-validate --strict` (unknown or misspelt fields fail).
#
# Usage: scripts/validate-inject.sh [path/to/litellm-sentinel]
# Settings: VENV_DIR as in scripts/validate-manifests.sh (default
# <repo>/.venv-tools; created with kubernetes-validate and pyyaml when missing).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
BIN="${1:-target/debug/litellm-sentinel}"
VENV_DIR="${VENV_DIR:-$repo_root/.venv-tools}"
FIXTURE=tests/fixtures/inject/litellm-helm.yaml

[[ -x "$BIN" ]] || { echo "validate-inject: $BIN not found (cargo build)" >&2; exit 2; }
if [[ ! -x "$VENV_DIR/bin/kubernetes-validate" ]] || ! "$VENV_DIR/bin/python" -c 'import yaml' >/dev/null 2>&1; then
  echo "validate-inject: creating tool venv $VENV_DIR" >&2
  python3 -m venv "$VENV_DIR"
  "$VENV_DIR/bin/pip" install -q kubernetes-validate pyyaml
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$BIN" inject <"$FIXTURE" >"$work/readiness.yaml" 2>"$work/readiness.err"
"$BIN" inject --probe startup <"$FIXTURE" >"$work/startup.yaml" 2>"$work/startup.err"
"$BIN" inject <"$work/readiness.yaml" >"$work/twice.yaml" 2>/dev/null
cmp -s "$work/readiness.yaml" "$work/twice.yaml" || { echo "FAIL  inject is not idempotent" >&2; exit 1; }
echo "ok    inject twice = inject once"
grep -q 'sidecar added' "$work/readiness.err" || { echo "FAIL  nothing injected: $(cat "$work/readiness.err")" >&2; exit 1; }

failed=0
for stream in "$FIXTURE" "$work/readiness.yaml" "$work/startup.yaml"; do
  dir="$work/split-$(basename "$stream" .yaml)"
  mkdir -p "$dir"
  "$VENV_DIR/bin/python" - "$stream" "$dir" <<'PY'
import sys, yaml
src, out = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as f:
    docs = [d for d in yaml.safe_load_all(f) if d is not None]
for i, d in enumerate(docs):
    with open(f"{out}/{i}.{d['kind']}.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(d, f, sort_keys=False)
PY
  for doc in "$dir"/*.yaml; do
    if out="$("$VENV_DIR/bin/kubernetes-validate" --strict --quiet "$doc" 2>&1)"; then
      echo "ok    $(basename "$stream"): $(basename "$doc" .yaml) (kubernetes-validate --strict)"
    else
      echo "FAIL  $(basename "$stream"): $(basename "$doc" .yaml)" >&2
      printf '%s\n' "$out" | sed 's/^/      /' >&2
      failed=1
    fi
  done
done
# Self-test: the validator must reject a misspelt pod field.
sed 's/shareProcessNamespace: true/shareProcessNamespac: true/' "$work/split-readiness/4.Deployment.yaml" >"$work/misspelt.yaml"
if "$VENV_DIR/bin/kubernetes-validate" --strict --quiet "$work/misspelt.yaml" >/dev/null 2>&1; then
  echo "FAIL  kubernetes-validate accepted a misspelt field" >&2
  failed=1
else
  echo "ok    kubernetes-validate rejects a misspelt field"
fi
exit "$failed"
