# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Shared helpers for the local stack scripts (sourced, not executed).
#
# Paths: all project state lives in $BERTH_STATE (= <repo>/.berth, git-ignored);
# things that are slow to make and safe to share between clones on the same
# machine (the tansu binary, base image rootfs tarballs) live in $BERTH_CACHE.

BERTH_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BERTH_ROOT="$(cd "$BERTH_LIB_DIR/../.." && pwd)"
BERTH_CACHE="${BERTH_CACHE:-/var/cache/berth}"

# BERTH_STACK=NAME selects a second stack of this checkout, apart from the
# one `make up` and `make test` use: its own folder (.berth-NAME), its own
# ports (each one 10 higher) and RabbitMQ node, and a PostgreSQL with durable
# settings. `make chaos` runs on such a stack because it crashes and restarts
# the services, which must never be the developer's.
BERTH_STACK="${BERTH_STACK:-}"
[[ -z $BERTH_STACK || $BERTH_STACK =~ ^[a-z][a-z0-9]*$ ]] || { echo "BERTH_STACK must be a lowercase word" >&2; exit 2; }
if [[ -n $BERTH_STACK ]]; then
  BERTH_STATE="$BERTH_ROOT/.berth-$BERTH_STACK"
  PORT_OFFSET=10
else
  BERTH_STATE="$BERTH_ROOT/.berth"
  PORT_OFFSET=0
fi

BERTH_RUN="$BERTH_STATE/run"          # pid files, sockets
BERTH_LOGS="$BERTH_STATE/logs"
BERTH_SECRETS="$BERTH_STATE/secrets"
BERTH_ENV_FILE_PATH="$BERTH_STATE/berth.env"

# Service coordinates (fixed; the env file is generated from them).
PG_BIN="/usr/lib/postgresql/15/bin"
PG_PORT=$((54329 + PORT_OFFSET))
PG_DIR="$BERTH_STATE/postgres"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_SOCK="$PG_DIR/socket"
# The test suites' own cluster (make up's stack only): fsync and full-page
# writes are per cluster, so the platform's database can be durable while
# the tests, which create and drop a database per run, trade that for speed.
# A named stack has none: its suite must see what a durable database keeps.
PG_TEST_PORT=$((54328 + PORT_OFFSET))
PG_TEST_DIR="$BERTH_STATE/postgres-test"

RMQ_NODE="berth${BERTH_STACK:+-$BERTH_STACK}@localhost"
RMQ_PORT=$((5672 + PORT_OFFSET))
RMQ_DIR="$BERTH_STATE/rabbitmq"
# One broker user per berth process, with what it needs on the vhost: every
# process declares the topology (configure), publishes to the exchange and
# binds the queues (write), and reads only the queue it consumes (plus the
# exchanges it binds from). Tests grant the same to their own vhosts
# (berth_common::testing reads them from the env file).
RMQ_CONFIGURE='^berth(\..*)?$'
RMQ_WRITE='^berth(\..*)?$'
declare -A RMQ_READ=(
  [berth-backend]='^berth(\..*)?$'
  [berth-build-worker]='^berth(\.dlx|\.builds|\.control\..*)?$'
  [berth-deploy-worker]='^berth(\.dlx|\.deploys|\.reconcile|\.control\..*)?$'
)

TANSU_VERSION="0.6.0"
TANSU_ROOT="$BERTH_CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"
TANSU_TARGET="$BERTH_CACHE/tansu-target"
TANSU_DIR="$BERTH_STATE/tansu"
KAFKA_PORT=$((9092 + PORT_OFFSET))

REGISTRY_ADDR="127.0.0.1:$((5000 + PORT_OFFSET))"
REGISTRY_DIR="$BERTH_STATE/registry"
# Token authentication: the realm is the local backend (BERTH_LISTEN), which
# signs tokens with the key below; the registry trusts its certificate.
BACKEND_ADDR="127.0.0.1:$((8080 + PORT_OFFSET))"
REGISTRY_TOKEN_REALM="http://$BACKEND_ADDR/api/v1/registry/token"
REGISTRY_SERVICE="berth-registry"
REGISTRY_TOKEN_ISSUER="berth"
REGISTRY_TOKEN_KEY="$BERTH_SECRETS/registry-token.key"
REGISTRY_TOKEN_CERT="$BERTH_SECRETS/registry-token.crt"

# The SMTP sink: a real SMTP server (aiosmtpd) that delivers every message
# into a Maildir, where the tests read password-reset mail.
SMTP_PORT=$((2525 + PORT_OFFSET))
MAIL_DIR="$BERTH_STATE/mail"

PODMAN_DIR="$BERTH_STATE/podman"
PODMAN_SOCK="$BERTH_RUN/podman.sock"

BASE_IMAGE_CACHE="$BERTH_CACHE/base-images"

# Sandboxed builds run rootless podman as this unprivileged user, with an
# image store per tenant and a read-only store of base images under the
# build root (machine-wide, like the caches: every clone's worker uses it).
BUILD_USER="berth-build"
BUILD_ROOT="${BERTH_BUILD_ROOT:-/var/lib/berth-build}"
BUILD_BASE_STORE="$BUILD_ROOT/base"

# ---------------------------------------------------------------- logging

if [[ -t 2 ]]; then
  _c_dim=$'\e[2m' _c_red=$'\e[31m' _c_grn=$'\e[32m' _c_yel=$'\e[33m' _c_off=$'\e[0m'
else
  _c_dim='' _c_red='' _c_grn='' _c_yel='' _c_off=''
fi

log()  { printf '%s[%s]%s %s\n' "$_c_dim" "$(date +%H:%M:%S)" "$_c_off" "$*" >&2; }
ok()   { printf '%s[%s]%s %s%s%s\n' "$_c_dim" "$(date +%H:%M:%S)" "$_c_off" "$_c_grn" "$*" "$_c_off" >&2; }
warn() { printf '%s[%s]%s %sWARN: %s%s\n' "$_c_dim" "$(date +%H:%M:%S)" "$_c_off" "$_c_yel" "$*" "$_c_off" >&2; }
die()  { printf '%s[%s]%s %sERROR: %s%s\n' "$_c_dim" "$(date +%H:%M:%S)" "$_c_off" "$_c_red" "$*" "$_c_off" >&2; exit 1; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "this script installs packages and starts services: run it as root"
}

# wait_for DESCRIPTION TIMEOUT_SECONDS CMD...   — polls CMD every 0.5 s.
wait_for() {
  local desc=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      warn "timed out after ${timeout}s waiting for $desc"
      return 1
    fi
    sleep 0.5
  done
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# port_owner PORT — "pid N (command, in DIR)" of the local listener, if any.
port_owner() {
  local pid
  pid="$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)"
  [[ -n $pid ]] || { echo "an unknown process"; return 0; }
  echo "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80), in $(readlink "/proc/$pid/cwd" 2>/dev/null))"
}

# port_conflict NAME PORT — dies if PORT is taken by something this checkout did not start.
port_conflict() {
  die "$1: port $2 is taken by $(port_owner "$2"). Another checkout's stack? Stop it there with 'infra/local/stack.sh down'."
}

# ---------------------------------------------------------------- files

ensure_dirs() {
  mkdir -p "$BERTH_STATE" "$BERTH_RUN" "$BERTH_LOGS" "$BERTH_SECRETS"
  chmod 700 "$BERTH_SECRETS"
}

# Every folder of the stack that holds tenants' data or berth's secrets is
# root's alone: Kafka's database (every tenant's logs), the mail sink (reset
# links), the registry's blobs, the engine's storage and socket, logs, work
# folders. The state folder itself is only traversable, for the postgres and
# rabbitmq users whose folders (their own, mode 0700) live in it.
private_state() {
  chmod 711 "$BERTH_STATE"
  local dir
  for dir in "$BERTH_STATE"/*/; do
    dir="${dir%/}"
    case "$dir" in
      "$PG_DIR" | "$PG_TEST_DIR") chmod 700 "$dir" ;;
      "$RMQ_DIR") chown rabbitmq:rabbitmq "$dir"; chmod 700 "$dir" ;;
      *) chmod 700 "$dir" ;;
    esac
  done
}

# The unprivileged build user and its build root (0700, its own). useradd
# gives a non-system user /etc/subuid and /etc/subgid ranges, which
# rootless podman needs for its user namespaces.
build_user_up() {
  if ! id -u "$BUILD_USER" >/dev/null 2>&1; then
    useradd --create-home --home-dir "$BUILD_ROOT" --shell /usr/sbin/nologin \
      --comment "berth sandboxed builds" "$BUILD_USER"
    log "build user $BUILD_USER created"
  fi
  local file
  for file in /etc/subuid /etc/subgid; do
    grep -q "^$BUILD_USER:" "$file" 2>/dev/null \
      || usermod --add-subuids 200000-265535 --add-subgids 200000-265535 "$BUILD_USER"
  done
  mkdir -p "$BUILD_ROOT/run-base" "$BUILD_ROOT/runroot/base" "$BUILD_BASE_STORE"
  chown "$BUILD_USER:" "$BUILD_ROOT" "$BUILD_ROOT/run-base" "$BUILD_ROOT/runroot" \
    "$BUILD_ROOT/runroot/base" "$BUILD_BASE_STORE"
  chmod 700 "$BUILD_ROOT" "$BUILD_ROOT/run-base"
}

# write_if_changed FILE  (content on stdin). Returns 0 if the file changed.
write_if_changed() {
  local file=$1 tmp
  tmp="$(mktemp "$file.XXXXXX")"
  cat >"$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$file"
  return 0
}

# secret NAME GENERATOR-CMD...  — prints the secret, generating it once (mode 600).
secret() {
  local name=$1; shift
  local f="$BERTH_SECRETS/$name"
  if [[ ! -s $f ]]; then
    ensure_dirs
    (umask 077 && "$@" >"$f.tmp" && mv -f "$f.tmp" "$f")
  fi
  chmod 600 "$f"
  tr -d '\n' <"$f"
}

gen_hex() { head -c "$1" /dev/urandom | od -An -tx1 -v | tr -d ' \n'; }

# ---------------------------------------------------------------- processes

# pid_alive PIDFILE — true if the pid file names a live process.
pid_alive() {
  local pidfile=$1 pid
  [[ -s $pidfile ]] || return 1
  pid="$(tr -d ' \n' <"$pidfile")"
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# start_bg NAME PIDFILE LOGFILE WORKDIR CMD...
# Starts CMD detached (own session, survives the calling shell) and records its pid.
start_bg() {
  local name=$1 pidfile=$2 logfile=$3 workdir=$4; shift 4
  if pid_alive "$pidfile"; then
    log "$name already running (pid $(cat "$pidfile"))"
    return 0
  fi
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  printf '\n===== %s starting %s =====\n' "$(date -u +%FT%TZ)" "$name" >>"$logfile"
  (
    cd "$workdir" || exit 1
    exec setsid "$@" </dev/null >>"$logfile" 2>&1
  ) &
  echo $! >"$pidfile"
  log "$name started (pid $!, log ${logfile#"$BERTH_ROOT"/})"
}

# stop_pidfile NAME PIDFILE [TIMEOUT] — TERM, wait, then KILL. Removes the pid file.
stop_pidfile() {
  local name=$1 pidfile=$2 timeout=${3:-20} pid
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(tr -d ' \n' <"$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      warn "$name (pid $pid) did not stop in ${timeout}s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  log "$name stopped"
}

# ---------------------------------------------------------------- service CLIs

# Every rabbitmqctl call goes to our node with the same environment.
# The Debian wrapper (/usr/sbin/rabbitmqctl) switches to the rabbitmq user when
# run as root, so the node and the CLI share /var/lib/rabbitmq/.erlang.cookie.
rmq_env() {
  export RABBITMQ_NODENAME="$RMQ_NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$RMQ_PORT"
  export RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
  export RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$RMQ_DIR/log"
  export RABBITMQ_PID_FILE="$RMQ_DIR/berth.pid"
  export ERL_EPMD_ADDRESS=127.0.0.1   # an epmd started by the node listens on loopback only
}
rmqctl() { (rmq_env && /usr/sbin/rabbitmqctl "$@"); }

# psql as the postgres superuser over the project's unix socket.
pg_super() { runuser -u postgres -- "$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U postgres -X -v ON_ERROR_STOP=1 "$@"; }

# podman with the project's configuration and storage.
podman_env() {
  export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"
  export CONTAINERS_REGISTRIES_CONF="$PODMAN_DIR/registries.conf"
}
bpodman() { (podman_env && podman "$@"); }
# podman as the build user on the base image store sandboxed builds read.
build_podman() {
  (cd / && runuser -u "$BUILD_USER" -- env -i PATH=/usr/bin:/bin HOME="$BUILD_ROOT" \
    XDG_RUNTIME_DIR="$BUILD_ROOT/run-base" TMPDIR="$BUILD_ROOT/run-base" \
    podman --log-level=error --storage-driver=overlay --root "$BUILD_BASE_STORE" \
    --runroot "$BUILD_ROOT/runroot/base" "$@")
}
