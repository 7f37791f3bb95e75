#!/usr/bin/env bash
# Lockgate benchmark entry point (`make bench` calls this). Arguments go to bench/run.py:
#   bash bench/run.sh [--quick] [--peers] [--reference] [--scenarios abcd] [--strict] ...
# Installs what it needs from Debian's packages when missing: nginx-light (the upstream), wrk (the load),
# libnginx-mod-http-echo (the 1 s delayed upstream; optional, a Python fallback stands in without it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || need+=(libnginx-mod-http-echo)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bench: installing ${need[*]} (Debian packages)" >&2
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"; } >&2
  then
    # The echo module is optional; nginx and wrk are not.
    command -v nginx >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 || {
      echo "bench: could not install ${need[*]}" >&2
      exit 2
    }
  fi
fi

# 1,000 connections in flight need ~2,100 descriptors per process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

cd "$here"
exec "$python" run.py "$@"
