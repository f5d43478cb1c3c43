#!/usr/bin/env bash
# The tests use real tools from Debian: redis-server (the Redis tests start their
# own instances on free ports) and wrk (the benchmark harness's own tests). This
# installs whichever is missing when we are root; otherwise it says what to install.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) for the tests"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian's package may start a service on :6379; the tests use their own instances.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    service redis-server stop >/dev/null 2>&1 || echo "(no redis-server service to stop)"
  fi
else
  echo "error: the tests need ${missing[*]}: apt-get install ${missing[*]}" >&2
  exit 1
fi
