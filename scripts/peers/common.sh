# shellcheck shell=bash
# Shared settings for the peer-server scripts. Source it; do not run it.
# Adapted from shared/peers/common.sh. Installs are cached per machine under
# $MAMBA_PEERS_ROOT (default ~/.cache/mamba-peers), outside the repository.
PEERS_ROOT="${PEERS_ROOT:-${MAMBA_PEERS_ROOT:-$HOME/.cache/mamba-peers}}"
PEERS_VENV="${PEERS_VENV:-$PEERS_ROOT/venv}"
PEERS_NPM="${PEERS_NPM:-$PEERS_ROOT/npm}"
PEERS_MODELS="${PEERS_MODELS:-$PEERS_ROOT/models}"
PEERS_LOGS="${PEERS_LOGS:-$PEERS_ROOT/logs}"
PEERS_RUN="${PEERS_RUN:-$PEERS_ROOT/run}"
PEERS_TIMES="${PEERS_TIMES:-$PEERS_ROOT/install-times.tsv}"
PEERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_HOST=127.0.0.1

mkdir -p "$PEERS_ROOT" "$PEERS_MODELS" "$PEERS_LOGS" "$PEERS_RUN"

# timed STEP CMD... : run CMD, append "date<TAB>step<TAB>seconds<TAB>rc" to $PEERS_TIMES.
timed() {
  local step="$1"; shift
  local t0 t1 rc
  t0=$(date +%s)
  echo "==> [$step] $*" >&2
  set +e; "$@"; rc=$?; set -e
  t1=$(date +%s)
  printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$step" "$((t1 - t0))" "$rc" >> "$PEERS_TIMES"
  echo "==> [$step] rc=$rc in $((t1 - t0))s" >&2
  return $rc
}

ensure_venv() {
  if [ ! -x "$PEERS_VENV/bin/python" ]; then
    timed venv-create python3 -m venv "$PEERS_VENV"
    timed venv-pip-upgrade "$PEERS_VENV/bin/pip" install -q --upgrade pip wheel
  fi
}

# ---- process helpers: NAME PORT identify one server instance ----
pidfile() { echo "$PEERS_RUN/$1-$2.pid"; }
logfile() { echo "$PEERS_LOGS/$1-$2.log"; }

is_running() { # NAME PORT
  local pf; pf=$(pidfile "$1" "$2")
  [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null
}

port_in_use() { # PORT
  (exec 3<>"/dev/tcp/$PEERS_HOST/$1") 2>/dev/null
}

wait_http() { # URL TIMEOUT_S [PID]
  local url="$1" tmo="$2" pid="${3:-}" i
  for ((i = 0; i < tmo * 4; i++)); do
    if curl -s -o /dev/null -m 2 "$url"; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.25
  done
  return 1
}

# start_bg NAME PORT HEALTH_URL TIMEOUT CMD... : start CMD in its own session, record PID.
start_bg() {
  local name="$1" port="$2" health="$3" tmo="$4"; shift 4
  local pf lf pid
  pf=$(pidfile "$name" "$port"); lf=$(logfile "$name" "$port")
  if is_running "$name" "$port"; then
    echo "$name already running on $PEERS_HOST:$port (pid $(cat "$pf")), log $lf"; return 0
  fi
  if port_in_use "$port"; then
    echo "port $port on $PEERS_HOST is already in use by another process" >&2; return 1
  fi
  setsid "$@" >"$lf" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$pf"
  if wait_http "$health" "$tmo" "$pid"; then
    echo "$name started on http://$PEERS_HOST:$port (pid $pid), log $lf"
  else
    echo "$name failed to come up within ${tmo}s; last log lines:" >&2
    tail -n 30 "$lf" >&2
    stop_bg "$name" "$port" >/dev/null
    return 1
  fi
}

stop_bg() { # NAME PORT
  local name="$1" port="$2" pf pid i
  pf=$(pidfile "$name" "$port")
  if ! [ -f "$pf" ]; then echo "$name on port $port: not running (no pidfile)"; return 0; fi
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    # the process was started with setsid, so it leads its own process group
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
    echo "$name on port $port: stopped (pid $pid)"
  else
    echo "$name on port $port: not running (stale pidfile for pid $pid)"
  fi
  rm -f "$pf"
}

status_bg() { # NAME PORT HEALTH_URL
  local name="$1" port="$2" health="$3"
  if is_running "$name" "$port"; then
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' -m 3 "$health" || true)
    echo "$name on http://$PEERS_HOST:$port: running (pid $(cat "$(pidfile "$name" "$port")")), $health -> HTTP $code, log $(logfile "$name" "$port")"
  else
    echo "$name on port $port: not running"; return 3
  fi
}
