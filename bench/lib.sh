# Shared by the bench/*.sh scripts that run a bench program from
# tests/benches/ (source it; it defines functions only).

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs the Debian packages named (those whose command is missing) when
# root; else says what to install. Usage: need_packages CMD:PKG…
need_packages() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  log "installing ${missing[*]}…"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Builds the release binaries (unless BENCH_SKIP_BUILD=1) and the bench
# program $1; sets BENCH_EXE.
build_bench() {
  local name=$1
  if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries… (cargo build --release --workspace --bins)"
    cargo build --release --workspace --bins --quiet
  fi
  [[ -x $TARGET_DIR/release/fedctl ]] || die "$TARGET_DIR/release/fedctl is missing; build it with cargo build --release --workspace --bins"
  log "building the bench… (cargo bench -p fedmesh-tests --bench $name --no-run)"
  BENCH_EXE=$(cargo bench -p fedmesh-tests --bench "$name" --no-run --quiet --message-format=json |
    grep '"executable":"[^"]' | grep "\"name\":\"$name\"" |
    sed 's/.*"executable":"\([^"]*\)".*/\1/' | tail -1)
  [[ -x $BENCH_EXE ]] || die "could not find the $name bench executable"
}

# Stops the bench program (pid $1, if running), then SIGKILLs every
# process whose command line names folder $2 (what the bench started from
# there), by pid.
stop_bench_under() {
  local bench_pid=$1 dir=$2 f pid cmd
  if [[ -n $bench_pid ]] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    cmd=$({ tr '\0' ' ' <"$f"; } 2>/dev/null) || continue  # it may have just exited
    if [[ $cmd == *"$dir/"* ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
}
