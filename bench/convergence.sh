#!/usr/bin/env bash
# Export convergence, change propagation and control-plane memory: three
# release `fedctl run` clusters in a full mesh, each exporting 10 000
# services (tests/benches/convergence.rs). See docs/benchmarks.md.
#
# Usage: bench/convergence.sh        (from the repo root)
# Environment (passed to the bench):
#   CONVERGENCE_SERVICES=10000   services exported per cluster (1..10000)
#   CONVERGENCE_CHANGES=200      single-service changes timed (1..1000)
#   CONVERGENCE_TIMEOUT=600      seconds allowed for convergence
#   BENCH_SKIP_BUILD=1           use the release binaries already built
#   CARGO_TARGET_DIR             default target/
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building release binaries… (cargo build --release --workspace --bins)"
  cargo build --release --workspace --bins --quiet
fi
[[ -x $TARGET_DIR/release/fedctl ]] || die "$TARGET_DIR/release/fedctl is missing; build it with cargo build --release --workspace --bins"
log "building the bench… (cargo bench -p fedmesh-tests --bench convergence --no-run)"
BENCH_EXE=$(cargo bench -p fedmesh-tests --bench convergence --no-run --quiet --message-format=json |
  grep '"executable":"[^"]' | grep '"name":"convergence"' |
  sed 's/.*"executable":"\([^"]*\)".*/\1/' | tail -1)
[[ -x $BENCH_EXE ]] || die "could not find the convergence bench executable"

# The clusters' folders go under WORK (the bench's TMPDIR), so that even a
# bench killed with SIGKILL leaves nothing behind: on exit the processes
# started from there are stopped by pid and the folder removed.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fedmesh-bench-convergence.XXXXXX")
BENCH_PID=
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  if [[ -n $BENCH_PID ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BENCH_PID" 2>/dev/null || true
  fi
  # fedctl processes whose command line names our folder (the bench's own
  # clusters), by pid.
  local f cmd
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    cmd=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    if [[ $cmd == *"$WORK/"* ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
log "running $BENCH_EXE"
TMPDIR=$WORK FEDMESH_BIN_DIR=$(realpath "$TARGET_DIR/release") "$BENCH_EXE" --bench &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
