#!/usr/bin/env bash
# Throughput of the backup encoding on a pg_basebackup tar of a pgbench
# database (scale 13, ~230 MB), next to the zstd command line tool on the
# same file as a peer. Needs PostgreSQL 15 and a built reeve-bstream-bench.
#
#   bench/bstream/run.sh [BUILD_DIR]      (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
bench=$build/reeve-bstream-bench
pgbin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/rv-bstream-bench-XXXXXX)
run_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
cleanup() {
  run_pg "$pgbin/pg_ctl -D $work/data -m immediate -w stop" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres "$work"

run_pg "$pgbin/initdb -D $work/data -A trust -U postgres" >/dev/null
run_pg "$pgbin/pg_ctl -D $work/data -l $work/log -w -t 60 start \
  -o \"-c listen_addresses='' -k $work -p 54329 -c fsync=off\"" >/dev/null
run_pg "$pgbin/pgbench -h $work -p 54329 -U postgres -q -i -s 13 postgres" >/dev/null 2>&1
run_pg "timeout 300 $pgbin/pg_basebackup -h $work -p 54329 -U postgres -Ft -X none -c fast \
  -D - > $work/base.tar" 2>/dev/null

"$bench" "$work/base.tar" 1 3
for level in 1 3; do
  start=$(date +%s.%N)
  zstd -q -"$level" -c "$work/base.tar" >/dev/null
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v b="$(stat -c %s "$work/base.tar")" -v l="$level" \
    'BEGIN { printf "peer: zstd -%d (no encryption, no checksum) %7.1f MB/s\n", l, b / (e - s) / 1e6 }'
done
