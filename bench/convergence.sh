#!/usr/bin/env bash
# Export convergence, change propagation and control-plane memory: three
# release `fedctl run` clusters in a full mesh, each exporting 10 000
# services (tests/benches/convergence/). See docs/benchmarks.md.
#
# Usage: bench/convergence.sh        (from the repo root)
# Environment (passed to the bench):
#   CONVERGENCE_SERVICES=10000   services exported per cluster (1..10000)
#   CONVERGENCE_SWEEP="200 2000 10000"  run once per size instead (600, 6 000
#                                and 30 000 global services); overrides
#                                CONVERGENCE_SERVICES
#   CONVERGENCE_ROUNDS=1         runs per size (1..5): report the median
#   CONVERGENCE_CHANGES=200      single-service changes timed (1..1000)
#   CONVERGENCE_TIMEOUT=600      seconds allowed for convergence
#   BENCH_SKIP_BUILD=1           use the release binaries already built
#   CARGO_TARGET_DIR             default target/
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}

# shellcheck source=bench/lib.sh
source bench/lib.sh

build_bench convergence

# The clusters' folders go under WORK (the bench's TMPDIR), so that even a
# bench killed with SIGKILL leaves nothing behind: on exit the processes
# started from there are stopped by pid and the folder removed.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fedmesh-bench-convergence.XXXXXX")
BENCH_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # fedctl processes whose command line names our folder (the bench's own
  # clusters), by pid.
  stop_bench_under "$BENCH_PID" "$WORK"
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SIZES=${CONVERGENCE_SWEEP:-${CONVERGENCE_SERVICES:-10000}}
ROUNDS=${CONVERGENCE_ROUNDS:-1}
[[ $ROUNDS =~ ^[1-5]$ ]] || die "CONVERGENCE_ROUNDS must be 1..5, not $ROUNDS"
for size in $SIZES; do
  [[ $size =~ ^[0-9]+$ ]] || die "CONVERGENCE_SWEEP holds $size, not a number of services"
  for round in $(seq "$ROUNDS"); do
    log "load average before ($size per cluster, round $round): $(cut -d' ' -f1-3 /proc/loadavg)"
    log "running $BENCH_EXE"
    CONVERGENCE_SERVICES=$size TMPDIR=$WORK FEDMESH_BIN_DIR=${FEDMESH_BIN_DIR:-$(realpath "$TARGET_DIR/release")} \
      "$BENCH_EXE" --bench &
    BENCH_PID=$!
    wait "$BENCH_PID"
    BENCH_PID=
    log "load average after ($size per cluster, round $round): $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
