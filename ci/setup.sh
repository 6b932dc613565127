#!/usr/bin/env bash
# Set up a fresh Debian 12 machine (as root) for the memif harness: Debian's DPDK
# (dpdk-testpmd with the memif driver), hugepages where the kernel allows, and a
# project virtualenv at .venv with the Python dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "[setup] must run as root (installs Debian packages, sets hugepages)" >&2
    exit 1
fi

if ! command -v dpdk-testpmd >/dev/null 2>&1; then
    log "installing Debian's dpdk-dev (dpdk-testpmd 22.11 with net_memif)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpdk-dev >/dev/null
fi
log "dpdk-testpmd: $(command -v dpdk-testpmd)"

if ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian's chromium (headless browser test of the HTML report)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# Hugepages: zero-copy peers need them; copy mode runs with --no-huge when absent.
want_pages=${MEMIF_HUGEPAGES:-512}
if [ -w /proc/sys/vm/nr_hugepages ]; then
    have=$(cat /proc/sys/vm/nr_hugepages)
    if [ "$have" -lt "$want_pages" ]; then
        echo "$want_pages" > /proc/sys/vm/nr_hugepages 2>/dev/null || true
    fi
    log "hugepages: $(cat /proc/sys/vm/nr_hugepages) x $(awk '/Hugepagesize/ {print $2 $3}' /proc/meminfo)"
else
    log "hugepages: /proc/sys/vm/nr_hugepages not writable; copy mode only"
fi
if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || log "could not mount hugetlbfs"
fi

# Docker engine (no bridge, no iptables) and debootstrap, for peers in containers.
bash ci/docker.sh

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
log "python deps installed in .venv"

# Container images built from Debian packages (cached by recipe hash after the first run).
.venv/bin/memif-harness images build
