#!/usr/bin/env bash
# Gateway data path: a fedmesh gateway pair (release fedctl run + fedgw,
# three clusters) against direct TCP and against an HAProxy pair doing the
# same mTLS, side by side: latency at a fixed request rate, requests and
# new connections per proxy CPU-second, requests per proxy CPU-second at
# saturation (wrk), tail latency at a fixed rate (oha), single-stream
# throughput, RSS with idle connections, new-connection latency across a
# delaying relay (10, 50, 100 ms round trips), failover when a gateway is
# killed or blackholed (tests/benches/gateway/). See docs/benchmarks.md.
#
# Usage: bench/gateway.sh            (from the repo root; root for the
#                                     packages and the blackhole runs)
# Environment (passed to the bench):
#   GATEWAY_BENCH_SECONDS=5          each fixed-rate run (1..30)
#   GATEWAY_BENCH_RATE=1000          keep-alive requests per second
#   GATEWAY_BENCH_CONN_RATE=300      new connections per second
#   GATEWAY_BENCH_BULK_MIB=1024      single-stream transfer size
#   GATEWAY_BENCH_IDLE=10000         idle connections (0: skip; at most what
#                                    the open-file limit allows)
#   GATEWAY_BENCH_IDLE_CONCURRENCY=200  idle connections opened at once
#   GATEWAY_BENCH_ROUNDS=3           repetitions (medians reported)
#   GATEWAY_BENCH_FAILOVER_RATE=200  requests per second during failover
#   GATEWAY_BENCH_FAILOVER=1         0: skip the failover runs
#   GATEWAY_BENCH_RTT_MS=10,50,100   round trips of the long-link runs
#                                    (empty: skip)
#   GATEWAY_BENCH_RTT_CONNECTIONS=50 connections per path and round trip
#   GATEWAY_BENCH_OHA                the oha binary (default: installed
#                                    once with cargo install --locked into
#                                    target/bench-tools, ~4 min; empty: skip)
#   GATEWAY_BENCH_MODE=tcp           tcp, or http: the service port is
#                                    named http (per request) and HAProxy
#                                    runs mode http (see bench/http.sh)
#   BENCH_SKIP_BUILD=1               use the release binaries already built
#   FEDMESH_BIN_DIR                  where fedctl and fedgw are (default
#                                    target/release; e.g. another build, A/B)
#   CARGO_TARGET_DIR                 default target/
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
# shellcheck source=bench/lib.sh
source bench/lib.sh

need_packages haproxy:haproxy nft:nftables wrk:wrk
build_bench gateway

# oha is not packaged in Debian: built once from crates.io, then cached.
OHA_VERSION=1.16.0
if [[ -z ${GATEWAY_BENCH_OHA+set} ]]; then
  GATEWAY_BENCH_OHA=$TARGET_DIR/bench-tools/bin/oha
  if [[ ! -x $GATEWAY_BENCH_OHA ]]; then
    log "installing oha $OHA_VERSION into $TARGET_DIR/bench-tools… (once, ~4 min)"
    cargo install --quiet --root "$TARGET_DIR/bench-tools" oha --version "$OHA_VERSION" --locked
  fi
  GATEWAY_BENCH_OHA=$(realpath "$GATEWAY_BENCH_OHA")
fi
export GATEWAY_BENCH_OHA
log "oha: ${GATEWAY_BENCH_OHA:-(skipped)}; wrk: $(wrk -v 2>&1 | head -1)"

# Each idle connection holds two descriptors in each proxy (client side and
# upstream) and two in this bench (client and backend): raise the limit as
# far as allowed, and open at most what fits under it.
ulimit -Hn 200000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
FITS=$((($(ulimit -n) - 1000) / 2))
IDLE=${GATEWAY_BENCH_IDLE:-10000}
if ((IDLE > FITS)); then
  log "open-file limit $(ulimit -n): $FITS idle connections instead of $IDLE"
  IDLE=$FITS
fi
export GATEWAY_BENCH_IDLE=$IDLE

# Blackhole runs add an nftables table of their own (one drop rule pair on a
# loopback address the bench started) and delete it; so does the exit trap,
# whatever happened.
NFT_TABLE=
if [[ $(id -u) == 0 ]] && nft list tables >/dev/null 2>&1; then
  NFT_TABLE=fedmesh_bench_gw_$$
else
  log "not root or no nftables: the blackhole runs are skipped"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fedmesh-bench-gateway.XXXXXX")
BENCH_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_bench_under "$BENCH_PID" "$WORK"
  if [[ -n $NFT_TABLE ]]; then nft delete table inet "$NFT_TABLE" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
log "haproxy: $(haproxy -v | head -1)"
log "running $BENCH_EXE"
BIN_DIR=$(realpath "${FEDMESH_BIN_DIR:-$TARGET_DIR/release}")
log "fedctl and fedgw from $BIN_DIR"
TMPDIR=$WORK FEDMESH_BIN_DIR=$BIN_DIR GATEWAY_BENCH_NFT_TABLE=$NFT_TABLE \
  timeout --signal=TERM --kill-after=10 1800 "$BENCH_EXE" --bench &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg); bench took $((SECONDS - started)) s"
