#!/usr/bin/env bash
# The fuzz smoke run (docs/fuzzing.md).
#
#   fuzz/smoke.sh            build every target with libFuzzer and run each
#                            for FUZZ_SECONDS (default 5) from the checked-in
#                            corpus; fails on the first crash
#   fuzz/smoke.sh --replay   replay the corpus and the fixed crashes as a
#                            plain `cargo test` (no fuzzing engine, no
#                            instrumented build): what CI runs
#
# The build uses the flags cargo-fuzz passes with `-s none` (coverage
# instrumentation, no sanitizer), all stable: no nightly toolchain and no
# RUSTC_BOOTSTRAP. cargo-fuzz itself is not needed.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "--replay" ]; then
  # The root target/ holds the workspace's dependencies already built.
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../target}"
  exec cargo test --locked
fi

seconds="${FUZZ_SECONDS:-5}"
host="$(rustc -vV | sed -n 's/^host: //p')"
# --target keeps the flags off build scripts and proc macros, which are
# not linked with libFuzzer.
# The flags, in the order, of `cargo fuzz build -s none`: a build by
# either reuses the other's.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions \
-Ccodegen-units=1"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-target}"
cargo build --locked --release --features libfuzzer --bins --target "$host"

bin="$CARGO_TARGET_DIR/$host/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p artifacts
failed=()
for target in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^fedmesh-fuzz$'); do
  mkdir -p "$work/$target"
  seeds=("corpus/$target")
  [ -d "regressions/$target" ] && seeds+=("regressions/$target")
  echo "==> $target (${seconds}s)"
  # New inputs go to the scratch folder; the checked-in corpus is read only.
  if ! "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$target-" -print_final_stats=1 \
      "$work/$target" "${seeds[@]}" 2>"$work/$target.log"; then
    tail -n 40 "$work/$target.log" >&2
    failed+=("$target")
  else
    grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' "$work/$target.log" \
      | tr '\n' ' '
    echo
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz smoke run: every target ran ${seconds}s without a crash"
