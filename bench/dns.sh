#!/usr/bin/env bash
# DNS queries per server CPU-second: fedmesh's DNS server (inside a release
# `fedctl run`) against Knot DNS serving the same names, measured with
# dnsperf. See docs/benchmarks.md.
#
# Usage: bench/dns.sh            (from the repo root)
# Environment:
#   DNS_BENCH_SIZES="10000 30000"  numbers of exported services (names)
#   DNS_BENCH_SECONDS=10           dnsperf run length per server
#   DNS_BENCH_CLIENTS=8            dnsperf -c (sockets)
#   DNS_BENCH_OUTSTANDING=500      dnsperf -q (queries in flight)
#   DNS_BENCH_ROUNDS=3             rounds per size (medians and spread)
#   BENCH_SKIP_BUILD=1             use the release binaries already built
#   CARGO_TARGET_DIR               default target/
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SIZES=${DNS_BENCH_SIZES:-"10000 30000"}
SECONDS_PER_RUN=${DNS_BENCH_SECONDS:-10}
CLIENTS=${DNS_BENCH_CLIENTS:-8}
OUTSTANDING=${DNS_BENCH_OUTSTANDING:-500}
ROUNDS=${DNS_BENCH_ROUNDS:-3}
PORT=15053
PER_FILE=1000  # services per manifest file

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Bounds: this is a benchmark, not a soak test.
for n in $SIZES; do
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 30000)) || die "sizes must be 1..30000 (the VIP range holds 65k addresses, 2 per service)"
done
((SECONDS_PER_RUN >= 1 && SECONDS_PER_RUN <= 120)) || die "DNS_BENCH_SECONDS must be 1..120"
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 9)) || die "DNS_BENCH_ROUNDS must be 1..9"

# ---- tools ---------------------------------------------------------------
need_pkgs=()
command -v dnsperf >/dev/null || need_pkgs+=(dnsperf)
command -v knotd >/dev/null || need_pkgs+=(knot)
command -v dig >/dev/null || need_pkgs+=(bind9-dnsutils)
command -v jq >/dev/null || need_pkgs+=(jq)
command -v taskset >/dev/null || need_pkgs+=(util-linux)
if ((${#need_pkgs[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${need_pkgs[*]}: install them (apt-get install ${need_pkgs[*]}) or run as root"
  log "installing ${need_pkgs[*]}…"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building release binaries… (cargo build --release --workspace --bins)"
  cargo build --release --workspace --bins --quiet
fi
FEDCTL=$TARGET_DIR/release/fedctl
[[ -x $FEDCTL ]] || die "$FEDCTL is missing; build it with cargo build --release --workspace --bins"
FEDCTL=$(realpath "$FEDCTL")

# ---- cleanup ---------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fedmesh-bench-dns.XXXXXX")
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- addresses: a free 127.A.B.0/24 block ----------------------------------
pick_block() {
  local listening a b
  listening=$(ss -Htlnu 2>/dev/null | awk '{print $5}')
  for _ in $(seq 64); do
    a=$((200 + RANDOM % 50)); b=$((RANDOM % 256))
    if ! grep -q "^127\.$a\.$b\." <<<"$listening"; then echo "127.$a.$b"; return; fi
  done
  die "no free 127.x.y.0/24 block"
}
BLOCK=$(pick_block)
FED_IP=$BLOCK.1
KNOT_IP=$BLOCK.2

NCPU=$(nproc)
if ((NCPU >= 2)); then
  CLIENT_CPU=0; SERVER_CPU=1
  PIN_CLIENT=(taskset -c "$CLIENT_CPU"); PIN_SERVER=(taskset -c "$SERVER_CPU")
  PINNING="dnsperf pinned to CPU $CLIENT_CPU, servers pinned to CPU $SERVER_CPU"
else
  PIN_CLIENT=(); PIN_SERVER=(); PINNING="1 CPU: no pinning"
fi
CLK_TCK=$(getconf CLK_TCK)

cpu_ticks() { # utime + stime of all threads of $1
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }   # fields after the command name (which may hold spaces)
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))
}

wait_answer() { # ip name timeout_s what logfile
  local deadline=$((SECONDS + $3))
  until [[ -n $(dig +short +tries=1 +time=1 @"$1" -p "$PORT" "$2" A 2>/dev/null) ]]; do
    ((SECONDS < deadline)) || { cat "$5" >&2; die "$4 did not answer $2 within $3 s"; }
    sleep 0.2
  done
}

# Runs dnsperf against $1 (server ip), pid $2, for $3 s; prints
# "sent completed lost qps avg_ms stddev_ms max_ms cpu_s" on stdout.
measure() {
  local ip=$1 pid=$2 secs=$3 out before after
  out=$WORK/dnsperf-$ip.txt
  before=$(cpu_ticks "$pid")
  "${PIN_CLIENT[@]}" dnsperf -s "$ip" -p "$PORT" -d "$WORK/queries.txt" -l "$secs" \
    -c "$CLIENTS" -T 1 -q "$OUTSTANDING" -t 2 >"$out" 2>&1 || { cat "$out" >&2; die "dnsperf failed"; }
  after=$(cpu_ticks "$pid")
  awk -v cpu="$(awk -v a="$before" -v b="$after" -v t="$CLK_TCK" 'BEGIN{printf "%.3f", (b-a)/t}')" '
    /Queries sent:/      {sent=$3}
    /Queries completed:/ {done=$3}
    /Queries lost:/      {lost=$3}
    /Queries per second:/{qps=$4}
    /Average Latency/    {avg=$4*1000; max=$8; gsub(/[,)]/,"",max); max*=1000}
    /Response codes:/    {if ($0 !~ /^ *Response codes: *NOERROR [0-9]+ \(100/) print "warning: " $0 > "/dev/stderr"}
    /Latency StdDev/     {sd=$4*1000}
    END {printf "%d %d %d %.0f %.3f %.3f %.3f %s\n", sent, done, lost, qps, avg, sd, max, cpu}' "$out"
}

# Short verbose run (same load) for latency percentiles: "p50_ms p99_ms".
percentiles() {
  local ip=$1
  "${PIN_CLIENT[@]}" dnsperf -v -s "$ip" -p "$PORT" -d "$WORK/queries.txt" -l 3 \
    -c "$CLIENTS" -T 1 -q "$OUTSTANDING" -t 2 2>/dev/null |
    awk '$1 == ">" {print $NF}' | sort -g |
    awk '{v[NR]=$1} END {if (NR==0) {print "- -"; exit} i50=int(NR*0.50); if(i50<1)i50=1; i99=int(NR*0.99); if(i99<1)i99=1; printf "%.3f %.3f\n", v[i50]*1000, v[i99]*1000}'
}

RESULTS=()
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

for N in $SIZES; do
  log "=== $N names ==="
  RUN=$WORK/n$N
  mkdir -p "$RUN/fed/services" "$RUN/knot/zones" "$RUN/knot/db" "$RUN/knot/run"

  log "generating $N exported services in $(((N + PER_FILE - 1) / PER_FILE)) manifest files…"
  awk -v n="$N" -v per="$PER_FILE" -v dir="$RUN/fed/services" 'BEGIN {
    for (i = 1; i <= n; i++) {
      f = sprintf("%s/bench-%03d.yaml", dir, int((i - 1) / per))
      printf "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%05d\n  namespace: bench-%d\n  annotations: { fedmesh.io/export: \"true\" }\nspec:\n  ports:\n    - { name: http, port: 8080, protocol: TCP }\n", i, i % 10 > f
    }
  }'
  cat >"$RUN/fed/config.yaml" <<EOF
cluster: east
locality: { region: us-east, zone: us-east-1a }
dataDir: ./data
control:
  peeringListen: $FED_IP:15017
  adminListen: $FED_IP:15000
  gatewayListen: $FED_IP:15012
dns:
  listen: $FED_IP:$PORT
gateway:
  ingressListen: $FED_IP:15443
  advertise: $FED_IP:15443
  adminListen: $FED_IP:15090
EOF

  log "starting fedmesh (fedctl run) on $FED_IP…"
  FEDMESH_LOG="info,hickory_server=warn,hickory_proto=warn" \
    "${PIN_SERVER[@]}" "$FEDCTL" run --config "$RUN/fed/config.yaml" >"$RUN/fed/fedctl.log" 2>&1 &
  FED_PID=$!
  PIDS+=("$FED_PID")
  started=$SECONDS
  until grep -q "admin listening on" "$RUN/fed/fedctl.log"; do
    kill -0 "$FED_PID" 2>/dev/null || { cat "$RUN/fed/fedctl.log" >&2; die "fedctl exited"; }
    ((SECONDS - started < 30)) || { cat "$RUN/fed/fedctl.log" >&2; die "fedctl did not start"; }
    sleep 0.1
  done
  LAST=$(printf 'svc-%05d.bench-%d.svc.clusterset.local' "$N" $((N % 10)))
  deadline=$((SECONDS + 300))
  while [[ -z $(dig +short +tries=1 +time=1 @"$FED_IP" -p "$PORT" "$LAST" A 2>/dev/null) ]]; do
    kill -0 "$FED_PID" 2>/dev/null || { tail -50 "$RUN/fed/fedctl.log" >&2; die "fedctl exited"; }
    ((SECONDS < deadline)) || { tail -50 "$RUN/fed/fedctl.log" >&2; die "fedmesh did not answer $LAST within 300 s"; }
    have=$("$FEDCTL" --admin "$FED_IP:15000" services -o json 2>/dev/null | jq length 2>/dev/null || echo 0)
    log "waiting for $N names on fedmesh… $have/$N"
    sleep 1
  done
  log "fedmesh answers all names ($((SECONDS - started)) s after start)"

  log "reading VIPs (fedctl services -o json)…"
  "$FEDCTL" --admin "$FED_IP:15000" services -o json |
    jq -r '.[] | "\(.dnsName). \(.vip)"' >"$RUN/records.txt"
  got=$(wc -l <"$RUN/records.txt")
  ((got == N)) || die "fedmesh lists $got services, expected $N"
  awk '{print $1, "A"}' "$RUN/records.txt" | sed 's/\. A$/ A/' | shuf >"$WORK/queries.txt"

  log "writing the Knot zone ($N A records) and starting knotd on $KNOT_IP…"
  {
    printf '$ORIGIN clusterset.local.\n$TTL 5\n'
    printf '@ SOA ns.clusterset.local. hostmaster.clusterset.local. 1 3600 600 86400 5\n'
    printf '@ NS ns.clusterset.local.\nns A 127.0.0.1\n'
    awk '{print $1, "A", $2}' "$RUN/records.txt"
  } >"$RUN/knot/zones/clusterset.local.zone"
  cat >"$RUN/knot/knot.conf" <<EOF
server:
    rundir: "$RUN/knot/run"
    listen: $KNOT_IP@$PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$RUN/knot/db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "$RUN/knot/zones"
    file: "%s.zone"
    semantic-checks: off
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: clusterset.local
EOF
  "${PIN_SERVER[@]}" knotd -c "$RUN/knot/knot.conf" >"$RUN/knot/knotd.log" 2>&1 &
  KNOT_PID=$!
  PIDS+=("$KNOT_PID")
  wait_answer "$KNOT_IP" "$LAST" 60 knotd "$RUN/knot/knotd.log"

  log "checking that both servers give the same answers for 200 names…"
  shuf -n 200 "$WORK/queries.txt" | awk '{print $1, "A"}' >"$RUN/sample.txt"
  # shellcheck disable=SC2046
  a=$(dig +short +tries=2 +time=2 @"$FED_IP" -p "$PORT" $(cat "$RUN/sample.txt"))
  # shellcheck disable=SC2046
  b=$(dig +short +tries=2 +time=2 @"$KNOT_IP" -p "$PORT" $(cat "$RUN/sample.txt"))
  [[ $(wc -l <<<"$a") == 200 && $a == "$b" ]] || {
    diff <(echo "$a") <(echo "$b") | head >&2
    die "fedmesh and Knot answer differently"
  }

  for server in fedmesh knot; do
    if [[ $server == fedmesh ]]; then ip=$FED_IP; pid=$FED_PID; else ip=$KNOT_IP; pid=$KNOT_PID; fi
    log "$server: warm-up 2 s…"
    measure "$ip" "$pid" 2 >/dev/null
  done
  # Rounds alternate the servers, so a burst of other work on the machine
  # spreads over both.
  for round in $(seq "$ROUNDS"); do
    for server in fedmesh knot; do
      if [[ $server == fedmesh ]]; then ip=$FED_IP; pid=$FED_PID; else ip=$KNOT_IP; pid=$KNOT_PID; fi
      log "$server, round $round/$ROUNDS: dnsperf -l $SECONDS_PER_RUN -c $CLIENTS -q $OUTSTANDING…"
      m=$(measure "$ip" "$pid" "$SECONDS_PER_RUN")
      log "$server, round $round/$ROUNDS: latency percentiles (3 s verbose run)…"
      p=$(percentiles "$ip")
      RESULTS+=("$N $server $round $m $p")
    done
  done
  stop_all
done

# ---- report ----------------------------------------------------------------
echo
echo "DNS: queries per server CPU-second, fedmesh vs Knot DNS $(knotd -V | awk '{print $NF}')"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), loopback; $PINNING"
echo "load average (1/5/15 min) before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}'): -l $SECONDS_PER_RUN -c $CLIENTS -T 1 -q $OUTSTANDING, UDP, A queries, names shuffled; CPU from /proc/PID/stat (utime+stime)"
echo "rounds: $ROUNDS per size, servers alternating; medians with the spread (min–max) across rounds"
echo
printf '| %6s | %-7s | %5s | %9s | %9s | %6s | %8s | %8s | %8s | %8s | %8s | %7s | %9s |\n' \
  names server round sent completed lost QPS "avg ms" "sd ms" "p50 ms" "p99 ms" "CPU s" "q/CPU-s"
printf '|%s|\n' "--------|---------|-------|-----------|-----------|--------|----------|----------|----------|----------|----------|---------|-----------"
declare -A QPC P99
for r in "${RESULTS[@]}"; do
  # shellcheck disable=SC2086
  set -- $r
  n=$1 server=$2 round=$3 sent=$4 done=$5 lost=$6 qps=$7 avg=$8 sd=$9 cpu=${11} p50=${12} p99=${13}
  qpc=$(awk -v d="$done" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", d / c; else print "inf" }')
  QPC[$n.$server]+="$qpc "
  P99[$n.$server]+="$p99 "
  printf '| %6s | %-7s | %5s | %9s | %9s | %6s | %8s | %8s | %8s | %8s | %8s | %7s | %9s |\n' \
    "$n" "$server" "$round" "$sent" "$done" "$lost" "$qps" "$avg" "$sd" "$p50" "$p99" "$cpu" "$qpc"
done

# "median min max" of the numbers in $1 ("-" when a value is missing).
stats() {
  tr ' ' '\n' <<<"$1" | grep -E '^[0-9.]+$' | sort -g |
    awk '{v[NR]=$1} END { if (NR == 0) { print "- - -"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%s %s %s\n", m, v[1], v[NR] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
printf '| %6s | %-26s | %-26s | %8s | %-22s | %-22s | %8s |\n' names \
  "fedmesh q/CPU-s" "Knot q/CPU-s" "ratio" "fedmesh p99 ms" "Knot p99 ms" "ratio"
printf '|%s|\n' "--------|----------------------------|----------------------------|----------|------------------------|------------------------|----------"
for n in $SIZES; do
  read -r fq fq_lo fq_hi <<<"$(stats "${QPC[$n.fedmesh]}")"
  read -r kq kq_lo kq_hi <<<"$(stats "${QPC[$n.knot]}")"
  read -r fp fp_lo fp_hi <<<"$(stats "${P99[$n.fedmesh]}")"
  read -r kp kp_lo kp_hi <<<"$(stats "${P99[$n.knot]}")"
  printf '| %6s | %-26s | %-26s | %8s | %-22s | %-22s | %8s |\n' "$n" \
    "$(printf '%.0f (%.0f–%.0f)' "$fq" "$fq_lo" "$fq_hi")" \
    "$(printf '%.0f (%.0f–%.0f)' "$kq" "$kq_lo" "$kq_hi")" \
    "$(ratio "$fq" "$kq")" \
    "$fp ($fp_lo–$fp_hi)" "$kp ($kp_lo–$kp_hi)" "$(ratio "$fp" "$kp")"
done
echo
echo "ratio: fedmesh ÷ Knot of the medians; q/CPU-s higher is better, p99 lower is better"
