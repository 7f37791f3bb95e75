#!/usr/bin/env bash
# Installs the servers the test suite runs for real: Redis and PostgreSQL (Debian packages).
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: please install ${missing[*]} (needs root); tests that need them will be skipped" >&2
  exit 0
fi
echo "test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages' own services are not needed: tests start private servers on free ports.
for svc in redis-server postgresql; do service "$svc" stop >/dev/null 2>&1 || true; done
