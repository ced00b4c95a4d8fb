#!/usr/bin/env bash
# Make a Docker engine and the Dockerfiles' base images available on a machine that
# cannot reach a container registry (CI here; see README "Docker in CI without a
# registry"). Idempotent: whatever is already there is kept.
#
#   1. docker.io and debootstrap from Debian's mirror, when `dockerd` is missing;
#   2. dockerd started by hand when no engine answers (its pid goes to $DOCKERD_PID_FILE,
#      so the caller can stop exactly that process: scripts/docker-check.sh does);
#   3. `debian:bookworm-slim` made from a debootstrap minbase rootfs (the rootfs tarball
#      is cached under ~/.cache/slimbench/docker), with this machine's extra CA
#      certificates installed, since HTTPS to the package registries may go through an
#      intercepting proxy;
#   4. `rust:<version>-slim-bookworm` stood in for by that rootfs plus this machine's
#      Rust toolchain, laid out as the official image lays it out (RUSTUP_HOME,
#      CARGO_HOME, PATH).
#
# Environment: RUST_IMAGE (default rust:1.95-slim-bookworm), DEBIAN_IMAGE (default
# debian:bookworm-slim), DOCKERD_PID_FILE (default /tmp/slimbench-dockerd.pid).
set -euo pipefail

DEBIAN_IMAGE="${DEBIAN_IMAGE:-debian:bookworm-slim}"
RUST_IMAGE="${RUST_IMAGE:-rust:1.95-slim-bookworm}"
PID_FILE="${DOCKERD_PID_FILE:-/tmp/slimbench-dockerd.pid}"
CACHE="${SLIMBENCH_DOCKER_CACHE:-$HOME/.cache/slimbench/docker}"
# The engine's own client: /usr/local/bin/docker may come first on PATH and lack buildx.
DOCKER=/usr/bin/docker
log() { echo "docker-base: $*" >&2; }

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || [ ! -x "$DOCKER" ]; then
  log "installing docker.io and debootstrap"
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
  log "starting dockerd (pid file $PID_FILE)"
  sudo_ sh -c "dockerd >/tmp/slimbench-dockerd.log 2>&1 & echo \$! >'$PID_FILE'"
  for _ in $(seq 1 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 1
  done
  "$DOCKER" info >/dev/null 2>&1 || { log "error: dockerd did not start; see /tmp/slimbench-dockerd.log"; exit 1; }
fi

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

work="$(mktemp -d)"
trap 'sudo_ rm -rf "$work"' EXIT

rootfs_tar="$CACHE/bookworm-minbase.tar"
make_rootfs() {
  if [ ! -s "$rootfs_tar" ]; then
    log "debootstrap bookworm minbase (about 80 s, once)"
    mkdir -p "$CACHE"
    sudo_ debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" \
      http://deb.debian.org/debian >/dev/null
    sudo_ rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    sudo_ tar -C "$work/rootfs" -cf "$rootfs_tar.tmp" .
    sudo_ mv "$rootfs_tar.tmp" "$rootfs_tar"
    sudo_ rm -rf "$work/rootfs"
  fi
  # Fresh copy per image, with the machine's extra CA certificates trusted.
  local dir="$1"
  sudo_ mkdir -p "$dir"
  sudo_ tar -C "$dir" -xf "$rootfs_tar"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    sudo_ cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
    sudo_ chroot "$dir" update-ca-certificates >/dev/null 2>&1
  fi
}

if ! have_image "$DEBIAN_IMAGE"; then
  log "making $DEBIAN_IMAGE"
  make_rootfs "$work/debian"
  sudo_ tar -C "$work/debian" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
  sudo_ rm -rf "$work/debian"
fi

if ! have_image "$RUST_IMAGE"; then
  sysroot="$(rustc --print sysroot)"
  name="$(basename "$(readlink -f "$sysroot")")"
  log "making $RUST_IMAGE from $sysroot"
  make_rootfs "$work/rust"
  # What the official slim image has besides Rust: a C compiler and libc headers.
  sudo_ chroot "$work/rust" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null && rm -rf /var/lib/apt/lists/*'
  tc="$work/rust/usr/local/rustup/toolchains/$name"
  sudo_ mkdir -p "$tc" "$work/rust/usr/local/cargo/bin"
  # bin/ lib/ libexec/ and share/ less the HTML docs (the official image has no docs).
  sudo_ tar -C "$(readlink -f "$sysroot")" --exclude=./share/doc -cf - . | sudo_ tar -C "$tc" -xf -
  for tool in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
    [ -e "$tc/bin/$tool" ] && sudo_ ln -sf "/usr/local/rustup/toolchains/$name/bin/$tool" \
      "$work/rust/usr/local/cargo/bin/$tool"
  done
  sudo_ chmod -R a+rwX "$work/rust/usr/local/cargo"
  sudo_ tar -C "$work/rust" -c . | "$DOCKER" import \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$RUST_IMAGE" >/dev/null
  sudo_ rm -rf "$work/rust"
fi

log "ready: $("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null) with $DEBIAN_IMAGE and $RUST_IMAGE"
