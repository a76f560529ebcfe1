#!/usr/bin/env bash
# Install the npm test peers (ajv-cli for schema conformance) into
# tests/peers/node_modules from the committed lock file. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../tests/peers"
if [ -f package-lock.json ] && [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
