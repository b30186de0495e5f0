#!/usr/bin/env bash
# Installs what `make test` needs when it is missing (Debian): the real
# Prometheus (promtool), Alertmanager (amtool), PostgreSQL (database probe
# tests), ripgrep and mtail (benchmarks), python3-venv (manifest validation),
# Chromium (the `report --html` page is loaded and screenshotted in a real browser),
# podman/buildah/runc/musl-tools (the container image).
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v rg >/dev/null 2>&1 || need+=(ripgrep)
command -v mtail >/dev/null 2>&1 || need+=(mtail)
# /usr/bin/time -v: peak RSS and CPU time in the benchmarks.
[ -x /usr/bin/time ] || need+=(time)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
[ -x /usr/bin/chromium ] || need+=(chromium)
# The image: musl-gcc (ring's C code for the static binary), podman/buildah
# to build and run it, runc as the runtime, file/strip to check and strip it.
command -v musl-gcc >/dev/null 2>&1 || need+=(musl-tools)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || need+=(runc)
command -v file >/dev/null 2>&1 || need+=(file)
command -v strip >/dev/null 2>&1 || need+=(binutils)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: everything is installed"
  exit 0
fi
echo "install-test-deps: installing ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
# Debian starts the packaged services; the tests run their own on free ports.
for svc in prometheus prometheus-alertmanager postgresql; do
  $SUDO systemctl stop "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
