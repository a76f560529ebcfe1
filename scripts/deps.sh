#!/usr/bin/env bash
# Install the Debian packages reeve needs to build and test, skipping those
# already present. Idempotent; safe to run on every `make`.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git clang
  libclang-rt-dev   # ASan/UBSan and libFuzzer runtimes for make test-asan (only recommended by clang)
  libgit2-dev libyaml-dev libjansson-dev libcurl4-openssl-dev libssl-dev
  libsqlite3-dev libuv1-dev libh2o-dev libzstd-dev libcmocka-dev
  libpq-dev libmariadb-dev
  postgresql-15 postgresql-client-15   # engine adapter tests run real servers
  mariadb-server mariadb-backup        # the MariaDB engine adapter tests run real servers
  mariadb-client   # the agent clones MariaDB replicas with mariadb-dump | mariadb
  python3 lighttpd curl jq procps   # test scripts drive servers with curl and jq
  sqlite3   # t0800 seeds agent tokens into a stopped reeve's dcs.db
  time hyperfine
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# Node.js and npm run test peers (ajv-cli); the machine image may ship its own.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
# reeve runs its own MariaDB servers; the packaged one (on 3306, in
# /var/lib/mysql) is stopped and kept from starting at boot.
if [[ " ${missing[*]} " == *" mariadb-server "* ]]; then
  $sudo service mariadb stop >/dev/null 2>&1 || true
  $sudo update-rc.d mariadb disable >/dev/null 2>&1 || true
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable mariadb >/dev/null 2>&1 || true; fi
fi
