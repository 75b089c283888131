#!/usr/bin/env bash
# Install a single-node SLURM stack (Debian packages) for the test-suite.
#
# Idempotent: exits 0 immediately when everything is already installed.
# Does NOT start or enable any daemon: tests/slurm_cluster.py starts private
# slurmctld/slurmd/munged instances with their own config, ports and state.
#
# Usage (as root, or with passwordless sudo): .ci/install_slurm.sh
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_slurm: already installed: ${PACKAGES[*]}"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "install_slurm: must run as root (or have sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive

# Never let package post-install scripts start daemons (works in containers
# without systemd as well as on full machines). Only install our policy-rc.d
# if none exists, and remove it again afterwards.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT

apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
}

# Only refresh the package lists when they are absent or the install fails
# because the candidate versions are unknown/stale.
# (lists may be stored compressed: *_Packages.lz4/.gz with KeepCompressed)
if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
    echo "install_slurm: apt lists empty, running apt-get update"
    "${SUDO[@]}" apt-get update -q
fi

echo "install_slurm: installing ${missing[*]}"
if ! apt_install; then
    echo "install_slurm: install failed, refreshing apt lists and retrying"
    "${SUDO[@]}" apt-get update -q
    apt_install
fi

for pkg in "${PACKAGES[@]}"; do
    if ! is_installed "$pkg"; then
        echo "install_slurm: $pkg still not installed" >&2
        exit 1
    fi
done

# Some package scripts may still have launched daemons through other means
# (e.g. no policy-rc.d honoured). We do not kill anything here: the test
# fixture uses private ports/sockets and does not depend on system daemons.
echo "install_slurm: done ($(dpkg-query -W -f='${Version}' slurmctld))"
