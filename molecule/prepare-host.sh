#!/usr/bin/env bash
# Prepares this machine for the Molecule scenario (idempotent): podman with runc and cgroupfs, the
# limits rootful podman needs here, and the Debian 12 images built locally (no container registry
# is reachable): a minimal base by debootstrap, and a systemd image on top of it.
set -euo pipefail

BASE=localhost/debian-bookworm:molecule
SYSTEMD=localhost/debian-bookworm-systemd:molecule

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 podman runc debootstrap >/dev/null
fi

mkdir -p /etc/containers
conf=/etc/containers/containers.conf
want='[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  printf '%s\n' "$want" > "$conf"
fi

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

if ! podman image exists "$BASE"; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-apt,sudo,iproute2,procps,ca-certificates \
    bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
fi

if ! podman image exists "$SYSTEMD"; then
  build=$(mktemp -d)
  cat > "$build/Containerfile" <<CONTAINERFILE
FROM $BASE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd systemd-sysv dbus \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
CONTAINERFILE
  podman build -q -t "$SYSTEMD" "$build" >/dev/null
  rm -rf "$build"
fi
echo "podman and $SYSTEMD are ready"
