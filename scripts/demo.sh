#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Until execution lands it
# shows what a pull request sees: the quickstart repository validated, then
# planned against an empty fleet.
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
reeve="$top/$build/reeve"
repo="$top/examples/quickstart"

echo "==> reeve validate examples/quickstart"
"$reeve" validate "$repo"
echo
echo "==> reeve plan --repo examples/quickstart   (empty fleet: everything is new)"
rc=0
"$reeve" plan --repo "$repo" || rc=$?
# reeve plan exits 2 when there are changes to make, as terraform -detailed-exitcode.
if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
  exit "$rc"
fi
