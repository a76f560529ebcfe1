#!/usr/bin/env bash
# bench/gitops/run.sh [BUILD_DIR]: webhook-to-status latency of `reeve serve`
# on a repository of $CLUSTERS clusters (default 10,000): $PRS pull requests
# (default 20), each a commit touching one spec plus a signed webhook, timed
# from sending the webhook to the fake forge recording reeve/plan on that
# head commit; then reeve's peak RSS. See bench.py for the method.
#
# Environment: CLUSTERS, PRS, FORGE (github|gitea|gitlab, default github),
# PERF=FILE (also record a perf profile of the measured part into FILE),
# KEEP=1 (keep the scratch directory: logs, repository, results.json).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build="$top/$build" ;; esac
reeve="$build/reeve"
[ -x "$reeve" ] || { echo "bench/gitops: no reeve binary at $reeve (build first)" >&2; exit 2; }
"$reeve" serve --help >/dev/null 2>&1 || { echo "bench/gitops: $reeve has no 'serve' command" >&2; exit 2; }
command -v git >/dev/null || { echo "bench/gitops: git is required" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reeve-bench-gitops.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
    trap 'echo "bench/gitops: kept $tmp"' EXIT
else
    trap 'rm -rf "$tmp"' EXIT
fi
echo "bench/gitops: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
python3 "$here/bench.py" --reeve "$reeve" --work "$tmp" --clusters "${CLUSTERS:-10000}" \
    --prs "${PRS:-20}" --forge "${FORGE:-github}" ${PERF:+--perf "$PERF"}
