# litellm-sentinel — the commands a newcomer needs.
#   make demo   the whole job on this machine (same as cargo run --release -- demo)
#   make test   installs what the tests need (Debian packages), then runs every test
.PHONY: demo test deps fmt-check clippy unit manifests e2e test-litellm bench bench-compare bench-live fuzz-build

CARGO ?= cargo
export SENTINEL_REQUIRE_POSTGRES ?= 1

demo:
	$(CARGO) run --release -- demo

deps:
	bash scripts/install-test-deps.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets

manifests:
	bash scripts/validate-manifests.sh

e2e:
	$(CARGO) build
	bash scripts/e2e-prometheus.sh target/debug/litellm-sentinel

# The real LiteLLM proxy from PyPI (two releases) against a real PostgreSQL,
# checked against `report --json`. Cache: $$LITELLM_E2E_CACHE
# (default ~/.cache/litellm-sentinel-e2e); captures under target/litellm-e2e/.
test-litellm:
	$(CARGO) build
	python3 -m unittest tests/litellm/test_units.py
	python3 tests/litellm/test_litellm.py --fixtures; f=$$?; \
	python3 tests/litellm/test_litellm.py; r=$$?; test $$f -eq 0 && test $$r -eq 0

test: deps fmt-check clippy unit manifests e2e test-litellm
	@echo "make test: all suites passed"

bench:
	$(CARGO) bench

bench-compare:
	bash bench/compare.sh

bench-live:
	bash bench/live.sh
