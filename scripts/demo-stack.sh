#!/usr/bin/env bash
# `make demo-stack`: the demo with a real Prometheus (Debian package) scraping
# it and evaluating the shipped alert rules; prints the URLs to open.
#
# Usage: scripts/demo-stack.sh AGENT_BIN [--check]
#   --check   non-interactive (make test): runs the demo without the live
#             table, waits (deadline DEMO_STACK_DEADLINE, default 180 s) until
#             Prometheus has scraped a start-up gap and LiteLLMSpendLogBatchesDropped
#             is firing, then stops everything. Prints `demo-stack: 1 passed, 0 failed`.
# Environment:
#   DEMO_LISTEN   the agent's address   (default 127.0.0.1:9464; --check: a free port)
#   PROM_LISTEN   Prometheus' address   (default 127.0.0.1:9090; --check: a free port)
#   PROMETHEUS    Prometheus binary     (default: from PATH, /usr/bin/prometheus)
# Everything listens on 127.0.0.1; Ctrl-C stops the demo and Prometheus and
# removes the temporary directory.
set -uo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:?usage: $0 AGENT_BIN [--check]}"
check=0
[[ "${2:-}" == --check ]] && check=1
[[ -x "$bin" ]] || { echo "demo-stack: $bin not found (make demo-stack builds it)" >&2; exit 2; }
prometheus="${PROMETHEUS:-$(command -v prometheus || echo /usr/bin/prometheus)}"
[[ -x "$prometheus" ]] || { echo "demo-stack: prometheus not found (apt-get install prometheus)" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if ((check)); then
  # Never collide with a demo (or anything else) already on the default ports.
  agent="${DEMO_LISTEN:-127.0.0.1:$(free_port)}"
  prom="${PROM_LISTEN:-127.0.0.1:$(free_port)}"
else
  agent="${DEMO_LISTEN:-127.0.0.1:9464}"
  prom="${PROM_LISTEN:-127.0.0.1:9090}"
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/litellm-sentinel-demo-stack.XXXXXX")"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' TERM

# The shipped rules, exactly as an operator generates them (job litellm-sentinel).
python3 "$repo_root/scripts/gen-rules.py" -o "$tmp/litellm-sentinel.rules.yaml" || exit 1
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  scrape_timeout: 1s
  evaluation_interval: 2s
rule_files:
  - $tmp/litellm-sentinel.rules.yaml
scrape_configs:
  - job_name: litellm-sentinel
    honor_labels: true   # as the chart's PodMonitor: keep the LiteLLM pod's namespace/pod
    static_configs:
      - targets: ['$agent']
EOF
"$prometheus" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="$prom" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
pids+=("$!")

url() { python3 -c 'import sys, urllib.parse; print(sys.argv[1] + "?" + urllib.parse.urlencode(dict(zip(sys.argv[2::2], sys.argv[3::2]))))' "$@"; }
gap_graph="$(url "http://$prom/graph" g0.expr 'max by (pod) (litellm_sentinel_last_startup_gap_seconds) or max by (pod) (litellm_sentinel_in_startup_gap)' g0.tab 0 g0.range_input 15m)"
alerts="http://$prom/alerts"
query() { # PromQL -> exit 0 if it returns a sample
  python3 - "http://$prom/api/v1/query" "$1" <<'PYEOF'
import json, sys, urllib.parse, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "?" + urllib.parse.urlencode({"query": sys.argv[2]}), timeout=2) as r:
        sys.exit(0 if json.load(r)["data"]["result"] else 1)
except Exception:
    sys.exit(1)
PYEOF
}
deadline=$(($(date +%s) + ${DEMO_STACK_DEADLINE:-180}))
until query 'vector(1)'; do
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$tmp/prometheus.log" >&2; echo "demo-stack: prometheus exited (is $prom free?)" >&2; exit 1; }
  (($(date +%s) < deadline)) || { echo "demo-stack: prometheus not ready" >&2; exit 1; }
  sleep 0.25
done

echo "demo-stack: Prometheus on http://$prom scrapes the demo agent on http://$agent"
echo "  start-up gap graph: $gap_graph"
echo "  alerts (LiteLLMSpendLogBatchesDropped fires during the deploy): $alerts"
demo=("$bin" demo --keep --listen "$agent" --link "prometheus gap graph=$gap_graph" --link "prometheus alerts=$alerts")

if ((check == 0)); then
  # Foreground: the live table; Ctrl-C ends the demo, then the trap stops Prometheus.
  "${demo[@]}"
  exit $?
fi

"${demo[@]}" --no-live --min-engine-delay 2s --max-engine-delay 4s --tick 200ms >"$tmp/demo.log" 2>&1 &
demo_pid=$!
pids=("$demo_pid" "${pids[@]}")
fail() {
  echo "demo-stack: FAILED: $1" >&2
  tail -n 20 "$tmp/demo.log" "$tmp/prometheus.log" >&2
  echo "demo-stack: 0 passed, 1 failed"
  exit 1
}
wait_query() {
  until query "$1"; do
    kill -0 "$demo_pid" 2>/dev/null || fail "the demo exited while waiting for: $1"
    (($(date +%s) < deadline)) || fail "deadline waiting for: $1"
    sleep 0.5
  done
}
wait_query 'up{job="litellm-sentinel"} == 1'
wait_query 'max(litellm_sentinel_last_startup_gap_seconds) > 0'
wait_query 'ALERTS{alertname="LiteLLMSpendLogBatchesDropped", alertstate="firing", namespace="llm"}'
until grep -q '^--keep:' "$tmp/demo.log"; do
  kill -0 "$demo_pid" 2>/dev/null || fail "the demo exited before --keep"
  (($(date +%s) < deadline)) || fail "deadline waiting for the end of the simulation"
  sleep 0.5
done
grep -q 'All counts match' "$tmp/demo.log" || fail "the demo's counts did not match"
# After the simulation the agent still serves: Prometheus keeps scraping it.
wait_query 'up{job="litellm-sentinel"} == 1'
kill -INT "$demo_pid"
wait "$demo_pid" || fail "the demo did not exit cleanly on Ctrl-C"
echo "demo-stack: Prometheus scraped the gap, LiteLLMSpendLogBatchesDropped fired, the agent served after the simulation" >&2
echo "demo-stack: 1 passed, 0 failed"
