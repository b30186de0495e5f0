#!/usr/bin/env bash
# Build the litellm-sentinel OCI image from a static musl release binary
# (Containerfile.prebuilt, FROM scratch): `make image`.
#
# Usage: scripts/build-image.sh [BINARY]
#   BINARY  default target-musl/x86_64-unknown-linux-musl/release/litellm-sentinel
#           (`make image` builds it: cargo build --release --target
#           x86_64-unknown-linux-musl --target-dir target-musl)
# Environment:
#   IMAGE       image name (default localhost/litellm-sentinel:<Cargo.toml version>)
#   BUILDER     podman or buildah (default: the first one found)
# Prints the image name and its size. Exit 1 if the binary is not static.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
bin="${1:-target-musl/x86_64-unknown-linux-musl/release/litellm-sentinel}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
image="${IMAGE:-localhost/litellm-sentinel:$version}"
builder="${BUILDER:-}"
if [[ -z "$builder" ]]; then
  for b in podman buildah; do
    if command -v "$b" >/dev/null 2>&1; then builder="$b"; break; fi
  done
fi
[[ -n "$builder" ]] || { echo "build-image: neither podman nor buildah found (apt-get install podman buildah)" >&2; exit 2; }
[[ -x "$bin" ]] || { echo "build-image: $bin not found (make image builds it)" >&2; exit 2; }

# FROM scratch has no loader and no libc: the binary must be static.
if ! file -L "$bin" | grep -q 'static'; then
  echo "build-image: $bin is not statically linked: $(file -L "$bin")" >&2
  exit 1
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
# Line tables are for backtraces in development; the image ships without them.
strip -o "$ctx/litellm-sentinel" "$bin"
cp Containerfile.prebuilt "$ctx/Containerfile"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
build_args=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created")
case "$builder" in
  podman) podman build --format oci "${build_args[@]}" -t "$image" -f "$ctx/Containerfile" "$ctx" ;;
  buildah) buildah build --format oci "${build_args[@]}" -t "$image" -f "$ctx/Containerfile" "$ctx" ;;
  *) echo "build-image: unknown BUILDER $builder" >&2; exit 2 ;;
esac
size="$("$builder" image inspect --format '{{.Size}}' "$image" 2>/dev/null || echo '?')"
echo "build-image: $image ($builder, $size bytes, binary $(stat -c %s "$ctx/litellm-sentinel") bytes)"
