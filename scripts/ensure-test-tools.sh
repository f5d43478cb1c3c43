#!/usr/bin/env bash
# The tests use real tools from Debian: redis-server (the Redis tests start their
# own instances on free ports), postgresql (the PostgreSQL tests initdb their own
# clusters on free ports), wrk (the benchmark harness's own tests),
# nodejs + npm (jaclang's client runtime runs under Node against a live server),
# curl (the README's streaming example is run as written) and chromium with
# chromium-driver (the browser tests of /graph and /admin, driven headless by Selenium).
# This installs whichever is missing when we are root; otherwise it says what to
# install. Then it installs the npm packages of tests/js when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v curl >/dev/null 2>&1 || missing+=(curl)  # the README's streaming example is run as written
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

npm_packages() {
  # tests/js/node_modules is stale when npm's record of it is older than the lock file.
  local marker=tests/js/node_modules/.package-lock.json
  if [ ! -f "$marker" ] || [ tests/js/package-lock.json -nt "$marker" ]; then
    echo "installing the npm packages of tests/js (npm ci)"
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  npm_packages
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) for the tests"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian's package may start a service on :6379; the tests use their own instances.
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    service redis-server stop >/dev/null 2>&1 || echo "(no redis-server service to stop)"
  fi
  # Debian's package starts its own cluster on :5432; the tests use their own.
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    service postgresql stop >/dev/null 2>&1 || echo "(no postgresql service to stop)"
  fi
else
  echo "error: the tests need ${missing[*]}: apt-get install ${missing[*]}" >&2
  exit 1
fi
npm_packages
