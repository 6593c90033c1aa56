#!/usr/bin/env bash
# The local stack berth runs against: PostgreSQL, RabbitMQ, tansu (Kafka
# protocol), a private image registry, podman's Docker-API socket, the edge
# router (Caddy, router.sh) and an SMTP sink, plus the
# locally made base images and the env file (.berth/berth.env).
#
# Usage: infra/local/stack.sh up|down|status|env|reset
#   up      install what is missing, start what is not running, build missing
#           base images, write .berth/berth.env (safe to run again)
#   down    stop the services (state in .berth/ is kept)
#   status  show what is running
#   env     print the env file's path
#   reset   down, then delete .berth/ (caches in /var/cache/berth are kept)
#   crash SERVICE SECONDS
#           kill postgres|rabbitmq|tansu|podman as a crash would and start it
#           again SECONDS later (named stacks only, see BERTH_STACK in lib.sh)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=router.sh
source "$BERTH_LIB_DIR/router.sh"

# ================================================================ secrets

load_secrets() {
  PG_PASSWORD="$(secret postgres-password gen_hex 16)"
  RMQ_PASSWORD="$(secret rabbitmq-password gen_hex 16)"
  declare -gA RMQ_PASSWORDS=()
  local user
  for user in "${!RMQ_READ[@]}"; do
    RMQ_PASSWORDS[$user]="$(secret "rabbitmq-$user-password" gen_hex 16)"
  done
  REGISTRY_HTTP_SECRET="$(secret registry-http-secret gen_hex 32)"
  JWT_SECRET="$(secret jwt-secret gen_hex 64)"
  SECRET_KEY="$(secret secret-key sh -c 'head -c32 /dev/urandom | base64 -w0')"
}

# ================================================================ postgres

pg_ready() { runuser -u postgres -- "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres; }
pg_running() { [[ -s $PG_DATA/PG_VERSION ]] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

# postgres_up [on|off]: the cluster PG_* names, with durable settings (on,
# the default) or without (off: the tests' own cluster).
postgres_up() {
  local durability=${1:-on}
  mkdir -p "$PG_DIR" "$PG_SOCK"
  chown postgres:postgres "$PG_DIR" "$PG_SOCK"
  chmod 700 "$PG_DIR"
  if [[ ! -s $PG_DATA/PG_VERSION ]]; then
    log "postgres: initdb $PG_DATA"
    rm -rf "$PG_DATA"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$BERTH_LOGS/postgres-initdb.log" 2>&1 \
      || { cat "$BERTH_LOGS/postgres-initdb.log" >&2; die "initdb failed"; }
    echo "include_if_exists = 'berth.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  local changed=0
  write_if_changed "$PG_DATA/berth.conf" <<EOF && changed=1
# Written by infra/local/stack.sh; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 300
shared_buffers = 256MB
fsync = $durability
synchronous_commit = $durability
full_page_writes = $durability
log_min_duration_statement = -1
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  chown postgres:postgres "$PG_DATA/berth.conf"
  # The server writes its log itself, as postgres: into its own folder, since
  # the logs folder is root's alone (private_state).
  touch "$PG_LOG" && chown postgres:postgres "$PG_LOG"

  if pg_running; then
    if ((changed)); then
      log "postgres: configuration changed; restarting"
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
    else
      log "postgres: already running"
    fi
  fi
  if ! pg_running; then
    tcp_open 127.0.0.1 "$PG_PORT" && port_conflict postgres "$PG_PORT"
    log "postgres: starting on 127.0.0.1:$PG_PORT"
    # setsid: the postmaster must not get the terminal's Ctrl-C.
    setsid -w runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" \
      -w -t 60 start >/dev/null || { tail -n 20 "$PG_LOG" >&2; die "postgres did not start"; }
  fi
  wait_for "postgres" 60 pg_ready || die "postgres not ready"

  # Role and database (the password is hex: safe inside a SQL literal).
  pg_super -d postgres -q >/dev/null <<SQL
SELECT 'CREATE ROLE berth' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'berth') \gexec
ALTER ROLE berth WITH LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE berth OWNER berth' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'berth') \gexec
SQL
  ok "postgres: ready (127.0.0.1:$PG_PORT, role+db berth, durable: $durability)"
}

# The PG_* settings of the tests' own cluster (run it in a subshell).
use_test_cluster() {
  PG_PORT=$PG_TEST_PORT
  PG_DIR=$PG_TEST_DIR
  PG_DATA="$PG_DIR/data"
  PG_LOG="$PG_DIR/postgres.log"
  PG_SOCK="$PG_DIR/socket"
}

# The tests' cluster, on make up's stack only (see PG_TEST_PORT in lib.sh).
test_postgres_up() { [[ -n $BERTH_STACK ]] || (use_test_cluster && postgres_up off); }
test_postgres_down() { [[ -n $BERTH_STACK ]] || (use_test_cluster && postgres_down); }
test_pg_ready() { [[ -z $BERTH_STACK ]] && (use_test_cluster && pg_ready); }

postgres_down() {
  if pg_running; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
    log "postgres stopped"
  fi
}

# ================================================================ rabbitmq

# Ask epmd first: every rabbitmqctl call would start an epmd if none runs.
rmq_registered() { epmd -names 2>/dev/null | grep -q "^name ${RMQ_NODE%@*} "; }
rmq_ready() { rmq_registered && rmqctl -q status >/dev/null 2>&1; }

# Each vhost's quorum queues hold file handles; with the default soft limit
# of 1024 the node blocks new vhosts after ~90 of them. Debian's wrapper
# starts the node through `su rabbitmq`, whose pam_limits applies this file.
rabbitmq_file_limit() {
  local file=/etc/security/limits.d/berth-rabbitmq.conf limit
  limit=$(ulimit -Hn)
  [[ $limit == unlimited || $limit -gt 65536 ]] && limit=65536
  local want="rabbitmq soft nofile $limit
rabbitmq hard nofile $limit"
  [[ -f $file && $(cat "$file") == "$want" ]] || printf '%s\n' "$want" >"$file"
}

rabbitmq_up() {
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  local changed=0
  write_if_changed "$RMQ_DIR/rabbitmq.conf" <<EOF && changed=1
# Written by infra/local/stack.sh; edits are overwritten.
listeners.tcp.default = 127.0.0.1:$RMQ_PORT
# builds may run long: do not cancel a consumer holding an unacked delivery for 2 h
consumer_timeout = 7200000
log.console = false
log.file.level = info
EOF
  # Erlang distribution (CLI <-> node) on loopback only.
  write_if_changed "$RMQ_DIR/advanced.config" <<<'[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].' && changed=1
  write_if_changed "$RMQ_DIR/enabled_plugins" <<<'[].' || true
  write_if_changed "$RMQ_DIR/rabbitmq-env.conf" <<<'# project node: settings come from the environment (see infra/local/lib.sh)' || true
  # The Debian scripts run the node and the CLI as the rabbitmq user.
  chown -R rabbitmq:rabbitmq "$RMQ_DIR"

  # Same node name from another checkout (its pid file is not ours)?
  if rmq_registered && ! pid_alive "$RMQ_DIR/berth.pid"; then
    die "rabbitmq: a node named $RMQ_NODE is already running, but not from this checkout ($(port_owner "$RMQ_PORT")). Stop it there with 'infra/local/stack.sh down'."
  fi
  tcp_open 127.0.0.1 "$RMQ_PORT" && ! rmq_registered && port_conflict rabbitmq "$RMQ_PORT"
  if ((changed)) && rmq_ready; then
    log "rabbitmq: configuration changed; restarting"
    rabbitmq_down
  fi
  if rmq_ready; then
    log "rabbitmq: already running"
  else
    log "rabbitmq: starting node $RMQ_NODE on 127.0.0.1:$RMQ_PORT"
    rabbitmq_file_limit
    (rmq_env && cd "$RMQ_DIR" && setsid -w /usr/sbin/rabbitmq-server -detached) \
      >>"$BERTH_LOGS/rabbitmq-start.log" 2>&1 || true
    wait_for "rabbitmq" 120 rmq_ready || { tail -n 30 "$BERTH_LOGS/rabbitmq-start.log" >&2; die "rabbitmq did not start"; }
  fi
  rmqctl -q await_startup >/dev/null
  # The node makes guest/guest, an administrator reachable from loopback,
  # on first boot: nothing of berth's uses it.
  if rmqctl -q list_users | awk '{print $1}' | grep -qx guest; then
    rmqctl -q delete_user guest >/dev/null
    log "rabbitmq: deleted the default guest user"
  fi
  # berth: the tests' and operators' user; it has rights only on the test
  # vhosts that tests grant it, none on the platform's own vhost.
  rmq_user berth "$RMQ_PASSWORD"
  rmqctl -q clear_permissions -p / berth >/dev/null 2>&1 || true
  local user
  for user in $(printf "%s\n" "${!RMQ_READ[@]}" | sort); do
    rmq_user "$user" "${RMQ_PASSWORDS[$user]}"
    rmqctl -q set_permissions -p / "$user" "$RMQ_CONFIGURE" "$RMQ_WRITE" "${RMQ_READ[$user]}" >/dev/null
  done
  ok "rabbitmq: ready ($RMQ_NODE, 127.0.0.1:$RMQ_PORT, a user per process, no guest)"
}

# rmq_user NAME PASSWORD: the user exists with this password and no tags.
rmq_user() {
  local name=$1 password=$2
  if ! rmqctl -q authenticate_user "$name" "$password" >/dev/null 2>&1; then
    if rmqctl -q list_users | awk '{print $1}' | grep -qx "$name"; then
      rmqctl -q change_password "$name" "$password" >/dev/null
    else
      rmqctl -q add_user "$name" "$password" >/dev/null
    fi
  fi
  rmqctl -q set_user_tags "$name" >/dev/null
}

rabbitmq_down() {
  # Only our node (another checkout's node has the same name).
  if pid_alive "$RMQ_DIR/berth.pid" && rmq_ready; then
    rmqctl -q stop "$RABBITMQ_PID_FILE_PATH" >/dev/null 2>&1 || rmqctl -q stop >/dev/null 2>&1 || true
    log "rabbitmq stopped"
  fi
  # The node started epmd; stop it too unless another Erlang node still uses it.
  if command -v epmd >/dev/null && epmd -names >/dev/null 2>&1 && ! epmd -names 2>/dev/null | grep -q '^name '; then
    epmd -kill >/dev/null 2>&1 || true
  fi
}
RABBITMQ_PID_FILE_PATH="$RMQ_DIR/berth.pid"

# ================================================================ tansu

kafka_ready() { tcp_open 127.0.0.1 "$KAFKA_PORT"; }

tansu_up() {
  [[ -x $TANSU_BIN ]] || "$BERTH_LIB_DIR/install.sh" tansu
  mkdir -p "$TANSU_DIR"
  if pid_alive "$BERTH_RUN/tansu.pid" && kafka_ready; then
    log "tansu: already running"
  else
    kafka_ready && port_conflict tansu "$KAFKA_PORT"
    start_bg tansu "$BERTH_RUN/tansu.pid" "$BERTH_LOGS/tansu.log" "$TANSU_DIR" \
      "$TANSU_BIN" broker \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine "sqlite://tansu.db"
    wait_for "tansu" 60 kafka_ready || { tail -n 30 "$BERTH_LOGS/tansu.log" >&2; die "tansu did not start"; }
  fi
  ok "tansu: ready (127.0.0.1:$KAFKA_PORT, sqlite storage in ${TANSU_DIR#"$BERTH_ROOT"/})"
}

tansu_down() { stop_pidfile tansu "$BERTH_RUN/tansu.pid"; }

# ================================================================ smtp sink

# Debian's python3 (aiosmtpd is a Debian package), not a pyenv one on PATH.
smtp_ready() { tcp_open 127.0.0.1 "$SMTP_PORT"; }

smtp_up() {
  # A Maildir: aiosmtpd creates the subfolders only when the folder is new.
  mkdir -p "$MAIL_DIR/tmp" "$MAIL_DIR/new" "$MAIL_DIR/cur"
  if pid_alive "$BERTH_RUN/smtp.pid" && smtp_ready; then
    log "smtp sink: already running"
  else
    smtp_ready && port_conflict "smtp sink" "$SMTP_PORT"
    start_bg smtp "$BERTH_RUN/smtp.pid" "$BERTH_LOGS/smtp.log" "$MAIL_DIR" \
      /usr/bin/python3 -m aiosmtpd --nosetuid --listen "127.0.0.1:$SMTP_PORT" \
      --class aiosmtpd.handlers.Mailbox "$MAIL_DIR"
    wait_for "smtp sink" 30 smtp_ready || { tail -n 30 "$BERTH_LOGS/smtp.log" >&2; die "smtp sink did not start"; }
  fi
  ok "smtp sink: ready (smtp://127.0.0.1:$SMTP_PORT, every message kept in ${MAIL_DIR#"$BERTH_ROOT"/})"
}

smtp_down() { stop_pidfile smtp "$BERTH_RUN/smtp.pid"; }

# ================================================================ registry

registry_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$REGISTRY_ADDR/v2/" || true; }
registry_ready() { [[ $(registry_code) == 401 ]]; }

# The key registry tokens are signed with (P-256, PKCS#8) and its self-signed
# certificate, the registry's rootcertbundle. The backend signs with the key;
# the registry trusts tokens whose x5c chain is this certificate. Root only.
registry_token_keys() {
  ensure_dirs
  local key=$REGISTRY_TOKEN_KEY crt=$REGISTRY_TOKEN_CERT
  if [[ ! -s $key ]]; then
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key.tmp" 2>/dev/null \
      && mv -f "$key.tmp" "$key") || die "could not make the registry token key"
    rm -f "$crt"
  fi
  # A certificate of another key (a key made again) is made again too.
  if [[ ! -s $crt ]] || [[ $(openssl x509 -noout -pubkey -in "$crt" 2>/dev/null) != "$(openssl pkey -pubout -in "$key" 2>/dev/null)" ]]; then
    (umask 077 && openssl req -new -x509 -key "$key" -out "$crt.tmp" -days 3650 \
      -subj "/CN=berth registry token issuer" 2>/dev/null && mv -f "$crt.tmp" "$crt") \
      || die "could not make the registry token certificate"
  fi
  chmod 600 "$key" "$crt"
}

registry_up() {
  mkdir -p "$REGISTRY_DIR/data"
  # Every tenant's images: root only.
  chmod 700 "$REGISTRY_DIR"
  registry_token_keys
  # No shared password user any more: every client presents a per-tenant grant.
  rm -f "$REGISTRY_DIR/htpasswd"
  local changed=0
  (umask 077 && write_if_changed "$REGISTRY_DIR/config.yml") <<EOF && changed=1
# Written by infra/local/stack.sh; edits are overwritten.
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  secret: $REGISTRY_HTTP_SECRET
  headers:
    X-Content-Type-Options: [nosniff]
# Token authentication with berth's backend as the issuer: clients present a
# per-tenant grant to the realm and get a token for that tenant's
# repositories only (berth_common::registry_auth).
auth:
  token:
    realm: $REGISTRY_TOKEN_REALM
    service: $REGISTRY_SERVICE
    issuer: $REGISTRY_TOKEN_ISSUER
    rootcertbundle: $REGISTRY_TOKEN_CERT
EOF
  # The certificate is read at start only.
  [[ $REGISTRY_TOKEN_CERT -nt $BERTH_RUN/registry.pid ]] && changed=1
  if ((changed)) && pid_alive "$BERTH_RUN/registry.pid"; then
    log "registry: configuration changed; restarting"
    stop_pidfile registry "$BERTH_RUN/registry.pid"
  fi
  if pid_alive "$BERTH_RUN/registry.pid" && registry_ready; then
    log "registry: already running"
  else
    [[ $(registry_code) != 000 ]] && port_conflict registry "${REGISTRY_ADDR##*:}"
    # Blobs of the images berth's retention deleted go here: Distribution
    # collects garbage only while no registry serves the storage.
    if [[ ! -d $REGISTRY_DIR/data/docker/registry/v2/repositories ]]; then
      : # nothing pushed yet, nothing to collect
    elif docker-registry garbage-collect "$REGISTRY_DIR/config.yml" >>"$BERTH_LOGS/registry-gc.log" 2>&1; then
      log "registry: garbage collected ($(du -sh "$REGISTRY_DIR/data" 2>/dev/null | cut -f1) stored)"
    else
      warn "registry: garbage collection failed (see $BERTH_LOGS/registry-gc.log); starting anyway"
    fi
    start_bg registry "$BERTH_RUN/registry.pid" "$BERTH_LOGS/registry.log" "$REGISTRY_DIR" \
      docker-registry serve "$REGISTRY_DIR/config.yml"
    wait_for "registry" 30 registry_ready || { tail -n 30 "$BERTH_LOGS/registry.log" >&2; die "registry did not start"; }
  fi
  ok "registry: ready (http://$REGISTRY_ADDR, token auth, realm $REGISTRY_TOKEN_REALM)"
}

registry_down() { stop_pidfile registry "$BERTH_RUN/registry.pid"; }

# ================================================================ podman

podman_ready() { [[ $(curl -s --max-time 3 --unix-socket "$PODMAN_SOCK" http://d/v1.41/_ping 2>/dev/null) == OK ]]; }

# Native overlayfs on the storage's filesystem? (ext4/xfs: yes; overlay-on-overlay: no)
overlay_works() {
  local t
  t="$(mktemp -d "$PODMAN_DIR/overlay-probe.XXXXXX")"
  mkdir -p "$t/lower" "$t/upper" "$t/work" "$t/merged"
  echo probe >"$t/lower/f"
  local rc=0
  unshare -m sh -c "mount -t overlay overlay -o lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work $t/merged \
    && echo x >>$t/merged/f && umount $t/merged" >/dev/null 2>&1 || rc=1
  rm -rf "$t"
  return $rc
}

podman_configure() {
  mkdir -p "$PODMAN_DIR/storage" "$PODMAN_DIR/run" "$PODMAN_DIR/tmp"
  # runroot and tmp_dir hold per-boot state: clear them after a reboot.
  local boot_id
  boot_id="$(cat /proc/sys/kernel/random/boot_id)"
  if [[ -f $PODMAN_DIR/boot_id && $(cat "$PODMAN_DIR/boot_id") != "$boot_id" ]]; then
    log "podman: machine rebooted since last start; clearing runroot"
    rm -rf "${PODMAN_DIR:?}/run" "${PODMAN_DIR:?}/tmp"
    mkdir -p "$PODMAN_DIR/run" "$PODMAN_DIR/tmp"
  fi
  echo "$boot_id" >"$PODMAN_DIR/boot_id"

  # The storage driver is chosen once (changing it later would orphan images).
  if [[ ! -s $PODMAN_DIR/driver ]]; then
    if overlay_works; then echo overlay >"$PODMAN_DIR/driver"; else echo vfs >"$PODMAN_DIR/driver"; fi
    log "podman: storage driver $(cat "$PODMAN_DIR/driver")"
  fi
  local driver
  driver="$(cat "$PODMAN_DIR/driver")"

  write_if_changed "$PODMAN_DIR/containers.conf" <<EOF || true
# Written by infra/local/stack.sh (see /work/shared/ENVIRONMENT.md).
# crun fails on this host (cgroups hybrid mode) and raising RLIMIT_NOFILE is
# not permitted, hence runc and no default ulimits.
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
tmp_dir = "$PODMAN_DIR/tmp"
EOF
  write_if_changed "$PODMAN_DIR/storage.conf" <<EOF || true
# Written by infra/local/stack.sh.
[storage]
driver = "$driver"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
EOF
  # Plain http to registries on this machine, on any port: the stack's, and
  # the ones tests start on random ports. Podman 4.3 (containers/image)
  # applies a location without a port to every port of that host.
  write_if_changed "$PODMAN_DIR/registries.conf" <<EOF && PODMAN_RESTART=1 || true
# Written by infra/local/stack.sh. Nothing can be pulled from public registries
# here, so no short names are resolved against them.
unqualified-search-registries = []

[[registry]]
location = "${REGISTRY_ADDR%%:*}"
insecure = true

[[registry]]
location = "localhost"
insecure = true
EOF
}

podman_up() {
  PODMAN_RESTART=0
  podman_configure
  # The service reads registries.conf once.
  if ((PODMAN_RESTART)) && pid_alive "$BERTH_RUN/podman.pid"; then
    log "podman: registries.conf changed; restarting the API service"
    stop_pidfile podman "$BERTH_RUN/podman.pid" 5
  fi
  if pid_alive "$BERTH_RUN/podman.pid" && podman_ready; then
    log "podman: API service already running"
  else
    stop_pidfile podman "$BERTH_RUN/podman.pid" 5
    rm -f "$PODMAN_SOCK"
    start_bg podman "$BERTH_RUN/podman.pid" "$BERTH_LOGS/podman.log" "$PODMAN_DIR" \
      env CONTAINERS_CONF="$PODMAN_DIR/containers.conf" \
          CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf" \
          CONTAINERS_REGISTRIES_CONF="$PODMAN_DIR/registries.conf" \
      podman system service --time=0 "unix://$PODMAN_SOCK"
    wait_for "podman API" 30 podman_ready || { tail -n 30 "$BERTH_LOGS/podman.log" >&2; die "podman API did not start"; }
  fi
  ok "podman: ready (unix://$PODMAN_SOCK, storage $(cat "$PODMAN_DIR/driver"))"
}

podman_down() { stop_pidfile podman "$BERTH_RUN/podman.pid"; rm -f "$PODMAN_SOCK"; }

# ================================================================ env file

# Base image settings: a value already set in the environment wins (pointing
# berth at other images is one setting each); otherwise the local images.
declare -A BASE_IMAGE_DEFAULTS=(
  [PYTHON]=localhost/berth/python:bookworm
  [NODE]=localhost/berth/node:bookworm
  [GO]=localhost/berth/go:bookworm
  [RUST]=localhost/berth/rust:bookworm
  [STATIC]=localhost/berth/static:latest
)
BASE_IMAGE_ORDER=(PYTHON STATIC NODE GO RUST)

base_image_value() { local v="BERTH_BASE_IMAGE_$1"; echo "${!v:-${BASE_IMAGE_DEFAULTS[$1]}}"; }

emit() {
  local name=$1 value=$2
  if [[ $value =~ ^[A-Za-z0-9_./:@%+=,-]*$ ]]; then
    printf 'export %s=%s\n' "$name" "$value"
  else
    printf 'export %s=%q\n' "$name" "$value"
  fi
}

write_helpers() {
  mkdir -p "$BERTH_STATE/bin"
  # rabbitmqctl bound to the project node, for tests and humans.
  cat >"$BERTH_STATE/bin/rabbitmqctl" <<EOF
#!/usr/bin/env bash
# Generated by infra/local/stack.sh: rabbitmqctl against the project node.
source "$BERTH_LIB_DIR/lib.sh"
rmq_env
exec /usr/sbin/rabbitmqctl "\$@"
EOF
  cat >"$BERTH_STATE/bin/podman" <<EOF
#!/usr/bin/env bash
# Generated by infra/local/stack.sh: podman with the project's storage and config.
source "$BERTH_LIB_DIR/lib.sh"
podman_env
exec /usr/bin/podman "\$@"
EOF
  chmod 755 "$BERTH_STATE/bin/rabbitmqctl" "$BERTH_STATE/bin/podman"
}

write_env_file() {
  mkdir -p "$BERTH_STATE/work" "$BERTH_STATE/log-streamer" "$BERTH_STATE/repos"
  write_helpers
  local k
  {
    echo "# Generated by infra/local/stack.sh — do not edit; re-run 'make up' instead."
    echo "# Source it: . $BERTH_ENV_FILE_PATH"
    emit BERTH_DATABASE_URL "postgres://berth:$PG_PASSWORD@127.0.0.1:$PG_PORT/berth"
    echo "# Where the tests create their databases: their own cluster, without fsync,"
    echo "# on make up's stack; the durable one on a named stack."
    local admin_port=$PG_PORT
    [[ -z $BERTH_STACK ]] && admin_port=$PG_TEST_PORT
    emit BERTH_PG_ADMIN_URL "postgres://berth:$PG_PASSWORD@127.0.0.1:$admin_port/postgres"
    echo "# The tests' broker user (rights only on the vhosts tests make); each process has its own:"
    emit BERTH_AMQP_URL "amqp://berth:$RMQ_PASSWORD@127.0.0.1:$RMQ_PORT/%2f"
    local user var
    for user in $(printf "%s\n" "${!RMQ_READ[@]}" | sort); do
      var="$(echo "${user#berth-}" | tr 'a-z-' 'A-Z_')"
      emit "BERTH_AMQP_URL_$var" "amqp://$user:${RMQ_PASSWORDS[$user]}@127.0.0.1:$RMQ_PORT/%2f"
      emit "BERTH_AMQP_READ_$var" "${RMQ_READ[$user]}"
    done
    echo "# What every process may declare (configure) and publish/bind (write); tests grant the same."
    emit BERTH_AMQP_CONFIGURE "$RMQ_CONFIGURE"
    emit BERTH_AMQP_WRITE "$RMQ_WRITE"
    emit BERTH_KAFKA_BROKERS "127.0.0.1:$KAFKA_PORT"
    echo "# tansu 0.6's DeleteTopics deletes every topic, not the one named: keep the topics"
    echo "# of deleted apps (their records still expire with retention.ms)."
    emit BERTH_LOG_TOPIC_DELETE false
    echo "# For tests that need a broker of their own."
    emit BERTH_TANSU_BIN "$TANSU_BIN"
    emit BERTH_SECRET_KEY "$SECRET_KEY"
    emit BERTH_JWT_SECRET "$JWT_SECRET"
    emit BERTH_DOCKER_HOST "unix://$PODMAN_SOCK"
    emit BERTH_REGISTRY "$REGISTRY_ADDR"
    echo "# The registry's token service is the backend (the realm); it signs with this key:"
    emit BERTH_REGISTRY_TOKEN_KEY "$REGISTRY_TOKEN_KEY"
    emit BERTH_REGISTRY_TOKEN_CERT "$REGISTRY_TOKEN_CERT"
    emit BERTH_REGISTRY_SERVICE "$REGISTRY_SERVICE"
    emit BERTH_REGISTRY_TOKEN_ISSUER "$REGISTRY_TOKEN_ISSUER"
    for k in "${BASE_IMAGE_ORDER[@]}"; do
      emit "BERTH_BASE_IMAGE_$k" "$(base_image_value "$k")"
    done
    emit BERTH_BUILD_CA_BUNDLE /etc/ssl/certs/ca-certificates.crt
    emit BERTH_ALLOW_LOCAL_REPOS true
    echo "# Local repositories are built only from inside this folder (tests make theirs here):"
    emit BERTH_LOCAL_REPO_ROOT "$BERTH_STATE/repos"
    router_env
    emit BERTH_LISTEN "$BACKEND_ADDR"
    emit BERTH_PUBLIC_URL "http://$BACKEND_ADDR"
    emit BERTH_SMTP_URL "smtp://127.0.0.1:$SMTP_PORT"
    emit BERTH_MAIL_FROM berth@localhost
    echo "# The SMTP sink's Maildir (local only; tests read password-reset mail there):"
    emit BERTH_MAIL_DIR "$MAIL_DIR"
    emit BERTH_WORK_DIR "$BERTH_STATE/work"
    emit BERTH_LOG_STREAMER_STATE_DIR "$BERTH_STATE/log-streamer"
    echo "# rabbitmqctl (plain or \$RABBITMQCTL) talks to the project node with these:"
    emit RABBITMQCTL "$BERTH_STATE/bin/rabbitmqctl"
    (
      rmq_env
      for k in RABBITMQ_NODENAME RABBITMQ_NODE_IP_ADDRESS RABBITMQ_NODE_PORT RABBITMQ_CONFIG_FILE \
               RABBITMQ_ADVANCED_CONFIG_FILE RABBITMQ_CONF_ENV_FILE RABBITMQ_ENABLED_PLUGINS_FILE \
               RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE RABBITMQ_PID_FILE ERL_EPMD_ADDRESS; do
        emit "$k" "${!k}"
      done
    )
    echo "# podman (plain or .berth/bin/podman) uses the project's storage with these:"
    emit CONTAINERS_CONF "$PODMAN_DIR/containers.conf"
    emit CONTAINERS_STORAGE_CONF "$PODMAN_DIR/storage.conf"
    emit CONTAINERS_REGISTRIES_CONF "$PODMAN_DIR/registries.conf"
  } | (umask 077 && write_if_changed "$BERTH_ENV_FILE_PATH") || true
  chmod 600 "$BERTH_ENV_FILE_PATH"
}

# ================================================================ another checkout's stack

# The ports and the RabbitMQ node name are fixed, so one stack runs per machine.
# When another checkout's stack is already up (a CI clone next to a developer's
# checkout), this checkout uses it instead of failing: its env file is copied
# with this checkout's own work dirs. BERTH_STACK_SHARE=0 turns this off.
SHARED_MARKER="$BERTH_STATE/shared-from"

# Prints the root of the checkout whose postgres serves $PG_PORT, if not ours.
foreign_stack_root() {
  local pid cwd root
  pid="$(ss -ltnpH "sport = :$PG_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)"
  [[ -n $pid ]] || return 1
  cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)" || return 1     # <root>/.berth/postgres/data
  [[ $cwd == */.berth/postgres/data ]] || return 1
  root="${cwd%/.berth/postgres/data}"
  [[ $root != "$BERTH_ROOT" && -f $root/.berth/berth.env ]] || return 1
  echo "$root"
}

share_foreign_stack() {
  local other=$1 other_env="$1/.berth/berth.env"
  log "the stack of $other is running on this machine's fixed ports: using it (stop it there to run this checkout's own)"
  local sock
  # shellcheck disable=SC1090
  sock="$(. "$other_env" && echo "${BERTH_DOCKER_HOST#unix://}")"
  pg_ready || die "postgres of $other is not ready"
  rmq_registered || die "rabbitmq of $other is not running"
  kafka_ready || die "tansu of $other is not running"
  registry_ready || die "registry of $other is not running"
  [[ $(curl -s --max-time 3 --unix-socket "$sock" http://d/v1.41/_ping 2>/dev/null) == OK ]] \
    || die "podman API of $other is not running"
  ensure_dirs
  mkdir -p "$BERTH_STATE/work" "$BERTH_STATE/log-streamer" "$BERTH_STATE/repos"
  sed -e "s|^export BERTH_WORK_DIR=.*|export BERTH_WORK_DIR=$BERTH_STATE/work|" \
      -e "s|^export BERTH_LOG_STREAMER_STATE_DIR=.*|export BERTH_LOG_STREAMER_STATE_DIR=$BERTH_STATE/log-streamer|" \
      -e "/^export BERTH_LOCAL_REPO_ROOT=/d" \
      -e "\$a export BERTH_LOCAL_REPO_ROOT=$BERTH_STATE/repos" \
      -e "1a # Shared: the services are those of $other." \
      "$other_env" | (umask 077 && write_if_changed "$BERTH_ENV_FILE_PATH") || true
  echo "$other" >"$SHARED_MARKER"
  private_state
  echo
  echo "berth local stack: shared with $other"
  echo "  env file: $BERTH_ENV_FILE_PATH"
  echo
}

# ================================================================ commands

cmd_up() {
  need_root
  local t0=$SECONDS other
  ensure_dirs
  "$BERTH_LIB_DIR/install.sh" packages
  if [[ -z $BERTH_STACK ]] && ! pg_running && [[ ${BERTH_STACK_SHARE:-1} != 0 ]] && other="$(foreign_stack_root)"; then
    share_foreign_stack "$other"
    return 0
  fi
  rm -f "$SHARED_MARKER"
  load_secrets
  postgres_up on
  test_postgres_up
  rabbitmq_up
  smtp_up
  registry_up
  podman_up
  router_up
  build_user_up
  # The tansu build (first run only) is the long pole: make the base images
  # while waiting for it when it still has to be built.
  local k wanted=()
  for k in "${BASE_IMAGE_ORDER[@]}"; do
    [[ $(base_image_value "$k") == "${BASE_IMAGE_DEFAULTS[$k]}" ]] && wanted+=("${k,,}")
  done
  if [[ -x $TANSU_BIN ]]; then
    tansu_up
    ((${#wanted[@]})) && "$BERTH_LIB_DIR/base-images.sh" "${wanted[@]}"
  else
    local img_pid=
    if ((${#wanted[@]})); then
      "$BERTH_LIB_DIR/base-images.sh" "${wanted[@]}" &
      img_pid=$!
    fi
    tansu_up
    [[ -n $img_pid ]] && { wait "$img_pid" || die "base images failed"; }
  fi
  write_env_file
  private_state
  summary
  ok "stack up in $((SECONDS - t0))s"
}

cmd_down() {
  need_root
  if [[ -f $SHARED_MARKER ]]; then
    log "this checkout uses the stack of $(cat "$SHARED_MARKER"); nothing of its own to stop"
    rm -f "$SHARED_MARKER"
    return 0
  fi
  router_down
  podman_down
  registry_down
  smtp_down
  tansu_down
  rabbitmq_down
  test_postgres_down
  postgres_down
}

# crash SERVICE DOWN_SECONDS — the service dies the way a crash kills it
# (SIGKILL; PostgreSQL's immediate stop, which skips the shutdown checkpoint;
# RabbitMQ's stop_app), stays down DOWN_SECONDS, and starts again. Only on a
# named stack (BERTH_STACK): the fault suite's faults.
cmd_crash() {
  need_root
  [[ -n $BERTH_STACK ]] || die "crash runs on a named stack only (BERTH_STACK=chaos), never on make up's"
  local service=${1:-} down=${2:-5}
  load_secrets
  case $service in
    postgres)
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
      sleep "$down"
      postgres_up on ;;
    rabbitmq)
      rmqctl -q stop_app >/dev/null
      sleep "$down"
      rmqctl -q start_app >/dev/null
      rmqctl -q await_startup >/dev/null
      ok "rabbitmq: running again" ;;
    tansu|podman)
      local pidfile="$BERTH_RUN/$service.pid"
      pid_alive "$pidfile" && kill -KILL "$(tr -d ' \n' <"$pidfile")"
      rm -f "$pidfile"
      sleep "$down"
      "${service}_up" ;;
    *) die "crash: no service '$service' (postgres, rabbitmq, tansu, podman)" ;;
  esac
}

line() { printf '  %-10s %-8s %s\n' "$1" "$2" "$3"; }
updown() { if "$@" >/dev/null 2>&1; then echo up; else echo down; fi; }

cmd_status() {
  if [[ -f $SHARED_MARKER ]]; then
    echo "  (services shared with $(cat "$SHARED_MARKER"))"
    PODMAN_DIR="$(cat "$SHARED_MARKER")/.berth/podman"
    PODMAN_SOCK="$(cat "$SHARED_MARKER")/.berth/run/podman.sock"
  fi
  line postgres "$(updown pg_ready)" "127.0.0.1:$PG_PORT  data ${PG_DIR#"$BERTH_ROOT"/}"
  [[ -z $BERTH_STACK ]] && line pg-tests "$(updown test_pg_ready)" "127.0.0.1:$PG_TEST_PORT  data ${PG_TEST_DIR#"$BERTH_ROOT"/} (no fsync)"
  line rabbitmq "$(updown rmq_ready)" "127.0.0.1:$RMQ_PORT  node $RMQ_NODE"
  line tansu "$(updown kafka_ready)" "127.0.0.1:$KAFKA_PORT  $TANSU_BIN"
  line registry "$(updown registry_ready)" "http://$REGISTRY_ADDR  token auth, realm $REGISTRY_TOKEN_REALM"
  line smtp "$(updown smtp_ready)" "smtp://127.0.0.1:$SMTP_PORT  mail ${MAIL_DIR#"$BERTH_ROOT"/}"
  line podman "$(updown podman_ready)" "unix://$PODMAN_SOCK"
  line router "$(updown router_ready)" ":$ROUTER_PORT  admin unix://$ROUTER_SOCK"
  local k img
  if podman_ready; then
    for k in "${BASE_IMAGE_ORDER[@]}"; do
      img="$(base_image_value "$k")"
      line "image" "$(updown bpodman image exists "$img")" "$img"
    done
  fi
  [[ -f $BERTH_ENV_FILE_PATH ]] && echo "  env file: $BERTH_ENV_FILE_PATH" || echo "  env file: (not written yet: run 'make up')"
}

summary() {
  echo
  echo "berth local stack:"
  cmd_status
  echo "  use it:   . $BERTH_ENV_FILE_PATH"
  echo
}

cmd_reset() {
  need_root
  cmd_down
  if [[ -d $PODMAN_DIR/storage ]]; then
    log "removing podman containers and storage"
    bpodman system reset --force >/dev/null 2>&1 || true
  fi
  # Never rm -rf through a live mount (overlay layers, container shm, ...).
  local m
  while read -r m; do
    [[ -n $m ]] && umount -l "$m" 2>/dev/null || true
  done < <(findmnt -rn -o TARGET | grep -F "$BERTH_STATE/" | sort -r)
  rm -rf "${BERTH_STATE:?}"
  ok "removed $BERTH_STATE (caches in $BERTH_CACHE kept)"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "$BERTH_ENV_FILE_PATH" ;;
  reset) cmd_reset ;;
  crash) shift; cmd_crash "$@" ;;
  *) echo "usage: $0 up|down|status|env|reset|crash SERVICE SECONDS" >&2; exit 2 ;;
esac
