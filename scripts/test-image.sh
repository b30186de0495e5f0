#!/usr/bin/env bash
# Runs the litellm-sentinel image as the chart runs it and checks what it
# counts: `make image-test` (after `make image`).
#
# 1. Writes a kubelet-style log tree <tmp>/pods/llm_litellm-abc_<uid>/litellm/0.log
#    (CRI records: a LiteLLM start-up and three DB failures of different
#    operations) and an agent config (read_from = "beginning").
# 2. `podman run` of IMAGE locked down like the chart's securityContext:
#    read-only root file system, every capability dropped, no new privileges,
#    uid 0; the log tree mounted read-only at /var/log/pods, the config at
#    /etc/litellm-sentinel, a writable state directory; host network, the
#    agent listening on 127.0.0.1 only. On these machines podman runs as root
#    with `--runtime runc --cgroup-manager cgroupfs` and a CONTAINERS_CONF
#    setting `default_ulimits = []` (the sandbox refuses setrlimit): the script
#    writes that file itself.
# 3. Polls /metrics (deadline IMAGE_TEST_DEADLINE, default 60 s) until the
#    agent has read the file, then checks the counts: 3 DB connect errors
#    (get_generic_data, add_deployment, get_credentials), 1 proxy start,
#    7 lines read, for namespace llm / pod litellm-abc; and the image's
#    entrypoint, user and OCI labels.
# Prints `image: 1 passed, 0 failed` (exit 0) or the reason (exit 1).
set -uo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo_root/Cargo.toml" | head -n 1)"
image="${IMAGE:-localhost/litellm-sentinel:$version}"
deadline=$(($(date +%s) + ${IMAGE_TEST_DEADLINE:-60}))
tmp="$(mktemp -d "${TMPDIR:-/tmp}/litellm-sentinel-image.XXXXXX")"
name="litellm-sentinel-image-test-$$"
export CONTAINERS_CONF="$tmp/containers.conf"
printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"
podman_run=(podman --runtime runc --cgroup-manager cgroupfs)

cleanup() {
  "${podman_run[@]}" rm -f -t 2 "$name" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
die() {
  echo "image: FAILED: $1" >&2
  echo "----- container log" >&2
  "${podman_run[@]}" logs "$name" 2>&1 | tail -n 20 >&2
  echo "image: 0 passed, 1 failed"
  exit 1
}

command -v podman >/dev/null 2>&1 || die "podman not found (apt-get install podman runc)"
podman image exists "$image" || die "image $image not found (make image)"

# ---- the image itself: entrypoint, user, labels
inspect="$(podman image inspect --format '{{json .Config.Entrypoint}} {{.Config.User}} {{index .Labels "org.opencontainers.image.version"}} {{index .Labels "org.opencontainers.image.title"}}' "$image")" \
  || die "podman image inspect failed"
[[ "$inspect" == "[\"/litellm-sentinel\"] 0:0 $version litellm-sentinel" ]] \
  || die "image config is '$inspect', want entrypoint [/litellm-sentinel], user 0:0, version $version, title litellm-sentinel"

# ---- log tree, config
uid="$(python3 -c 'import uuid; print(uuid.uuid4())')"
pod_dir="$tmp/pods/llm_litellm-abc_$uid/litellm"
mkdir -p "$pod_dir" "$tmp/etc" "$tmp/state"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 - "$pod_dir/0.log" <<'PYEOF'
import datetime, sys
esc = "\x1b"
lines = [
    ("stderr", "INFO:     Started server process [1]"),
    ("stderr", "INFO:     Application startup complete."),
    ("stderr", "INFO:     Uvicorn running on http://0.0.0.0:4000 (Press CTRL+C to quit)"),
    ("stderr", f"{esc}[92m18:33:49 - LiteLLM Proxy:ERROR{esc}[0m: utils.py:2721 - LiteLLM Prisma Client Exception get_generic_data: All connection attempts failed"),
    ("stderr", f"{esc}[92m18:33:49 - LiteLLM Proxy:ERROR{esc}[0m: proxy_server.py:3102 - litellm.proxy.proxy_server.py::ProxyConfig:add_deployment - All connection attempts failed"),
    ("stderr", f"{esc}[92m18:33:49 - LiteLLM Proxy:ERROR{esc}[0m: proxy_server.py:2890 - litellm.proxy_server.py::get_credentials() - Error getting credentials from DB - All connection attempts failed"),
    ("stdout", 'INFO:     10.0.0.7:46642 - "POST /v1/chat/completions HTTP/1.1" 200 OK'),
]
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for stream, text in lines:
        ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        f.write(f"{ts} {stream} F {text}\n")
PYEOF
chmod 0640 "$pod_dir/0.log"
cat >"$tmp/etc/config.toml" <<EOF
globs = ["/var/log/pods/*/litellm/*.log"]
state_file = "/var/lib/litellm-sentinel/state.json"
read_from = "beginning"
listen = "127.0.0.1:$port"
EOF

# ---- run it as the chart does
"${podman_run[@]}" run -d --name "$name" --network host \
  --read-only --cap-drop ALL --security-opt no-new-privileges --user 0:0 \
  -v "$tmp/pods:/var/log/pods:ro" -v "$tmp/etc:/etc/litellm-sentinel:ro" \
  -v "$tmp/state:/var/lib/litellm-sentinel" --tmpfs /tmp:size=16m \
  "$image" run --config /etc/litellm-sentinel/config.toml >"$tmp/run.out" 2>&1 \
  || { cat "$tmp/run.out" >&2; die "podman run failed"; }

scrape() {
  python3 - "http://127.0.0.1:$port/metrics" "$tmp/metrics.prom" <<'PYEOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        body = r.read()
except Exception:
    sys.exit(1)
open(sys.argv[2], "wb").write(body)
PYEOF
}
value() { # metric{labels} -> value (exact series match)
  awk -v s="$1" '$1 == s { print $2 }' "$tmp/metrics.prom" 2>/dev/null
}
while :; do
  if scrape && [[ "$(value litellm_sentinel_lines_read_total)" == 7 ]]; then
    break
  fi
  [[ "$("${podman_run[@]}" inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" == true ]] \
    || die "the container stopped"
  (($(date +%s) < deadline)) || die "deadline: the agent in the container did not read the 7 lines (lines_read_total=$(value litellm_sentinel_lines_read_total))"
  sleep 0.25
done

sel='namespace="llm",pod="litellm-abc"'
errors="$(awk -v p="litellm_sentinel_db_connect_errors_total{$sel," 'index($1, p) == 1 { n += $2 } END { print n + 0 }' "$tmp/metrics.prom")"
[[ "$errors" == 3 ]] || die "db_connect_errors_total for llm/litellm-abc is $errors, want 3"
for op in get_generic_data add_deployment get_credentials; do
  [[ "$(value "litellm_sentinel_db_connect_errors_total{$sel,operation=\"$op\"}")" == 1 ]] \
    || die "db_connect_errors_total{operation=\"$op\"} is not 1"
done
[[ "$(value "litellm_sentinel_proxy_starts_total{$sel}")" == 1 ]] || die "proxy_starts_total for llm/litellm-abc is not 1"
echo "image: $image read 7 lines, counted 3 DB connect errors and 1 proxy start for llm/litellm-abc" >&2
echo "image: 1 passed, 0 failed"
