#!/usr/bin/env bash
# Install the npm test peers (ajv-cli for schema conformance, the S3 server
# for lib/s3's tests) into tests/peers/node_modules from the committed lock
# file. Idempotent: runs `npm ci` when node_modules is missing or was
# installed from another version of the lock file (a stamp in node_modules
# records the lock file's SHA-256).
set -euo pipefail
cd "$(dirname "$0")/../tests/peers"
[ -f package-lock.json ] || exit 0
want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.reeve-lock-sha256
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
