#!/usr/bin/env bash
# End-to-end paging test with real parts: litellm-sentinel -> Prometheus ->
# Alertmanager -> webhook.
#
# Usage: scripts/e2e-prometheus.sh AGENT_BIN
#
# 1. Writes a CRI log tree <tmp>/pods/litellm_litellm-abc_<uid>/litellm/0.log
#    holding the first lines of a LiteLLM start-up, and starts
#    `AGENT_BIN run --config <tmp>/agent.toml` (node role, read_from beginning).
# 2. Starts a webhook receiver (python3, every POST body saved to a file), a
#    real Alertmanager (Debian's prometheus-alertmanager 0.25, clustering off,
#    everything routed to the webhook, group_wait/group_interval 1s) and a real
#    Prometheus (2.42; scrape and evaluation every 1s, job "litellm-sentinel"
#    scraping the agent with honor_labels, alerting to the Alertmanager).
#    Prometheus loads the rules from scripts/gen-rules.py (defaults plus a
#    runbook base URL) in which every `for:` is rewritten to `0s`, so the test does not wait out the
#    production hold times; the expressions, labels and annotations are the
#    real ones.
# 3. Appends a start-up race to the log with current timestamps: `Uvicorn
#    running on http://0.0.0.0:4000`, requests, DB errors of every kind and a
#    spend flush that fails (`Spend tracking - DB connection error … retry n/3`,
#    then `Error in spend logs queue monitor: All connection attempts failed`
#    with its traceback). Waits until Prometheus has scraped
#    litellm_sentinel_spend_batches_dropped_total > 0, then appends the next
#    failed flush (LiteLLM retries its spend flush every few seconds during
#    the gap) so the counter increases inside Prometheus' window.
# 4. Waits until LiteLLMSpendLogBatchesDropped is firing in Prometheus and the
#    webhook received it with alertname, severity=critical, namespace, pod and
#    the summary/runbook_url annotations.
# 5. Scrapes the agent's /metrics: checks its Content-Type, runs
#    `promtool check metrics` and scripts/check-metric-names.py on it.
#
# All processes listen on 127.0.0.1 (free ports picked by python3) and are
# killed by the EXIT trap, also on failure. Every wait polls a condition
# against one overall deadline (E2E_DEADLINE, default 120 s); no blind sleeps.
# Prints `e2e: 1 passed, 0 failed` (exit 0) or `e2e: 0 passed, 1 failed` with
# the reason and the tails of the component logs (exit 1).
#
# Environment:
#   E2E_DEADLINE      overall deadline in seconds (default 120)
#   E2E_KEEP=1        keep the temp dir (logs, configs, scrapes) for inspection
#   E2E_ALLOW_ABSENT  comma-separated metric names check-metric-names.py may
#                     miss in the scrape (default: the probe metrics and the
#                     closed-gap metrics): families with labels appear only
#                     with their first series, and this node-role run has no
#                     probes and its gap is still open.
#   PROMETHEUS, ALERTMANAGER, PROMTOOL  binary paths (default: from PATH)
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 AGENT_BIN" >&2
  exit 2
fi
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
agent_bin="$1"
if [[ "$agent_bin" != */* ]]; then
  agent_bin="$(command -v "$agent_bin" || true)"
fi
if [[ -z "$agent_bin" || ! -x "$agent_bin" ]]; then
  echo "e2e: agent binary '$1' not found or not executable" >&2
  echo "e2e: 0 passed, 1 failed"
  exit 1
fi
agent_bin="$(cd "$(dirname "$agent_bin")" && pwd)/$(basename "$agent_bin")"

deadline=$(($(date +%s) + ${E2E_DEADLINE:-120}))
allow_absent="${E2E_ALLOW_ABSENT:-}"

pick_tool() { # env-var-name candidates...
  local var="$1"; shift
  if [[ -n "${!var:-}" ]]; then printf '%s' "${!var}"; return; fi
  local c
  for c in "$@"; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return; fi
    if [[ -x "/usr/bin/$c" ]]; then printf '%s' "/usr/bin/$c"; return; fi
  done
}
prometheus_bin="$(pick_tool PROMETHEUS prometheus)"
alertmanager_bin="$(pick_tool ALERTMANAGER prometheus-alertmanager alertmanager)"
promtool_bin="$(pick_tool PROMTOOL promtool)"
for t in prometheus_bin alertmanager_bin promtool_bin; do
  if [[ -z "${!t}" ]]; then
    echo "e2e: ${t%_bin} not found (apt-get install prometheus prometheus-alertmanager)" >&2
    echo "e2e: 0 passed, 1 failed"
    exit 1
  fi
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/litellm-sentinel-e2e.XXXXXX")"
pids=()
# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  # Give them a moment to exit cleanly, then make sure.
  local until=$(($(date +%s) + 3))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && (($(date +%s) < until)); do
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ "${E2E_KEEP:-0}" == 1 ]]; then
    echo "e2e: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers (python3, stdlib only)
cat >"$tmp/e2e.py" <<'PYEOF'
import datetime, http.server, json, os, socket, sys, urllib.parse, urllib.request

def ports(n):
    socks = [socket.socket() for _ in range(int(n))]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()

def cri(path):
    """stdin lines 'O text' / 'E text' -> CRI records (stdout/stderr) stamped now.
    '{ESC}' stands for the ANSI escape byte LiteLLM 1.83 colours its lines with."""
    with open(path, "ab") as f:
        for line in sys.stdin.read().splitlines():
            if not line.strip():
                continue
            stream = "stderr" if line.startswith("E ") else "stdout"
            text = line[2:].replace("{ESC}", "\x1b")
            ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            f.write(f"{ts} {stream} F {text}\n".encode())

def cri_ago(path):
    """stdin lines 'O|E SECONDS text': records stamped SECONDS before now (a
    past start-up and outage whose quiet periods have already passed)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    with open(path, "ab") as f:
        for line in sys.stdin.read().splitlines():
            if not line.strip():
                continue
            tag, ago, text = line.split(" ", 2)
            stream = "stderr" if tag == "E" else "stdout"
            ts = (now - datetime.timedelta(seconds=float(ago))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            f.write(f"{ts} {stream} F {text}\n".encode())

def get(url, out=None):
    """GET url; body to `out` (or stdout), Content-Type to stderr. Exit 1 on any error."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = r.read()
            if r.status != 200:
                sys.exit(1)
            if out:
                with open(out, "wb") as f:
                    f.write(body)
            else:
                sys.stdout.buffer.write(body)
            print(r.headers.get("Content-Type", ""), file=sys.stderr)
    except Exception as err:
        print(f"{url}: {err}", file=sys.stderr)
        sys.exit(1)

def prom_query(base, query):
    """Exit 0 if the instant query returns at least one sample."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            doc = json.load(r)
    except Exception as err:
        print(f"query {query}: {err}", file=sys.stderr)
        sys.exit(1)
    result = doc.get("data", {}).get("result", [])
    print(json.dumps(result))
    sys.exit(0 if result else 1)

def alert_firing(base, name, namespace, pod):
    try:
        with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=2) as r:
            alerts = json.load(r)["data"]["alerts"]
    except Exception as err:
        print(f"alerts: {err}", file=sys.stderr)
        sys.exit(1)
    for a in alerts:
        l = a.get("labels", {})
        if (l.get("alertname") == name and a.get("state") == "firing"
                and l.get("namespace") == namespace and l.get("pod") == pod):
            print(json.dumps(a))
            sys.exit(0)
    print(json.dumps([(a["labels"].get("alertname"), a.get("state")) for a in alerts]), file=sys.stderr)
    sys.exit(1)

def check_webhook(directory, name, namespace, pod, runbook):
    """Exit 0 when a received payload carries the expected firing alert."""
    problems = []
    for fn in sorted(os.listdir(directory)):
        if not fn.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, fn), encoding="utf-8") as f:
                payload = json.load(f)
        except (OSError, ValueError) as err:
            problems.append(f"{fn}: {err}")
            continue
        if payload.get("version") != "4" or not isinstance(payload.get("alerts"), list):
            problems.append(f"{fn}: not an Alertmanager v4 webhook payload")
            continue
        for a in payload["alerts"]:
            l, ann = a.get("labels", {}), a.get("annotations", {})
            if l.get("alertname") != name or a.get("status") != "firing":
                continue
            want = {"severity": "critical", "namespace": namespace, "pod": pod}
            bad = {k: l.get(k) for k, v in want.items() if l.get(k) != v}
            if bad:
                problems.append(f"{fn}: labels {bad}, want {want}")
            elif not ann.get("summary"):
                problems.append(f"{fn}: no summary annotation")
            elif ann.get("runbook_url") != runbook:
                problems.append(f"{fn}: runbook_url {ann.get('runbook_url')!r}, want {runbook!r}")
            elif f"{namespace}/{pod}" not in ann.get("description", ""):
                problems.append(f"{fn}: description does not name {namespace}/{pod}")
            else:
                print(json.dumps(a, indent=2))
                sys.exit(0)
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit(1)

def webhook(port, directory):
    """Alertmanager webhook receiver: each POST body -> <directory>/<n>.json."""
    counter = [0]
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            counter[0] += 1
            tmp = os.path.join(directory, f"{counter[0]:04d}.part")
            with open(tmp, "wb") as f:
                f.write(body)
            os.rename(tmp, tmp[:-5] + ".json")
            self.send_response(200)
            self.end_headers()
        def log_message(self, fmt, *args):
            sys.stderr.write("webhook: " + fmt % args + "\n")
    server = http.server.HTTPServer(("127.0.0.1", int(port)), Handler)
    open(os.path.join(directory, "ready"), "w").close()
    server.serve_forever()

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"ports": ports, "cri": cri, "cri-ago": cri_ago, "get": get, "prom-query": prom_query,
     "alert-firing": alert_firing, "check-webhook": check_webhook, "webhook": webhook}[cmd](*args)
PYEOF
py() { python3 "$tmp/e2e.py" "$@"; }

fail_reason=""
show_logs() {
  local f
  for f in agent prometheus alertmanager webhook; do
    if [[ -s "$tmp/$f.log" ]]; then
      echo "----- $f.log (last 25 lines)" >&2
      tail -n 25 "$tmp/$f.log" >&2
    fi
  done
}
die() {
  fail_reason="$1"
  echo "e2e: FAILED: $fail_reason" >&2
  show_logs
  echo "e2e: 0 passed, 1 failed"
  exit 1
}
step() { echo "e2e: $*" >&2; }

agent_pid=""
# wait_for DESCRIPTION COMMAND...: poll COMMAND until it succeeds or the deadline passes.
wait_for() {
  local what="$1"; shift
  while :; do
    if "$@" >"$tmp/last-poll.out" 2>"$tmp/last-poll.err"; then
      return 0
    fi
    if [[ -n "$agent_pid" ]] && ! kill -0 "$agent_pid" 2>/dev/null; then
      die "agent exited while waiting for: $what"
    fi
    if (($(date +%s) >= deadline)); then
      echo "----- last poll output" >&2
      tail -n 20 "$tmp/last-poll.out" "$tmp/last-poll.err" >&2
      die "deadline reached while waiting for: $what"
    fi
    sleep 0.25
  done
}

# ---------------------------------------------------------------- ports, files
read -r agent_port prom_port am_port hook_port < <(py ports 4) || die "could not pick free ports"
[[ -n "$hook_port" ]] || die "could not pick free ports"
namespace=litellm
pod=litellm-abc
uid="$(python3 -c 'import uuid; print(uuid.uuid4())')"
log_dir="$tmp/pods/${namespace}_${pod}_${uid}/litellm"
log="$log_dir/0.log"
mkdir -p "$log_dir" "$tmp/webhook" "$tmp/prometheus-data" "$tmp/alertmanager-data"
runbook="https://runbooks.example.com/litellm-sentinel/runbooks.md#litellmspendlogbatchesdropped"

# The proxy process starts; Prisma complains about the distro (before Uvicorn).
py cri "$log" <<'EOF'
O prisma:warn Prisma doesn't know which engines to download for the Linux distro "wolfi". Falling back to Prisma engines built "debian".
E INFO:     Started server process [1]
E INFO:     Waiting for application startup.
EOF

cat >"$tmp/agent.toml" <<EOF
# litellm-sentinel e2e test configuration (node role)
globs = ["$tmp/pods/*/*/*.log"]
state_file = "$tmp/state.json"
listen = "127.0.0.1:$agent_port"
read_from = "beginning"
# A short quiet period closes the log-measured gap a second after the last DB
# error, so the gap histogram and gauges are exported too.
quiet_period = "1s"

# An engine probe against a closed port: the probe metrics (engine_up,
# probe_duration_seconds, probe_failures_total) are exported as well, so the
# metric-name check below covers every family the rules and dashboard use.
[probe]
engine_url = "http://127.0.0.1:1"
namespace = "$namespace"
pod = "litellm-probe-only"
EOF

# Alert rules: generated from the rule template as an operator would
# (scripts/gen-rules.py, here with a runbook base URL) with every `for:` set
# to 0s (see header).
runbook_base="https://runbooks.example.com/litellm-sentinel/runbooks.md"
python3 "$repo_root/scripts/gen-rules.py" --runbook-url-base "$runbook_base" -o "$tmp/rules.generated.yaml" \
  || die "scripts/gen-rules.py failed"
sed -E 's/^([[:space:]]*)for:[[:space:]]*[^[:space:]#]+/\1for: 0s/' \
  "$tmp/rules.generated.yaml" >"$tmp/rules.yaml"
"$promtool_bin" check rules "$tmp/rules.yaml" >"$tmp/promtool-rules.log" 2>&1 \
  || { cat "$tmp/promtool-rules.log" >&2; die "rewritten rule file does not load"; }

cat >"$tmp/alertmanager.yml" <<EOF
route:
  receiver: webhook
  group_by: [alertname, namespace, pod]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: http://127.0.0.1:$hook_port/
        send_resolved: false
EOF

cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $tmp/rules.yaml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$am_port']
scrape_configs:
  - job_name: litellm-sentinel
    # As the PodMonitor: keep the namespace/pod labels of the LiteLLM pod.
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$agent_port']
EOF

# ---------------------------------------------------------------- start everything
step "agent $agent_bin on 127.0.0.1:$agent_port"
"$agent_bin" run --config "$tmp/agent.toml" >"$tmp/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")

step "webhook receiver on 127.0.0.1:$hook_port"
python3 "$tmp/e2e.py" webhook "$hook_port" "$tmp/webhook" >"$tmp/webhook.log" 2>&1 &
pids+=("$!")

step "alertmanager ($alertmanager_bin) on 127.0.0.1:$am_port"
"$alertmanager_bin" --config.file="$tmp/alertmanager.yml" --storage.path="$tmp/alertmanager-data" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= \
  --log.level=warn >"$tmp/alertmanager.log" 2>&1 &
pids+=("$!")

step "prometheus ($prometheus_bin) on 127.0.0.1:$prom_port"
"$prometheus_bin" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prometheus-data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
pids+=("$!")

prom="http://127.0.0.1:$prom_port"
wait_for "agent /metrics" py get "http://127.0.0.1:$agent_port/metrics" "$tmp/scrape-first.prom"
wait_for "webhook receiver" test -e "$tmp/webhook/ready"
wait_for "alertmanager ready" py get "http://127.0.0.1:$am_port/-/ready"
wait_for "prometheus ready" py get "$prom/-/ready"
wait_for "prometheus scrapes the agent (up == 1)" py prom-query "$prom" 'up{job="litellm-sentinel"} == 1'

# ---------------------------------------------------------------- the start-up race
step "appending the start-up race to $log"
py cri "$log" <<'EOF'
E INFO:     Application startup complete.
E INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)
E {ESC}[92m18:33:49 - LiteLLM Proxy:ERROR{ESC}[0m: utils.py:2721 - LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed
E {ESC}[92m18:33:49 - LiteLLM Proxy:ERROR{ESC}[0m: proxy_server.py:3102 - litellm.proxy.proxy_server.py::ProxyConfig:add_deployment - All connection attempts failed
E {ESC}[92m18:33:49 - LiteLLM Proxy:ERROR{ESC}[0m: proxy_server.py:2890 - litellm.proxy_server.py::get_credentials() - Error getting credentials from DB - All connection attempts failed
O INFO:     10.0.0.7:46642 - "POST /v1/chat/completions HTTP/1.1" 200 OK
E {ESC}[92m18:33:50 - LiteLLM Proxy:ERROR{ESC}[0m: auth_checks.py:511 - Budget lookup failed for user; cache will not be populated. Each request will hit the database. Error: All connection attempts failed.
O INFO:     10.0.0.7:46650 - "POST /v1/chat/completions HTTP/1.1" 200 OK
E {ESC}[92m18:33:55 - LiteLLM Proxy:WARNING{ESC}[0m: db_spend_update_writer.py:418 - Spend tracking - DB connection error writing spend logs, retry 1/3. logs_count=37, error=All connection attempts failed
E {ESC}[92m18:33:56 - LiteLLM Proxy:WARNING{ESC}[0m: db_spend_update_writer.py:418 - Spend tracking - DB connection error writing spend logs, retry 2/3. logs_count=37, error=All connection attempts failed
E {ESC}[92m18:33:58 - LiteLLM Proxy:WARNING{ESC}[0m: db_spend_update_writer.py:418 - Spend tracking - DB connection error writing spend logs, retry 3/3. logs_count=37, error=All connection attempts failed
E {ESC}[92m18:34:02 - LiteLLM Proxy:WARNING{ESC}[0m: db_spend_update_writer.py:418 - Spend tracking - DB connection error writing spend logs, retry 4/3. logs_count=37, error=All connection attempts failed
E {ESC}[92m18:34:02 - LiteLLM Proxy:ERROR{ESC}[0m: utils.py:3921 - Error in spend logs queue monitor: All connection attempts failed
E Traceback (most recent call last):
E   File "/usr/lib/python3.13/site-packages/litellm/proxy/utils.py", line 3880, in update_spend_logs
E     await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)
E   File "/usr/lib/python3.13/site-packages/prisma/actions.py", line 9510, in create_many
E     resp = await self._client._execute(
E            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^
E   File "/usr/lib/python3.13/site-packages/httpx/_transports/default.py", line 118, in map_httpcore_exceptions
E     raise mapped_exc(message) from exc
E httpx.ConnectError: All connection attempts failed
E Spend tracking - failed to commit daily user spend updates. Re-queued 2 rows for retry on next tick.
EOF

wait_for "prometheus sees litellm_sentinel_spend_batches_dropped_total > 0" \
  py prom-query "$prom" "litellm_sentinel_spend_batches_dropped_total{namespace=\"$namespace\",pod=\"$pod\"} > 0"

step "appending the next failed spend flush"
py cri "$log" <<'EOF'
O INFO:     10.0.0.9:51234 - "POST /v1/chat/completions HTTP/1.1" 200 OK
E {ESC}[92m18:34:12 - LiteLLM Proxy:WARNING{ESC}[0m: db_spend_update_writer.py:418 - Spend tracking - DB connection error writing spend logs, retry 4/3. logs_count=12, error=All connection attempts failed
E {ESC}[92m18:34:12 - LiteLLM Proxy:ERROR{ESC}[0m: utils.py:3921 - Error in spend logs queue monitor: All connection attempts failed
E Traceback (most recent call last):
E   File "/usr/lib/python3.13/site-packages/litellm/proxy/utils.py", line 3880, in update_spend_logs
E     await prisma_client.db.litellm_spendlogs.create_many(data=batch_with_dates, skip_duplicates=True)
E httpx.ConnectError: All connection attempts failed
E Spend tracking - 4 spend log rows could not be written or parked in Redis and will be lost on exit
EOF

wait_for "LiteLLMSpendLogBatchesDropped firing in prometheus" \
  py alert-firing "$prom" LiteLLMSpendLogBatchesDropped "$namespace" "$pod"
wait_for "webhook payload with LiteLLMSpendLogBatchesDropped (severity=critical, $namespace/$pod, summary, runbook_url)" \
  py check-webhook "$tmp/webhook" LiteLLMSpendLogBatchesDropped "$namespace" "$pod" "$runbook"
step "webhook got: $(tr -d '\n ' <"$tmp/last-poll.out" | cut -c1-300)"

# ---------------------------------------------------------------- the agent's /metrics
prom_has_gap() {
  py get "http://127.0.0.1:$agent_port/metrics" "$tmp/scrape.prom" \
    && grep -q '^litellm_sentinel_startup_gap_seconds_bucket' "$tmp/scrape.prom"
}
# The gap closes one quiet period after the last DB error: wait for its histogram.
wait_for "the closed gap in the agent's /metrics" prom_has_gap
content_type="$(tail -n 1 "$tmp/last-poll.err")"
[[ "$content_type" == text/plain* ]] \
  || die "/metrics Content-Type is '$content_type', want text/plain; version=0.0.4"
if ! "$promtool_bin" check metrics <"$tmp/scrape.prom" >"$tmp/promtool-metrics.log" 2>&1; then
  cat "$tmp/promtool-metrics.log" >&2
  die "promtool check metrics found problems in the agent's /metrics"
fi
# Two more pods, so every family the rules and dashboard use is in the scrape:
# one whose start-up gap and a mid-life outage are over (back-dated records:
# their quiet periods have passed), one inside a confirmed gap right now.
out_log="$tmp/pods/${namespace}_litellm-out_$(python3 -c 'import uuid; print(uuid.uuid4())')/litellm/0.log"
py cri-ago "$out_log" <<'EOF'
E 300 INFO:     Started server process [1]
E 299 INFO:     Application startup complete.
E 298 LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed
O 200 INFO:     10.0.0.7:46700 - "POST /v1/chat/completions HTTP/1.1" 200 OK
E 150 LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed
O 145 INFO:     10.0.0.7:46701 - "POST /v1/chat/completions HTTP/1.1" 200 OK
E 140 LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed
O 60 INFO:     10.0.0.7:46702 - "POST /v1/chat/completions HTTP/1.1" 200 OK
EOF
open_log="$tmp/pods/${namespace}_litellm-open_$(python3 -c 'import uuid; print(uuid.uuid4())')/litellm/0.log"
# Stamped up to 60 s ahead (a node clock ahead of ours): with the e2e's 1 s
# quiet period the gap stays open, in wall time, until the scrape has seen it.
py cri-ago "$open_log" <<'EOF'
E -50 INFO:     Started server process [1]
E -51 INFO:     Application startup complete.
E -52 LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed
EOF
prom_has_all() {
  py get "http://127.0.0.1:$agent_port/metrics" "$tmp/scrape.prom" \
    && grep -q '^litellm_sentinel_db_outage_seconds_bucket' "$tmp/scrape.prom" \
    && grep -q '^litellm_sentinel_startup_gap_open_since_timestamp_seconds' "$tmp/scrape.prom"
}
wait_for "a closed outage and an open gap in the agent's /metrics" prom_has_all
if ! python3 "$repo_root/scripts/check-metric-names.py" "$tmp/scrape.prom" \
  --allow-absent "$allow_absent" >"$tmp/check-metric-names.log" 2>&1; then
  cat "$tmp/check-metric-names.log" >&2
  die "metric names used by alerts/dashboards missing from the agent's /metrics"
fi
cat "$tmp/check-metric-names.log" >&2

echo "e2e: 1 passed, 0 failed"
exit 0
