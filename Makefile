# litellm-sentinel — the commands a newcomer needs.
#   make demo   the whole job on this machine (same as cargo run --release -- demo)
#   make demo-stack   the same, scraped by a real Prometheus with the shipped alerts
#   make image  the OCI image (FROM scratch, static musl binary)
#   make test   installs what the tests need (Debian packages), then runs every test
.PHONY: demo demo-stack demo-stack-test test deps fmt-check clippy unit manifests manifests-gen inject-validate e2e musl-bin image image-test test-litellm test-litellm-full bench bench-compare bench-compare-full bench-live bench-live-image bench-floor bench-scan fuzz-build fuzz

CARGO ?= cargo

demo:
	$(CARGO) run --release -- demo

# The demo scraped by a real Prometheus evaluating the shipped rules; prints the URLs to open.
demo-stack:
	$(CARGO) build --release
	bash scripts/demo-stack.sh target/release/litellm-sentinel

demo-stack-test:
	$(CARGO) build
	bash scripts/demo-stack.sh target/debug/litellm-sentinel --check

deps:
	bash scripts/install-test-deps.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets

manifests:
	$(CARGO) build
	bash scripts/validate-manifests.sh

inject-validate:
	$(CARGO) build
	bash scripts/validate-inject.sh target/debug/litellm-sentinel

# Regenerate what the chart and the rule template generate: deploy/*.yaml, the
# chart's dashboard copy, alerts/litellm-sentinel.rules.yaml.
manifests-gen:
	python3 scripts/gen-rules.py -o alerts/litellm-sentinel.rules.yaml
	.venv-tools/bin/python scripts/chart.py gen-deploy

e2e:
	$(CARGO) build
	bash scripts/e2e-prometheus.sh target/debug/litellm-sentinel

# Each fuzz target runs FUZZ_SECONDS on the stable toolchain (fuzz/README.md),
# built directly with cargo-fuzz's flags (no cargo-fuzz install on CI); new
# inputs go to fuzz/target/found, the seed corpus in git stays as it is.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh


# OCI image (FROM scratch) from a static musl release binary; own target dir
# so the musl release build never waits on the debug build's lock.
MUSL_TARGET = x86_64-unknown-linux-musl
MUSL_BIN = target-musl/$(MUSL_TARGET)/release/litellm-sentinel
musl-bin:
	rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	$(CARGO) build --release --locked --target $(MUSL_TARGET) --target-dir target-musl

image: musl-bin
	bash scripts/build-image.sh $(MUSL_BIN)

image-test: image
	bash scripts/test-image.sh

# The real LiteLLM proxy from PyPI (two releases) against a real PostgreSQL,
# checked against `report --json`, the live node agent and the agent as the pod's
# sidecar (own PID namespace: needs root). Cache: $$LITELLM_E2E_CACHE
# (default ~/.cache/litellm-sentinel-e2e); captures under target/litellm-e2e/.
# `make test` runs three live scenarios per release (two-workers-json is in the
# committed captures, checked by --fixtures: under CPU contention uvicorn kills
# workers that miss its ping, so a live two-worker start can take minutes);
# `make test-litellm-full` runs all four (two-workers-json: the sidecar with
# two workers' engines).
LITELLM_SCENARIOS ?= late-engine engine-kill engine-never
test-litellm:
	$(CARGO) build
	python3 -m unittest tests/litellm/test_units.py
	python3 tests/litellm/test_litellm.py --fixtures; f=$$?; \
	python3 tests/litellm/test_litellm.py $(foreach s,$(LITELLM_SCENARIOS),--scenario $(s)); r=$$?; \
	test $$f -eq 0 && test $$r -eq 0

test-litellm-full:
	$(MAKE) test-litellm LITELLM_SCENARIOS="late-engine two-workers-json engine-kill engine-never"


test: deps fmt-check clippy unit manifests inject-validate e2e image-test demo-stack-test test-litellm fuzz
	@echo "make test: all suites passed"

bench:
	$(CARGO) bench

# One run, side by side: ours per core (taskset) and on all cores, rg -j1, mtail, cat;
# then /metrics at 2,000 pods. Fails if a count differs from the corpus's expected counts.
bench-compare:
	bash scripts/bench-compare.sh

# The full count table against bench/mtail/litellm.mtail (27 regexes) and rg.
bench-compare-full:
	bash bench/compare.sh

# The release agent on live pod logs, every issue 11 target in one run (~2.5 min):
# idle with 5,000 files, 500 pods x 20 lines/s CPU side by side with mtail,
# append -> /metrics p99, syscalls per line (strace), rename rotation, peak RSS.
bench-live:
	bash bench/live.sh

# The same, on the binary the image ships (static musl: its allocator gives
# another RSS than glibc's).
bench-live-image: musl-bin
	SENTINEL_BIN=$(CURDIR)/$(MUSL_BIN) bash bench/live.sh

# The kernel's share of bench-live's load: one pread per file per tick, nothing else.
bench-floor:
	bash bench/floor.sh

bench-scan:
	bash bench/scan.sh
