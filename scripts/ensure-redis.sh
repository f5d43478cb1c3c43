#!/usr/bin/env bash
# The Redis tests start their own redis-server on a free port; this makes sure the
# binary exists (Debian package `redis-server`), installing it when we are root.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing redis-server (Debian package) for the Redis tests"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # Debian's package starts a service on :6379; the tests use their own instances.
  (service redis-server stop >/dev/null 2>&1 || true)
else
  echo "error: redis-server is needed by the Redis tests: apt-get install redis-server" >&2
  exit 1
fi
