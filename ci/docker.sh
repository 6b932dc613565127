#!/usr/bin/env bash
# Docker engine for containerised memif peers: installs Debian's docker.io and debootstrap
# when missing and starts dockerd with no bridge and no iptables rules (containers run with
# --network none; image builds use the host network) unless one already answers on the
# socket. Safe to run again: it only does what is missing and says what it did.
set -euo pipefail

log() { printf '[docker] %s\n' "$*"; }
die() { printf '[docker] error: %s\n' "$*" >&2; exit 1; }

SOCKET=${DOCKER_SOCKET:-/var/run/docker.sock}
LOG_FILE=${DOCKERD_LOG:-/var/log/memif-harness-dockerd.log}
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60}

if [ "$(id -u)" -ne 0 ]; then
    die "must run as root (installs Debian packages, starts dockerd)"
fi

engine_answers() {
    curl -fsS --max-time 3 --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1
}

# ---------------------------------------------------------------- packages
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    # docker.io's maintainer scripts would start the engine with its defaults (docker0
    # bridge, iptables rules): forbid service starts during the install; we start it below.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        added_policy=1
        trap '[ "$added_policy" = 1 ] && rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    if [ "$added_policy" = 1 ]; then
        rm -f "$policy"
        added_policy=0
    fi
else
    log "docker.io and debootstrap already installed"
fi
log "dockerd: $(command -v dockerd) ($(dockerd --version 2>/dev/null || echo unknown))"

# ---------------------------------------------------------------- engine
if engine_answers; then
    log "engine already answers on $SOCKET; leaving it as it is"
    exit 0
fi

if pid=$(pgrep -x dockerd 2>/dev/null | head -n1) && [ -n "$pid" ]; then
    log "dockerd (pid $pid) is running but $SOCKET does not answer yet; waiting for it"
else
    mkdir -p "$(dirname "$LOG_FILE")"
    log "starting dockerd --bridge=none --iptables=false (log: $LOG_FILE)"
    setsid nohup dockerd --bridge=none --iptables=false --host "unix://$SOCKET" \
        >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
fi

deadline=$((SECONDS + START_TIMEOUT))
until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 30 "$LOG_FILE" >&2 || true
        die "dockerd (pid $pid) exited before $SOCKET answered; log tail above"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 30 "$LOG_FILE" >&2 || true
        die "$SOCKET did not answer within ${START_TIMEOUT}s; log tail above"
    fi
    sleep 0.2 # poll interval, bounded by the deadline above
done
version=$(curl -fsS --max-time 3 --unix-socket "$SOCKET" http://localhost/version |
    sed -n 's/.*"Version":"\([^"]*\)".*"ApiVersion".*/\1/p' | head -n1)
log "engine ${version:-?} answers on $SOCKET (dockerd pid $pid)"
