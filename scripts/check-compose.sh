#!/usr/bin/env bash
# scripts/check-compose.sh — validates docker-compose.yml the way Docker reads it, where a
# Docker client exists (no engine is needed: `config` only parses and resolves the file).
# Uses `docker compose` (the v2 plugin) when there is one, else `docker-compose`, installing
# Debian's docker-compose package if needed. Without a Docker client it says so and passes:
# there is nothing to validate against.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '%s\n' "check-compose: $*" >&2; }

if ! command -v docker >/dev/null 2>&1; then
    log "no Docker client here; docker-compose.yml not validated"
    exit 0
fi


if docker compose version >/dev/null 2>&1; then
    docker compose -f docker-compose.yml config --quiet
elif command -v docker-compose >/dev/null 2>&1; then
    docker-compose -f docker-compose.yml config --quiet
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing Debian's docker-compose to validate docker-compose.yml"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >/dev/null
    docker-compose -f docker-compose.yml config --quiet
else
    log "a Docker client but no compose and no way to install it; docker-compose.yml not validated"
    exit 0
fi
log "docker-compose.yml is valid"
