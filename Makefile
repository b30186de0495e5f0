# litellm-sentinel — the commands a newcomer needs.
#   make demo   the whole job on this machine (same as cargo run --release -- demo)
#   make test   installs what the tests need (Debian packages), then runs every test
.PHONY: demo test deps fmt-check clippy unit manifests inject-validate e2e bench bench-compare bench-live fuzz-build fuzz

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

inject-validate:
	$(CARGO) build
	bash scripts/validate-inject.sh target/debug/litellm-sentinel

e2e:
	$(CARGO) build
	bash scripts/e2e-prometheus.sh target/debug/litellm-sentinel

# Each fuzz target runs FUZZ_SECONDS on the stable toolchain (fuzz/README.md);
# new inputs go to fuzz/target/found, the seed corpus in git stays as it is.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = decode classify settings
fuzz:
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/found/$$t && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none --debug-assertions $$t target/found/$$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 || exit 1; \
	done

test: deps fmt-check clippy unit manifests inject-validate e2e fuzz
	@echo "make test: all suites passed"

bench:
	$(CARGO) bench

bench-compare:
	bash bench/compare.sh

bench-live:
	bash bench/live.sh
