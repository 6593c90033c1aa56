#!/usr/bin/env bash
# Installs what the local stack needs, skipping whatever is already there:
#   * Debian packages (apt-get update runs only when something is missing);
#   * the tansu Kafka-protocol broker, built once into /var/cache/berth.
# Usage: infra/local/install.sh [packages|tansu|all]   (default: all)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEBIAN_PACKAGES=(
  postgresql
  rabbitmq-server
  docker-registry apache2-utils
  # catatonit: the init process app containers run under (HostConfig.Init)
  podman runc catatonit
  # the edge router in front of every app (driven through its admin API)
  caddy
  # the ACME test server and its DNS, for the custom domain tests
  pebble
  # sandboxed builds: rootless podman as the build user (newuidmap), a
  # network namespace and firewall rules per build
  uidmap iproute2 iptables
  debootstrap busybox-static
  curl ca-certificates openssl
  # the SMTP sink berth's mail goes to locally (aiosmtpd into a Maildir)
  python3-aiosmtpd
  # the web UI's end-to-end tests drive Debian's headless Chromium with
  # Playwright (which cannot download its own browsers here)
  chromium
  # tansu's build needs a C toolchain (libsql bundles sqlite)
  build-essential pkg-config
  # berth's own build: git2's https (OpenSSL), librdkafka's bundled build;
  # the build-worker's tests serve repositories with git http-backend
  libssl-dev zlib1g-dev cmake git
)

install_packages() {
  local missing=() p
  for p in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    log "Debian packages: all present"
    return 0
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packaged services from starting their default instances: the
  # stack runs its own project-owned ones (policy-rc.d is honoured by invoke-rc.d).
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" || {
    ((created_policy)) && rm -f "$policy"
    die "apt-get install failed"
  }
  ((created_policy)) && rm -f "$policy"
  # Under systemd, the packaged RabbitMQ instance would take port 5672 at the
  # next boot: the stack runs its own node, so keep the default one off.
  if [[ -d /run/systemd/system ]] && [[ " ${missing[*]} " == *" rabbitmq-server "* ]]; then
    systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
  fi
  # Likewise Caddy's packaged service, which would take port 80 with a
  # welcome page: the stack runs its own router, configured by berth.
  if [[ -d /run/systemd/system ]] && [[ " ${missing[*]} " == *" caddy "* ]]; then
    systemctl disable --now caddy caddy-api >/dev/null 2>&1 || true
  fi
  ok "Debian packages installed"
}

find_cargo() {
  if command -v cargo >/dev/null 2>&1; then command -v cargo; return 0; fi
  [[ -x ${HOME:-/root}/.cargo/bin/cargo ]] && { echo "${HOME:-/root}/.cargo/bin/cargo"; return 0; }
  return 1
}

install_tansu() {
  if [[ -x $TANSU_BIN ]]; then
    log "tansu $TANSU_VERSION: present ($TANSU_BIN)"
    return 0
  fi
  mkdir -p "$BERTH_CACHE"
  # Only one build at a time, even across clones (CI and a developer on the
  # same machine): the second one waits for the first and then finds the binary.
  exec 9>"$BERTH_CACHE/tansu-install.lock"
  if ! flock -n 9; then
    log "another tansu build holds $BERTH_CACHE/tansu-install.lock; waiting for it"
    flock 9
  fi
  if [[ -x $TANSU_BIN ]]; then
    log "tansu $TANSU_VERSION: present ($TANSU_BIN)"
    exec 9>&-
    return 0
  fi
  # A build started by hand (without the lock) may still be running.
  if pgrep -f -- "cargo install tansu .*--root $TANSU_ROOT" >/dev/null 2>&1; then
    log "a 'cargo install tansu' is already running; waiting for $TANSU_BIN (up to 60 min)"
    wait_for "tansu build" 3600 test -x "$TANSU_BIN" || die "tansu was not built; see $BERTH_CACHE/tansu-install.log"
    exec 9>&-
    return 0
  fi
  local cargo
  cargo="$(find_cargo)" || die "cargo not found: install Rust (rustup) to build tansu"
  log "building tansu $TANSU_VERSION (about 20 min on 2 cores; log: $BERTH_CACHE/tansu-install.log)"
  if ! "$cargo" install tansu --locked --version "$TANSU_VERSION" --features libsql,dynostore \
      --root "$TANSU_ROOT" --target-dir "$TANSU_TARGET" >"$BERTH_CACHE/tansu-install.log" 2>&1; then
    tail -n 30 "$BERTH_CACHE/tansu-install.log" >&2
    die "tansu build failed; see $BERTH_CACHE/tansu-install.log"
  fi
  exec 9>&-
  ok "tansu built: $TANSU_BIN"
}

main() {
  need_root
  case "${1:-all}" in
    packages) install_packages ;;
    tansu) install_tansu ;;
    all) install_packages; install_tansu ;;
    *) die "usage: $0 [packages|tansu|all]" ;;
  esac
}

main "$@"
