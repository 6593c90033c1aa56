#!/usr/bin/env bash
# Starts/stops berth's own processes against the local stack (.berth/berth.env).
#   berth-backend        API + UI on $BERTH_LISTEN (the UI from frontend/dist unless
#                        BERTH_FRONTEND_DIR says otherwise); /metrics on 127.0.0.1:9180
#   berth-build-worker   ops on 127.0.0.1:9181
#   berth-deploy-worker  ops on 127.0.0.1:9182
#   berth-log-streamer   ops on 127.0.0.1:9183
# Binaries come from $BERTH_BIN_DIR (default target/debug; target/release works too).
# Logs: .berth/logs/<name>.log; pid files: .berth/run/<name>.pid.
#
# Usage: infra/local/processes.sh start|stop|status|restart
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN_DIR="${BERTH_BIN_DIR:-target/debug}"
[[ $BIN_DIR == /* ]] || BIN_DIR="$BERTH_ROOT/$BIN_DIR"

# name -> ops address (/healthz, /readyz, /metrics)
PROCESSES=(berth-backend berth-build-worker berth-deploy-worker berth-log-streamer)
declare -A OPS_ADDR=(
  [berth-backend]=127.0.0.1:9180
  [berth-build-worker]=127.0.0.1:9181
  [berth-deploy-worker]=127.0.0.1:9182
  [berth-log-streamer]=127.0.0.1:9183
)

load_env() {
  [[ -f $BERTH_ENV_FILE_PATH ]] || die "no $BERTH_ENV_FILE_PATH: run 'infra/local/stack.sh up' (or 'make up') first"
  set -a
  # shellcheck disable=SC1090
  source "$BERTH_ENV_FILE_PATH"
  set +a
  export RUST_LOG="${RUST_LOG:-info}"
  # The backend serves the web UI built by `make frontend`, when it is built.
  if [[ -z ${BERTH_FRONTEND_DIR:-} && -f $BERTH_ROOT/frontend/dist/index.html ]]; then
    export BERTH_FRONTEND_DIR="$BERTH_ROOT/frontend/dist"
  fi
}

backend_url() { echo "http://${BERTH_LISTEN:-127.0.0.1:8080}"; }
backend_healthy() { curl -sf --max-time 2 "$(backend_url)/healthz" >/dev/null; }
ops_healthy() { curl -sf --max-time 2 "http://$1/healthz" >/dev/null; }

# The process's own broker user (BERTH_AMQP_URL_BUILD_WORKER for berth-build-worker, ...).
amqp_url_of() {
  local var="BERTH_AMQP_URL_$(echo "${1#berth-}" | tr 'a-z-' 'A-Z_')"
  echo "${!var:-}"
}

start_one() {
  local name=$1 bin="$BIN_DIR/$1" ops=${OPS_ADDR[$1]} settings=()
  [[ -x $bin ]] || die "$bin not found: build it first (cargo build --bins)"
  [[ -n $ops ]] && settings+=(BERTH_OPS_ADDR="$ops")
  [[ -n $(amqp_url_of "$name") ]] && settings+=(BERTH_AMQP_URL="$(amqp_url_of "$name")")
  start_bg "$name" "$BERTH_RUN/$name.pid" "$BERTH_LOGS/$name.log" "$BERTH_ROOT" \
    env "${settings[@]}" "$bin"
}

cmd_start() {
  load_env
  mkdir -p "$BERTH_RUN" "$BERTH_LOGS" "${BERTH_WORK_DIR:-$BERTH_STATE/work}" \
    "${BERTH_LOG_STREAMER_STATE_DIR:-$BERTH_STATE/log-streamer}"
  local name
  # Schema and broker topology exist before any process starts, so start
  # order never matters and a failed migration stops here with its reason.
  log "migrating the database and declaring exchanges and queues"
  BERTH_AMQP_URL="$(amqp_url_of berth-backend)" \
    "$BIN_DIR/berth-backend" migrate >>"$BERTH_LOGS/berth-backend.log" 2>&1 \
    || { tail -n 20 "$BERTH_LOGS/berth-backend.log" >&2; die "berth-backend migrate failed"; }
  start_one berth-backend
  if ! wait_for "berth-backend $(backend_url)/healthz" 120 backend_healthy; then
    tail -n 40 "$BERTH_LOGS/berth-backend.log" >&2 || true
    die "berth-backend did not become healthy"
  fi
  for name in "${PROCESSES[@]:1}"; do
    start_one "$name"
  done
  # Workers: a process that dies right away is reported (ops health is best effort).
  sleep 1
  for name in "${PROCESSES[@]:1}"; do
    if ! pid_alive "$BERTH_RUN/$name.pid"; then
      tail -n 40 "$BERTH_LOGS/$name.log" >&2 || true
      die "$name exited; see .berth/logs/$name.log"
    fi
    wait_for "$name ops ${OPS_ADDR[$name]}" 30 ops_healthy "${OPS_ADDR[$name]}" \
      || warn "$name: no answer on http://${OPS_ADDR[$name]}/healthz yet"
  done
  ok "berth is up: $(backend_url)"
}

cmd_stop() {
  local i
  # Workers first, then the backend.
  for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do
    stop_pidfile "${PROCESSES[$i]}" "$BERTH_RUN/${PROCESSES[$i]}.pid" 30
  done
}

cmd_status() {
  local name state
  for name in "${PROCESSES[@]}"; do
    if pid_alive "$BERTH_RUN/$name.pid"; then state="running (pid $(cat "$BERTH_RUN/$name.pid"))"; else state=stopped; fi
    printf '  %-20s %s\n' "$name" "$state"
  done
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
