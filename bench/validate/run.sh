#!/usr/bin/env bash
# bench/validate/run.sh [BUILD_DIR]: time a cold `reeve validate` (a new
# process each run, as in CI) over a generated repository of $N specs
# (default 10,000) on one core, with its peak RSS; then, on the same files
# and core, the peer: ajv-cli checking the YAML specs against the same JSON
# Schema (schema only: no policies, no cross-file checks).
#
# Environment: N (specs), RUNS (timed runs, default 10), CPU (core, default 0).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build="$top/$build" ;; esac
reeve="$build/reeve"
N=${N:-10000}
RUNS=${RUNS:-10}
CPU=${CPU:-0}
[ -x "$reeve" ] || { echo "bench/validate: no reeve binary at $reeve (build first)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/validate: GNU time is missing (scripts/deps.sh installs it)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reeve-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
repo="$tmp/repo"
python3 "$here/gen.py" --count "$N" "$repo"
bytes=$(du -sb "$repo" | cut -f1)
pin=(taskset -c "$CPU")

echo "bench/validate: $N specs ($((bytes / 1024)) KiB) on CPU $CPU, $RUNS runs; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# One checked run first: the benchmark is only meaningful on a valid repository.
rc=0
"${pin[@]}" "$reeve" validate --quiet "$repo" >"$tmp/out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "bench/validate: reeve validate exited $rc on the generated repository:" >&2
    head -20 "$tmp/out" >&2
    exit 1
fi

# mean_seconds CMD...: mean wall time of $RUNS cold runs (hyperfine if present).
mean_seconds() {
    if command -v hyperfine >/dev/null 2>&1; then
        hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$tmp/h.json" \
            "$(printf '%q ' "$@")" >/dev/null
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.4f %.4f %.4f" % (r["mean"], r["stddev"] or 0, r["min"]))' "$tmp/h.json"
    else
        : >"$tmp/times"
        for _ in $(seq 1 "$RUNS"); do
            /usr/bin/time -f '%e' -o "$tmp/t" "$@" >/dev/null 2>&1 || true
            cat "$tmp/t" >>"$tmp/times"
        done
        python3 -c 'import statistics,sys; t=[float(x) for x in open(sys.argv[1])]; print("%.4f %.4f %.4f" % (statistics.mean(t), statistics.pstdev(t), min(t)))' "$tmp/times"
    fi
}

# cpu_rss CMD...: "CPU_SECONDS RSS_KIB": the least user+system CPU time of 3
# runs (steadier than wall time on a busy machine) and the largest peak RSS.
cpu_rss() {
    : >"$tmp/cpu"
    for _ in 1 2 3; do
        /usr/bin/time -f '%U %S %M' -o "$tmp/v" "$@" >/dev/null 2>&1 || true
        tail -n 1 "$tmp/v" >>"$tmp/cpu"
    done
    awk 'NR == 1 || $1 + $2 < c { c = $1 + $2 } $3 > m { m = $3 } END { printf "%.3f %d\n", c, m }' "$tmp/cpu"
}

report() { # NAME SPECS "MEAN STDDEV MIN" "CPU RSS_KIB"
    local name=$1 specs=$2 mean sd min cpu rss
    read -r mean sd min <<<"$3"
    read -r cpu rss <<<"$4"
    python3 - "$name" "$specs" "$mean" "$sd" "$min" "$cpu" "$rss" <<'EOF2'
import sys
name, specs = sys.argv[1], int(sys.argv[2])
mean, sd, mn, cpu = map(float, sys.argv[3:7])
rss = int(sys.argv[7])
print(f"{name:<22} {specs:>6} specs  wall mean {mean:6.3f} s ± {sd:.3f} (min {mn:6.3f})  "
      f"CPU {cpu:6.3f} s  {specs / mn:7.0f} specs/s (best run)  peak RSS {rss / 1024:5.1f} MiB")
EOF2
}

reeve_t=$(mean_seconds "${pin[@]}" "$reeve" validate --quiet "$repo")
reeve_rss=$(cpu_rss "${pin[@]}" "$reeve" validate --quiet "$repo")
report "reeve validate" "$N" "$reeve_t" "$reeve_rss"

ajv="$top/tests/peers/node_modules/.bin/ajv"
if [ -x "$ajv" ]; then
    yamls=$(find "$repo/clusters" -name '*.yaml' | wc -l)
    peer=("${pin[@]}" "$ajv" validate --spec=draft2020 -c "$top/tests/peers/node_modules/ajv-formats"
        -s "$top/specs-schema/cluster.schema.json" -d "$repo/clusters/**/*.yaml")
    peer_t=$(mean_seconds "${peer[@]}")
    peer_rss=$(cpu_rss "${peer[@]}")
    report "ajv-cli (schema only)" "$yamls" "$peer_t" "$peer_rss"
    python3 -c 'import sys; n,t,pn,pt=int(sys.argv[1]),float(sys.argv[2]),int(sys.argv[3]),float(sys.argv[4]); print("ratio (specs/s, best wall time): reeve / ajv-cli = %.2f" % ((n/t)/(pn/pt)))' \
        "$N" "$(cut -d' ' -f3 <<<"$reeve_t")" "$yamls" "$(cut -d' ' -f3 <<<"$peer_t")"
else
    echo "ajv-cli: not installed (scripts/test-peers.sh installs it); no peer ratio"
fi
