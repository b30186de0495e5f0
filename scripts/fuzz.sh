#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS on the stable toolchain, without
# cargo-fuzz (installing it costs minutes on a fresh CI machine): the same
# build cargo-fuzz makes with `--sanitizer none --debug-assertions`
# (SanitizerCoverage instrumentation + libFuzzer from libfuzzer-sys), then
# libFuzzer's own command line. New inputs go to fuzz/target/found/<target>;
# the seed corpus in git (fuzz/corpus/<target>) is only read. A crash fails
# the run and leaves its input in fuzz/target/found/<target>/.. (crash-*).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-decode classify settings}
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$PWD/target"
# --target keeps the instrumentation off build scripts and proc macros.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions" \
  cargo build --release --bins --target "$triple"
for t in $targets; do
  mkdir -p "target/found/$t"
  echo "fuzz: $t for ${seconds}s"
  (cd "target/found/$t" && "$CARGO_TARGET_DIR/$triple/release/$t" \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 . "$OLDPWD/corpus/$t") 2>&1 | tail -n 12
done
echo "fuzz: every target ran ${seconds}s without a crash"
