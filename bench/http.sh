#!/usr/bin/env bash
# HTTP keep-alive pair: bench/gateway.sh with the bench service on a port
# named `http`, so fedmesh's gateways carry it per request (egress → one
# HTTP/2 request stream on the pooled mTLS connection → ingress → pooled
# endpoint connection), against an HAProxy pair in `mode http` with the
# same mTLS between the two proxies. Same paths, rounds and figures as the
# gateway bench; the ones this mode is for are requests per proxy
# CPU-second at saturation (wrk, keep-alive) and the added p99 at
# GATEWAY_BENCH_RATE (oha, open loop). The idle-connection, long-link and
# failover runs are off by default here (they measure connections; set
# their knobs to run them anyway). See docs/benchmarks.md.
#
# Usage: bench/http.sh               (from the repo root; root for the
#                                     packages)
# Environment: as bench/gateway.sh; defaults changed here:
#   GATEWAY_BENCH_IDLE=0 GATEWAY_BENCH_RTT_MS= GATEWAY_BENCH_FAILOVER=0
#   GATEWAY_BENCH_BULK_MIB=64
set -euo pipefail

cd "$(dirname "$0")/.."
export GATEWAY_BENCH_MODE=http
export GATEWAY_BENCH_IDLE=${GATEWAY_BENCH_IDLE:-0}
export GATEWAY_BENCH_RTT_MS=${GATEWAY_BENCH_RTT_MS-}
export GATEWAY_BENCH_FAILOVER=${GATEWAY_BENCH_FAILOVER:-0}
export GATEWAY_BENCH_BULK_MIB=${GATEWAY_BENCH_BULK_MIB:-64}
exec bench/gateway.sh "$@"
