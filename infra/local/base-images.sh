#!/usr/bin/env bash
# Makes the base images berth builds FROM, since nothing can be pulled here:
#   localhost/berth/{python,node,go,rust}:bookworm  (debootstrap minbase + packages)
#   localhost/berth/static:latest                    (busybox-static, serves /site)
# Each image trusts the host's CA bundle (the TLS proxy's CA is in it).
#
# Finished rootfs tarballs are cached outside the repo, keyed by a hash of the
# recipe, in /var/cache/berth/base-images/<name>-<hash>.tar: a fresh clone
# re-imports them in seconds. An image already in podman storage with the same
# recipe is skipped. Debootstraps run two at a time (2 cores).
#
# Usage: infra/local/base-images.sh [python|node|go|rust|static ...]   (default: all)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RECIPE_VERSION=2          # bump to force every image to be remade
SUITE=bookworm
HOST_CA=/etc/ssl/certs/ca-certificates.crt
PARALLEL=${BERTH_IMAGE_JOBS:-2}

declare -A IMAGE_NAME=(
  [python]=localhost/berth/python:bookworm
  [node]=localhost/berth/node:bookworm
  [go]=localhost/berth/go:bookworm
  [rust]=localhost/berth/rust:bookworm
  [static]=localhost/berth/static:latest
)
declare -A IMAGE_PACKAGES=(
  [python]="python3,python3-pip,python3-venv,ca-certificates"
  [node]="nodejs,npm,ca-certificates"
  [go]="golang-go,ca-certificates,git"
  [rust]="cargo,rustc,ca-certificates,pkg-config,libssl-dev"
  [static]=""
)
declare -A IMAGE_CMD=(
  [python]='["python3"]'
  [node]='["node"]'
  [go]='["/bin/bash"]'
  [rust]='["/bin/bash"]'
  [static]='["/bin/sh","-c","exec busybox httpd -f -p ${PORT:-8080} -h /site"]'
)
# Extra image settings. Debian's cargo 1.65 only knows the git index on
# github.com (unreachable here); its unstable sparse protocol reaches
# index.crates.io. The channel override affects cargo only, not rustc.
declare -A IMAGE_ENV=(
  [rust]="__CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS=nightly CARGO_UNSTABLE_SPARSE_REGISTRY=true CARGO_REGISTRIES_CRATES_IO_PROTOCOL=sparse"
  [static]="PORT=8080"
)
ORDER=(python static node go rust)   # the tests need python and static first

# The host's Debian mirror (the only one reachable), from its apt sources.
debian_mirror() {
  local uri
  uri="$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
            grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print ($2 ~ /^\[/) ? $3 : $2}'
          } | grep -E '/debian/?$' | head -n1)"
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="$(debian_mirror)"

recipe_hash() {
  local name=$1
  {
    echo "recipe=$RECIPE_VERSION suite=$SUITE mirror=$MIRROR"
    echo "packages=${IMAGE_PACKAGES[$name]}"
    [[ $name == static ]] && dpkg-query -W -f='busybox-static=${Version}\n' busybox-static
    sha256sum <"$HOST_CA"
  } | sha256sum | cut -c1-16
}

# Undo any mounts a (possibly interrupted) debootstrap left in DIR, then delete it.
remove_rootfs() {
  local dir=$1 m
  [[ -d $dir ]] || return 0
  while read -r m; do
    [[ -n $m ]] && umount -l "$m" 2>/dev/null || true
  done < <(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r)
  rm -rf --one-file-system "$dir"
}

trust_host_ca() {
  local root=$1
  install -D -m 644 "$HOST_CA" "$root/etc/ssl/certs/ca-certificates.crt"
  # Also as a local CA, so update-ca-certificates inside the image keeps it.
  install -D -m 644 "$HOST_CA" "$root/usr/local/share/ca-certificates/berth-host-bundle.crt"
}

make_static_rootfs() {
  local root=$1
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,site,root}
  chmod 1777 "$root/tmp"
  install -m 755 /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  echo '<!doctype html><title>berth static</title><p>berth static base image</p>' >"$root/site/index.html"
  trust_host_ca "$root"
}

# debootstrap's own dependency resolver fails on packages such as npm and rustc
# (alternatives, virtual packages), so it only lays down minbase; apt-get inside
# the chroot then installs the image's packages.
make_debian_rootfs() {
  local name=$1 root=$2
  local log="$BASE_IMAGE_CACHE/$name.build.log"
  : >"$log"
  if ! debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >>"$log" 2>&1; then
    cat "$root/debootstrap/debootstrap.log" >>"$log" 2>/dev/null || true
    tail -n 30 "$log" >&2
    return 1
  fi
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # A private mount namespace: /proc inside the chroot goes away with it.
  if ! unshare -m --propagation private sh -c '
        mount -t proc proc "$1/proc" && shift &&
        chroot "$0" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        chroot "$0" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
      ' "$root" "$root" ${IMAGE_PACKAGES[$name]//,/ } >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    return 1
  fi
  trust_host_ca "$root"
  chroot "$root" apt-get clean
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
}

# Ensure the cached tarball for NAME exists; print its path.
ensure_tarball() {
  local name=$1 hash tar root
  hash="$(recipe_hash "$name")"
  tar="$BASE_IMAGE_CACHE/$name-$hash.tar"
  if [[ -s $tar ]]; then
    echo "$tar"
    return 0
  fi
  mkdir -p "$BASE_IMAGE_CACHE"
  # One builder per recipe across clones/processes.
  exec {lock}>"$tar.lock"
  flock "$lock"
  if [[ ! -s $tar ]]; then
    root="$BASE_IMAGE_CACHE/rootfs-$name-$hash.$$"
    remove_rootfs "$root"
    local t0=$SECONDS
    log "base image $name: building rootfs (recipe $hash)"
    if [[ $name == static ]]; then make_static_rootfs "$root"; else make_debian_rootfs "$name" "$root"; fi || {
      remove_rootfs "$root"; exec {lock}>&-; return 1
    }
    tar --numeric-owner -C "$root" -cf "$tar.tmp" . && mv -f "$tar.tmp" "$tar"
    remove_rootfs "$root"
    # old recipes of this image are dead weight
    find "$BASE_IMAGE_CACHE" -maxdepth 1 -name "$name-*.tar" ! -name "$name-$hash.tar" -delete
    log "base image $name: rootfs cached in $((SECONDS - t0))s ($(du -h "$tar" | cut -f1))"
  fi
  rm -f "$tar.lock"
  exec {lock}>&-
  echo "$tar"
}

ensure_image() {
  local name=$1 image=${IMAGE_NAME[$1]} ca=/etc/ssl/certs/ca-certificates.crt kv
  local changes=(
    --change "ENV SSL_CERT_FILE=$ca"
    --change "ENV PIP_CERT=$ca"
    --change "ENV NODE_EXTRA_CA_CERTS=$ca"
    --change "ENV REQUESTS_CA_BUNDLE=$ca"
    --change "ENV CURL_CA_BUNDLE=$ca"
    --change "ENV CARGO_HTTP_CAINFO=$ca"
    --change "ENV LANG=C.UTF-8"
  )
  for kv in ${IMAGE_ENV[$name]:-}; do changes+=(--change "ENV $kv"); done
  [[ $name == static ]] && changes+=(--change "EXPOSE 8080")
  changes+=(--change "CMD ${IMAGE_CMD[$name]}")
  # The label identifies rootfs recipe + image settings: a change to either re-imports.
  local hash tag
  hash="$(recipe_hash "$name")"
  tag="$hash-$(printf '%s\n' "${changes[@]}" | sha256sum | cut -c1-8)"
  # Into the engine's store (apps, and the unsandboxed docker builder) and
  # the sandboxed builds' read-only base store.
  import_into bpodman "engine store" "$name" "$image" "$tag" "${changes[@]}"
  import_into build_podman "build sandbox store" "$name" "$image" "$tag" "${changes[@]}"
}

# import_into PODMAN WHERE NAME IMAGE TAG CHANGES...
import_into() {
  local podman=$1 where=$2 name=$3 image=$4 tag=$5 current old_id tar
  shift 5
  current="$($podman image inspect --format '{{index .Labels "org.berth.recipe"}}' "$image" 2>/dev/null || true)"
  if [[ $current == "$tag" ]]; then
    log "base image $name: $image present ($where)"
    return 0
  fi
  old_id="$($podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  tar="$(ensure_tarball "$name")"
  $podman import -q "$@" --change "LABEL org.berth.recipe=$tag" "$tar" "$image" >/dev/null
  # The outdated image is now untagged: drop it unless something still uses it.
  [[ -n $old_id ]] && $podman rmi "$old_id" >/dev/null 2>&1 || true
  ok "base image $name: imported $image ($where)"
}

# The build user's podman leaves a pause process holding its user namespace.
reap_build_podman() {
  local pid
  pid="$(cat "$BUILD_ROOT/run-base/libpod/tmp/pause.pid" 2>/dev/null || true)"
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
}

main() {
  need_root
  mkdir -p "$BASE_IMAGE_CACHE" "$BERTH_LOGS"
  build_user_up
  local names=("$@") n
  ((${#names[@]})) || names=("${ORDER[@]}")
  for n in "${names[@]}"; do
    [[ -n ${IMAGE_NAME[$n]:-} ]] || die "unknown base image '$n' (known: ${ORDER[*]})"
  done
  # Run up to $PARALLEL jobs; keep requested order (python and static first).
  local -A pids=() failed=()
  local running=0 pid done_pid
  for n in "${names[@]}"; do
    while ((running >= PARALLEL)); do
      wait -n -p done_pid || failed[$done_pid]=1
      running=$((running - 1))
    done
    ensure_image "$n" &
    pids[$!]=$n
    running=$((running + 1))
  done
  while ((running > 0)); do
    wait -n -p done_pid || failed[$done_pid]=1
    running=$((running - 1))
  done
  reap_build_podman
  if ((${#failed[@]})); then
    for pid in "${!failed[@]}"; do warn "base image ${pids[$pid]} failed"; done
    die "some base images failed"
  fi
}

main "$@"
