#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR]: run every benchmark (bench/*/run.sh) against the
# binaries in BUILD_DIR (default: build). `make bench` calls this.
# Results are recorded by hand in docs/benchmarks.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
rc=0
for b in "$here"/*/run.sh; do
    name=$(basename "$(dirname "$b")")
    echo "==> bench/$name"
    bash "$b" "$build" || { echo "bench/$name failed" >&2; rc=1; }
    echo
done
exit "$rc"
