# shellcheck shell=bash
# The edge router of the local stack (sourced by stack.sh): Caddy, from
# Debian, in front of every app and of berth's own UI. berth drives it
# through its admin API on a unix socket in the stack's run folder (root's
# alone: whoever opens it controls every app's traffic); Caddy's default
# admin endpoint, an unauthenticated TCP port, is never opened. The routes
# themselves are berth's: the deploy-worker writes them and its reconciler
# puts them back, so a router that starts empty fills again.

ROUTER_DIR="$BERTH_STATE/router"
ROUTER_SOCK="$BERTH_RUN/router-admin.sock"
# Apps' traffic, on every interface, so that a public server needs no more
# setup: port 80 on make up's stack (BERTH_ROUTER_PORT overrides it).
ROUTER_PORT="${BERTH_ROUTER_PORT:-$((80 + PORT_OFFSET))}"
# HTTPS (certificates over ACME, Let's Encrypt unless BERTH_ACME_DIRECTORY
# says otherwise): on when the apps domain is a real one, so apps' own
# names, the console and custom domains get certificates; or on any port
# BERTH_ROUTER_TLS_PORT names (custom domains only, with a localhost apps
# domain). Names under localhost cannot get a certificate.
ROUTER_TLS_PORT="${BERTH_ROUTER_TLS_PORT:-}"
case "${BERTH_APPS_DOMAIN:-localhost}" in
  localhost | *.localhost | "") ;;
  *) ROUTER_TLS_PORT="${ROUTER_TLS_PORT:-$((443 + PORT_OFFSET))}" ;;
esac

router_ready() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 --unix-socket "$ROUTER_SOCK" \
    -H 'Host: ' http://router/config/ 2>/dev/null) == 200 ]]
}

router_up() {
  mkdir -p "$ROUTER_DIR/config" "$ROUTER_DIR/data"
  chmod 700 "$ROUTER_DIR"
  # Only the admin endpoint is configured here; --resume starts from the
  # configuration berth last wrote (autosave.json), so apps answer at once
  # after a restart, before the reconciler has checked every route.
  printf '%s\n' "{\"admin\": {\"listen\": \"unix/$ROUTER_SOCK\", \"config\": {\"persist\": true}}," \
    " \"storage\": {\"module\": \"file_system\", \"root\": \"$ROUTER_DIR/data\"}}" \
    | write_if_changed "$ROUTER_DIR/caddy.json" || true
  if pid_alive "$BERTH_RUN/router.pid" && router_ready; then
    log "router: already running"
  else
    stop_pidfile router "$BERTH_RUN/router.pid" 5
    tcp_open 127.0.0.1 "$ROUTER_PORT" && port_conflict router "$ROUTER_PORT"
    if [[ -n $ROUTER_TLS_PORT ]] && tcp_open 127.0.0.1 "$ROUTER_TLS_PORT"; then
      port_conflict router "$ROUTER_TLS_PORT"
    fi
    rm -f "$ROUTER_SOCK"
    start_bg router "$BERTH_RUN/router.pid" "$BERTH_LOGS/router.log" "$ROUTER_DIR" \
      env XDG_CONFIG_HOME="$ROUTER_DIR/config" XDG_DATA_HOME="$ROUTER_DIR/data" HOME="$ROUTER_DIR" \
      caddy run --config "$ROUTER_DIR/caddy.json" --resume
    wait_for "router" 30 router_ready || { tail -n 30 "$BERTH_LOGS/router.log" >&2; die "router did not start"; }
  fi
  ok "router: ready (apps on :$ROUTER_PORT, admin unix://$ROUTER_SOCK)"
}

router_down() { stop_pidfile router "$BERTH_RUN/router.pid"; rm -f "$ROUTER_SOCK"; }

# The router's part of the env file.
router_env() {
  echo "# The edge router (Caddy): apps answer on http://<app>.<tenant>.\$BERTH_APPS_DOMAIN,"
  echo "# berth's UI and API on http://\$BERTH_CONSOLE_HOST as well."
  emit BERTH_ROUTER_ADMIN_SOCKET "$ROUTER_SOCK"
  emit BERTH_ROUTER_LISTEN ":$ROUTER_PORT"
  emit BERTH_APPS_DOMAIN "${BERTH_APPS_DOMAIN:-localhost}"
  emit BERTH_CONSOLE_HOST "${BERTH_CONSOLE_HOST:-berth.localhost}"
  emit BERTH_CONSOLE_UPSTREAM "$BACKEND_ADDR"
  echo "# The router's access log, shipped into each app's log (source: router)."
  emit BERTH_ROUTER_ACCESS_LOG "$ROUTER_DIR/access.log"
  if [[ -n $ROUTER_TLS_PORT ]]; then
    echo "# HTTPS on the router; certificates on demand for names berth approves."
    emit BERTH_ROUTER_TLS_LISTEN ":$ROUTER_TLS_PORT"
    [[ -n ${BERTH_ACME_EMAIL:-} ]] && emit BERTH_ACME_EMAIL "$BERTH_ACME_EMAIL"
    [[ -n ${BERTH_ACME_DIRECTORY:-} ]] && emit BERTH_ACME_DIRECTORY "$BERTH_ACME_DIRECTORY"
  fi
  echo "# What custom domains point at (an IP: A record; a name: CNAME); unset: the app's own name."
  [[ -n ${BERTH_DOMAIN_TARGET:-} ]] && emit BERTH_DOMAIN_TARGET "$BERTH_DOMAIN_TARGET"
  true
  echo "# The router is the proxy whose X-Forwarded-For the backend believes."
  emit BERTH_TRUSTED_PROXIES "127.0.0.1,::1"
}
