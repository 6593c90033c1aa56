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

RECIPE_VERSION=1          # bump to force every image to be remade
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

make_debian_rootfs() {
  local name=$1 root=$2
  debootstrap --variant=minbase --include="${IMAGE_PACKAGES[$name]}" "$SUITE" "$root" "$MIRROR" \
    >"$BASE_IMAGE_CACHE/$name.debootstrap.log" 2>&1 || {
    tail -n 30 "$BASE_IMAGE_CACHE/$name.debootstrap.log" >&2
    return 1
  }
  trust_host_ca "$root"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/log/* "$root"/tmp/*
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
  local name=$1 image=${IMAGE_NAME[$1]} hash current tar
  hash="$(recipe_hash "$name")"
  current="$(bpodman image inspect --format '{{index .Labels "org.berth.recipe"}}' "$image" 2>/dev/null || true)"
  if [[ $current == "$hash" ]]; then
    log "base image $name: $image present"
    return 0
  fi
  tar="$(ensure_tarball "$name")"
  local ca=/etc/ssl/certs/ca-certificates.crt
  local changes=(
    --change "ENV SSL_CERT_FILE=$ca"
    --change "ENV PIP_CERT=$ca"
    --change "ENV NODE_EXTRA_CA_CERTS=$ca"
    --change "ENV REQUESTS_CA_BUNDLE=$ca"
    --change "ENV CURL_CA_BUNDLE=$ca"
    --change "ENV CARGO_HTTP_CAINFO=$ca"
    --change "ENV LANG=C.UTF-8"
    --change "LABEL org.berth.recipe=$hash"
    --change "CMD ${IMAGE_CMD[$name]}"
  )
  [[ $name == static ]] && changes+=(--change "ENV PORT=8080" --change "EXPOSE 8080")
  bpodman import -q "${changes[@]}" "$tar" "$image" >/dev/null
  ok "base image $name: imported $image"
}

main() {
  need_root
  mkdir -p "$BASE_IMAGE_CACHE" "$BERTH_LOGS"
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
  if ((${#failed[@]})); then
    for pid in "${!failed[@]}"; do warn "base image ${pids[$pid]} failed"; done
    die "some base images failed"
  fi
}

main "$@"
