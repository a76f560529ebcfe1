#!/usr/bin/env bash
# bench/failover/run.sh [BUILD_DIR]: failover time of reeve and of Patroni,
# measured in the same run. See bench/failover/README.md.
#
# For each system: a 3-node PostgreSQL 15 cluster on loopback. A run kills
# (SIGKILL) the primary node's agent and then its postmaster, and times
# until the first committed INSERT on another node (a probe tries every
# candidate every 20 ms). The old node's agent is then started again, it
# rejoins as a replica, and the next run kills the new primary.
#
# reeve-sync is reeve with `synchronous: 1`, and a writer (harness
# `writer`) inserting numbered rows all along, recording each acknowledged
# one; after every heal the acknowledged rows missing on the current
# primary are counted (harness `check`) and printed next to the timing
# (expected: 0 lost).
#
# Environment: RUNS (10), SYSTEMS ("reeve patroni-default patroni-matched
# patroni-floor"), RUN_TIMEOUT (60 s per failover and per heal),
# TOTAL_TIMEOUT (1500 s: no run starts after it), FO_VERBOSE=1 to print the
# agents' logs of a failed step, FO_KEEP_DIR=1 to keep the work directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
RUNS=${RUNS:-10}
SYSTEMS=${SYSTEMS:-"reeve reeve-sync patroni-default patroni-matched patroni-floor"}
RUN_TIMEOUT=${RUN_TIMEOUT:-60}
TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-1500}
PG_BIN=/usr/lib/postgresql/15/bin
HARNESS="$build/reeve-failover-bench"
AGENT="$build/reeve-agent"
ETCD_CLIENT=127.0.0.1:42379
ETCD_PEER=127.0.0.1:42380
REEVE_PORT=25432
PATRONI_PORT=25433
REST_PORT=28008

die() { echo "bench/failover: $*" >&2; exit 1; }

# Skipped (not failed) where it cannot run, as `make bench` runs every
# benchmark.
skip() { echo "bench/failover: skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (the servers run as the postgres user)"
[ -x "$PG_BIN/initdb" ] || skip "needs PostgreSQL 15 in $PG_BIN"
[ -x "$HARNESS" ] && [ -x "$AGENT" ] ||
    die "build first: cmake --build $build --target reeve-failover-bench reeve-agent"
if ! command -v patroni >/dev/null || ! command -v etcd >/dev/null; then
    echo "bench/failover: installing patroni and etcd-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends patroni etcd-server >/dev/null
fi
# The Debian package starts a system etcd where services may start; ours has
# its own ports and data dir, so it does not matter either way.

base=$(mktemp -d /tmp/reeve-failover-XXXXXX)
chown postgres:postgres "$base"
chmod 0711 "$base"
declare -A PIDS=()  # name -> pid of every process we started
DATA_DIRS=()
t_start=$(date +%s)

stop_pid() {  # stop_pid NAME: TERM, wait up to 10 s, then KILL
    local name=$1 pid=${PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$1]"
}

stop_servers() {  # immediate stop of every server still running in our dirs
    local d pid
    for d in "${DATA_DIRS[@]}"; do
        [ -f "$d/postmaster.pid" ] || continue
        pid=$(head -1 "$d/postmaster.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -QUIT "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

cleanup() {
    local name
    for name in "${!PIDS[@]}"; do stop_pid "$name"; done
    stop_servers
    if [ -n "${FO_KEEP_DIR:-}" ]; then echo "kept $base"; else rm -rf "$base"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { echo $(( $(date +%s) - t_start )); }

# q SOCKDIR PORT SQL: one value, or nothing when the server does not answer.
q() {
    PGCONNECT_TIMEOUT=2 timeout 5 "$PG_BIN/psql" -X -q -A -t -h "$1" -p "$2" -U postgres \
        -d postgres -c "$3" 2>/dev/null || true
}

# healthy SOCK... : with NODE_SOCKS and NODE_PORT set, print the index of
# the one primary if there is exactly one and it streams to both others.
healthy() {
    local i prim=-1 n=0 r
    for i in 0 1 2; do
        r=$(q "${NODE_SOCKS[$i]}" "$NODE_PORT" "select pg_is_in_recovery()")
        if [ "$r" = f ]; then prim=$i; n=$((n + 1)); fi
        [ -n "$r" ] || return 1
    done
    [ "$n" = 1 ] || return 1
    r=$(q "${NODE_SOCKS[$prim]}" "$NODE_PORT" \
        "select count(*) from pg_stat_replication where state = 'streaming'")
    [ "$r" = 2 ] || return 1
    echo "$prim"
}

wait_healthy() {  # wait_healthy SECONDS: print the primary's index
    local deadline=$(( $(date +%s) + $1 )) p
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if p=$(healthy); then echo "$p"; return 0; fi
        sleep 0.2
    done
    return 1
}

# new_primary_checkpointed WON OLD: WON is the index among the candidates
# of the node that took the first write.
new_primary_checkpointed() {
    local won=$1 old=$2 i n=-1 k
    [ -n "$won" ] || return 0
    for i in 0 1 2; do
        [ "$i" = "$old" ] && continue
        n=$((n + 1))
        [ "$n" = "$won" ] && k=$i
    done
    for _ in $(seq 100); do
        [ "$(q "${NODE_SOCKS[$k]}" "$NODE_PORT" "select timeline_id = ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int from pg_control_checkpoint()")" = t ] && return 0
        sleep 0.1
    done
}

dump_logs() {
    [ -n "${FO_VERBOSE:-}" ] || return 0
    local f
    for f in "$@"; do echo "--- $f"; tail -40 "$f" 2>/dev/null || true; done >&2
}

# --- reeve ---

reeve_start_agent() {  # reeve_start_agent SYSTEM I
    local sys=$1 i=$2
    "$AGENT" -c "$base/$sys/n$i.yaml" >>"$base/$sys/n$i-agent.log" 2>&1 &
    PIDS[$sys-n$i]=$!
}

reeve_setup() {  # reeve_setup SYSTEM SYNCHRONOUS
    local sys=$1 d="$base/$1" i port
    mkdir -p "$d"
    chown postgres:postgres "$d"
    chmod 0711 "$d"
    "$HARNESS" dcs "$d/port" "$d" bench fo n0 n1 n2 >"$d/dcs.log" 2>&1 &
    PIDS[$sys-dcs]=$!
    for _ in $(seq 100); do [ -f "$d/port" ] && break; sleep 0.1; done
    [ -f "$d/port" ] || die "the DCS harness did not start: $(cat "$d/dcs.log")"
    port=$(cat "$d/port")
    export REEVE_FO_REPL_PASSWORD="fo-repl-$$"
    NODE_SOCKS=()
    NODE_PORT=$REEVE_PORT
    for i in 0 1 2; do
        NODE_SOCKS+=("$d/n$i-sock")
        DATA_DIRS+=("$d/n$i-data")
        cat >"$d/n$i.yaml" <<EOF
node: n$i
cluster: bench/fo
reconciler: http://127.0.0.1:$port/
registration_token: file:$d/n$i.token
state_dir: $d/n$i-state
ttl_ms: 3000
tick_ms: 300
synchronous: $2
engine:
  type: postgresql
  bin_dir: $PG_BIN
  data_dir: $d/n$i-data
  socket_dir: $d/n$i-sock
  listen_address: 127.0.30.$((i + 1))
  port: $REEVE_PORT
  replication_password: env:REEVE_FO_REPL_PASSWORD
  os_user: postgres
  no_sync: true
EOF
        reeve_start_agent "$sys" "$i"
    done
}

reeve_teardown() {  # reeve_teardown SYSTEM
    local i
    for i in 0 1 2; do stop_pid "$1-n$i"; done
    stop_pid "$1-writer"
    stop_pid "$1-dcs"
    stop_servers
}

# conninfo I: libpq connection string of node I.
conninfo() { echo "host=${NODE_SOCKS[$1]} port=$NODE_PORT user=postgres dbname=postgres"; }

# wait_sync_standby PRIM: until the primary has a synchronous standby (and
# a tick more, for the agent to publish it), at most RUN_TIMEOUT.
wait_sync_standby() {
    local deadline=$(( $(date +%s) + RUN_TIMEOUT ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ "$(q "${NODE_SOCKS[$1]}" "$NODE_PORT" \
            "select count(*) from pg_stat_replication where sync_state = 'sync'")" = 1 ] && break
        sleep 0.2
    done
    sleep 0.7
}

# --- Patroni ---

etcd_start() {
    [ -n "${PIDS[etcd]:-}" ] && return 0
    mkdir -p "$base/etcd"
    chmod 0700 "$base/etcd"
    etcd --name fo --data-dir "$base/etcd/data" \
        --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
        --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
        --initial-cluster "fo=http://$ETCD_PEER" --initial-cluster-state new \
        --listen-metrics-urls "http://127.0.0.1:42381" >"$base/etcd/etcd.log" 2>&1 &
    PIDS[etcd]=$!
    for _ in $(seq 100); do
        curl -fsS "http://$ETCD_CLIENT/health" 2>/dev/null | grep -q true && return 0
        sleep 0.1
    done
    die "etcd did not start: $(tail -5 "$base/etcd/etcd.log")"
}

patroni_start_node() {  # patroni_start_node SCOPE I
    local d="$base/$1" i=$2
    HOME="$d" setpriv --reuid=postgres --regid=postgres --init-groups \
        patroni "$d/p$i.yml" >>"$d/p$i-patroni.log" 2>&1 &
    PIDS[$1-p$i]=$!
}

patroni_setup() {  # patroni_setup SCOPE TTL LOOP_WAIT RETRY_TIMEOUT
    local scope=$1 d="$base/$1" i
    etcd_start
    mkdir -p "$d"
    chown postgres:postgres "$d"
    chmod 0711 "$d"
    NODE_SOCKS=()
    NODE_PORT=$PATRONI_PORT
    for i in 0 1 2; do
        NODE_SOCKS+=("$d/p$i-sock")
        DATA_DIRS+=("$d/p$i-data")
        install -d -o postgres -g postgres -m 0700 "$d/p$i-sock"
        cat >"$d/p$i.yml" <<EOF
scope: $scope
namespace: /reeve-bench/
name: p$i
restapi:
  listen: 127.0.31.$((i + 1)):$REST_PORT
  connect_address: 127.0.31.$((i + 1)):$REST_PORT
etcd3:
  hosts: $ETCD_CLIENT
bootstrap:
  dcs:
    ttl: $2
    loop_wait: $3
    retry_timeout: $4
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
  initdb:
  - encoding: UTF8
  - no-sync
  pg_hba:
  - local all all trust
  - host replication all 127.0.0.0/8 trust
  - host all all 127.0.0.0/8 trust
postgresql:
  listen: 127.0.31.$((i + 1)):$PATRONI_PORT
  connect_address: 127.0.31.$((i + 1)):$PATRONI_PORT
  data_dir: $d/p$i-data
  bin_dir: $PG_BIN
  pgpass: $d/p$i.pgpass
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: postgres
      password: fo-super
    replication:
      username: replicator
      password: fo-repl
  parameters:
    unix_socket_directories: $d/p$i-sock
watchdog:
  mode: off
EOF
        chown postgres:postgres "$d/p$i.yml"
        patroni_start_node "$scope" "$i"
    done
}

patroni_teardown() {  # patroni_teardown SCOPE
    local i
    for i in 0 1 2; do stop_pid "$1-p$i"; done
    stop_servers
}

# --- one system ---

RESULTS=()  # "system ms" lines, or "system fail reason"

bench_system() {  # bench_system SYSTEM
    local sys=$1 prim i run out ms won cands pm ap p lost acked logs=()
    case "$sys" in
    reeve | reeve-sync)
        reeve_setup "$sys" "$([ "$sys" = reeve-sync ] && echo 1 || echo 0)"
        logs=("$base/$sys/n0-agent.log" "$base/$sys/n1-agent.log" "$base/$sys/n2-agent.log") ;;
    patroni-default)
        patroni_setup "$sys" 30 10 10
        logs=("$base/$sys/p0-patroni.log" "$base/$sys/p1-patroni.log" "$base/$sys/p2-patroni.log") ;;
    patroni-matched)
        patroni_setup "$sys" 5 1 2
        logs=("$base/$sys/p0-patroni.log" "$base/$sys/p1-patroni.log" "$base/$sys/p2-patroni.log") ;;
    patroni-floor)
        patroni_setup "$sys" 20 1 3
        logs=("$base/$sys/p0-patroni.log" "$base/$sys/p1-patroni.log" "$base/$sys/p2-patroni.log") ;;
    *) die "unknown system $sys" ;;
    esac
    if ! prim=$(wait_healthy 180); then
        dump_logs "${logs[@]}"
        RESULTS+=("$sys fail bootstrap")
        echo "$sys: the cluster did not come up" >&2
        return 0
    fi
    q "${NODE_SOCKS[$prim]}" "$NODE_PORT" \
        "create table if not exists bench_failover (id bigserial primary key, t timestamptz not null default now())" >/dev/null
    if [ "$sys" = reeve-sync ]; then
        q "${NODE_SOCKS[$prim]}" "$NODE_PORT" "create table bench_acked (id bigint primary key)" >/dev/null
        "$HARNESS" writer "$base/$sys/acked" "$(conninfo 0)" "$(conninfo 1)" "$(conninfo 2)" \
            >"$base/$sys/writer.log" 2>&1 &
        PIDS[$sys-writer]=$!
        wait_sync_standby "$prim"
    fi
    sleep 1
    for run in $(seq "$RUNS"); do
        if [ "$(elapsed)" -ge "$TOTAL_TIMEOUT" ]; then
            echo "$sys: stopping after $((run - 1)) runs (TOTAL_TIMEOUT ${TOTAL_TIMEOUT}s)" >&2
            break
        fi
        cands=()
        for i in 0 1 2; do
            [ "$i" = "$prim" ] || cands+=("host=${NODE_SOCKS[$i]} port=$NODE_PORT user=postgres dbname=postgres")
        done
        case "$sys" in reeve*) ap=${PIDS[$sys-n$prim]} ;; *) ap=${PIDS[$sys-p$prim]} ;; esac
        pm=$(head -1 "${DATA_DIRS[-3 + prim]}/postmaster.pid")
        won=
        if out=$("$HARNESS" probe $((RUN_TIMEOUT * 1000)) 20 "$ap,$pm" "${cands[@]}"); then
            read -r _ ms won <<<"$out"
            RESULTS+=("$sys $ms")
            printf '%-16s run %2d  node %d killed  %6d ms\n' "$sys" "$run" "$prim" "$ms"
        else
            RESULTS+=("$sys fail timeout")
            printf '%-16s run %2d  node %d killed  no write within %d s\n' "$sys" "$run" "$prim" "$RUN_TIMEOUT"
            dump_logs "${logs[@]}"
        fi
        # Reap the killed agent, start it again, and wait for the cluster to
        # heal: the old node rejoins as a replica of the new primary. First
        # wait until the new primary's control file shows its new timeline
        # (its checkpoint after promotion): a rewind against it before then
        # finds nothing to rewind (see README, caveats).
        new_primary_checkpointed "${won:-}" "$prim"
        if [ "${sys%-sync}" = reeve ]; then
            stop_pid "$sys-n$prim"; reeve_start_agent "$sys" "$prim"
        else
            stop_pid "$sys-p$prim"; patroni_start_node "$sys" "$prim"
        fi
        if ! prim=$(wait_healthy "$RUN_TIMEOUT"); then
            echo "$sys: the cluster did not heal within ${RUN_TIMEOUT}s after run $run" >&2
            dump_logs "${logs[@]}"
            RESULTS+=("$sys fail heal")
            break
        fi
        if [ "$sys" = reeve-sync ]; then
            out=$("$HARNESS" check "$base/$sys/acked" "$(conninfo "$prim")") || out="check failed"
            printf '%-16s run %2d  acknowledged writes %s\n' "$sys" "$run" "$out"
            wait_sync_standby "$prim"
        fi
        sleep 1
    done
    if [ "$sys" = reeve-sync ]; then
        stop_pid "$sys-writer"
        if p=$(wait_healthy "$RUN_TIMEOUT") &&
            out=$("$HARNESS" check "$base/$sys/acked" "$(conninfo "$p")"); then
            read -r _ lost _ acked <<<"$out"
            RESULTS+=("$sys lost $lost $acked")
            echo "$sys: acknowledged writes lost across the failovers: $lost of $acked"
        else
            RESULTS+=("$sys fail check")
        fi
    fi
    case "$sys" in
    reeve | reeve-sync) reeve_teardown "$sys" ;;
    *) patroni_teardown "$sys" ;;
    esac
}

echo "bench/failover: $RUNS runs each of: $SYSTEMS; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
# Bash reports each agent the probe killed ("... Killed ..."): expected, so
# filtered out.
for sys in $SYSTEMS; do bench_system "$sys"; done 2> >(grep --line-buffered -v ' Killed ' >&2)
stop_pid etcd

out="$here/results-$(date -u +%Y-%m-%d).json"
printf '%s\n' "${RESULTS[@]}" | python3 "$here/report.py" "$out" "$RUNS" \
    "$(patroni --version 2>/dev/null | awk '{print $2}')" \
    "$(etcd --version 2>/dev/null | awk 'NR==1 {print $3}')" \
    "$("$PG_BIN/postgres" --version | awk '{print $3}')"
