#!/usr/bin/env bash
# bench/backup/run.sh [BUILD_DIR]: full backup and restore throughput of
# reeve and of pgBackRest, measured in the same run on the same database.
# See bench/backup/README.md.
#
# One PostgreSQL 15 server holds a pgbench database (SCALE 140 is about
# 2.1 GB). For each destination (a local directory, then the test S3 server
# from tests/peers) and each system:
#   backup   a full backup, timed from start to the finished backup
#   restore  into an empty directory, timed until the restored server
#            accepts writes (WAL replayed, promoted)
# Throughput is the database size (pg_database_size) over the time, in MB/s
# (10^6 bytes). Both use zstd level 3 and one process; pgBackRest reaches S3
# over TLS (it has no plain HTTP), through bench/backup/tls-proxy.js; reeve
# talks plain HTTP to the same server (it trusts only the system's CA
# bundle, and the bench does not touch the system's trust store), so its S3
# numbers are spared the TLS cost: AES-GCM on loopback, a few percent of one
# core at these rates.
#
# Environment: SCALE (140), SYSTEMS ("pgbackrest reeve"), DESTS ("local s3"),
# KEEP=1 to keep the work directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
SCALE=${SCALE:-140}
SYSTEMS=${SYSTEMS:-"pgbackrest reeve"}
DESTS=${DESTS:-"local s3"}
PG_BIN=/usr/lib/postgresql/15/bin
AGENT="$build/reeve-agent"
ADDR=127.0.93.1
RADDR=127.0.93.2
S3_PORT=29000
TLS_PORT=29443
AK=benchaccesskey
SK=benchsecretkey0123456789
BUCKET=bench

die() { echo "bench/backup: $*" >&2; exit 1; }
skip() { echo "bench/backup: skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (the servers run as the postgres user)"
[ -x "$PG_BIN/initdb" ] || skip "needs PostgreSQL 15 in $PG_BIN"
[ -x "$AGENT" ] || die "build first: cmake --build $build --target reeve-agent"
command -v node >/dev/null || skip "needs node (tests/peers)"
if ! command -v pgbackrest >/dev/null; then
    echo "bench/backup: installing pgbackrest"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pgbackrest >/dev/null
fi
"$root/scripts/test-peers.sh"

base=$(mktemp -d /tmp/reeve-backup-bench-XXXXXX)
chown postgres:postgres "$base"
chmod 0711 "$base"
PIDS=()
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
    local d
    for d in "$base"/pg "$base"/restore-*; do
        [ -f "$d/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$d" stop -m immediate >/dev/null 2>&1 || true
    done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] && echo "bench/backup: kept $base" || rm -rf "$base"
}
trap cleanup EXIT

now() { date +%s.%N; }
mbps() { python3 -c "import sys; print('%.1f' % ($1 / 1e6 / ($3 - $2)))"; }
secs() { python3 -c "print('%.1f' % ($2 - $1))"; }

# --- the database ---------------------------------------------------------
echo "bench/backup: initdb and pgbench -i -s $SCALE (a few minutes at the default scale)"
mkdir -p "$base/sock" "$base/sock-r"
chown postgres:postgres "$base/sock" "$base/sock-r"
as_pg "$PG_BIN/initdb" -D "$base/pg" -U postgres --data-checksums -A trust >/dev/null
cat >>"$base/pg/postgresql.conf" <<EOF
listen_addresses = '$ADDR'
port = 5432
unix_socket_directories = '$base/sock'
max_wal_size = 8GB
checkpoint_timeout = 30min
archive_mode = on
archive_command = '/bin/true'
EOF
echo "host replication postgres 127.0.0.0/8 trust" >>"$base/pg/pg_hba.conf"
as_pg "$PG_BIN/pg_ctl" -D "$base/pg" -l "$base/pg.log" -w start >/dev/null
psql_pg() { as_pg psql -X -At -h "$base/sock" -p 5432 -U postgres "$@"; }
psql_pg -c "create database bench" >/dev/null
as_pg "$PG_BIN/pgbench" -h "$base/sock" -p 5432 -U postgres -i -s "$SCALE" -q bench >/dev/null 2>&1
psql_pg -d bench -c "checkpoint" >/dev/null
SIZE=$(psql_pg -c "select sum(pg_database_size(datname)) from pg_database")
CHECK=$(psql_pg -d bench -c "select md5(string_agg(aid::text || ':' || abalance, ',' order by aid)) from pgbench_accounts")
echo "bench/backup: cluster size $SIZE bytes ($(python3 -c "print(round($SIZE/1e9, 2))") GB)"

set_archive() {  # set_archive COMMAND: archive_command, reloaded
    psql_pg -c "alter system set archive_command = '$1'" >/dev/null
    psql_pg -c "select pg_reload_conf()" >/dev/null
    sleep 0.5
}

# restore_check DIR SOCK: start a restored cluster, wait until it accepts
# writes, compare the data, stop it
restore_start() {
    local dir=$1 sock=$2 i
    cat >>"$dir/postgresql.auto.conf" <<EOF
listen_addresses = '$RADDR'
unix_socket_directories = '$sock'
archive_mode = off
EOF
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$dir.log" start >/dev/null
    for ((i = 0; i < 3000; i++)); do
        [ "$(as_pg psql -X -At -h "$sock" -p 5432 -U postgres -c 'select not pg_is_in_recovery()' 2>/dev/null)" = t ] && return 0
        sleep 0.1
    done
    die "restored server in $dir did not leave recovery"
}
restore_verify() {
    local dir=$1 sock=$2 got
    got=$(as_pg psql -X -At -h "$sock" -p 5432 -U postgres -d bench -c "select md5(string_agg(aid::text || ':' || abalance, ',' order by aid)) from pgbench_accounts")
    as_pg "$PG_BIN/pg_ctl" -D "$dir" stop -m fast >/dev/null
    [ "$got" = "$CHECK" ] || die "restore into $dir gave different data"
    rm -rf "$dir" "$dir.log"
}

# --- the S3 server and its TLS front --------------------------------------
S3_DIR=$base/s3
start_s3() {
    mkdir -p "$S3_DIR"
    node "$root/tests/peers/s3-server.js" --port "$S3_PORT" --dir "$S3_DIR" --access-key "$AK" \
        --secret "$SK" --bucket "$BUCKET" --ready-file "$base/s3.port" >"$base/s3.log" 2>&1 &
    PIDS+=($!)
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$base/tls.key" -out "$base/tls.crt" \
        -days 1 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
    chmod 0644 "$base/tls.crt"
    node "$here/tls-proxy.js" --listen "127.0.0.1:$TLS_PORT" --to "127.0.0.1:$S3_PORT" \
        --cert "$base/tls.crt" --key "$base/tls.key" >"$base/tls.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$base/s3.port" ] && grep -q ready "$base/tls.log" && return 0; sleep 0.1; done
    die "the S3 server did not start: $(cat "$base/s3.log" "$base/tls.log")"
}

# --- pgBackRest -----------------------------------------------------------
pgbr_conf() {  # pgbr_conf DEST
    local f=$base/pgbackrest-$1.conf
    {
        echo "[global]"
        if [ "$1" = local ]; then
            echo "repo1-path=$base/pgbr-repo"
        else
            echo "repo1-type=s3"
            echo "repo1-path=/pgbackrest"
            echo "repo1-s3-endpoint=127.0.0.1"
            echo "repo1-storage-port=$TLS_PORT"
            echo "repo1-storage-verify-tls=n"
            echo "repo1-s3-uri-style=path"
            echo "repo1-s3-bucket=$BUCKET"
            echo "repo1-s3-region=us-east-1"
            echo "repo1-s3-key=$AK"
            echo "repo1-s3-key-secret=$SK"
        fi
        echo "repo1-retention-full=2"
        echo "compress-type=zst"
        echo "compress-level=3"
        echo "process-max=1"
        echo "start-fast=y"
        echo "log-level-console=warn"
        echo "log-level-file=off"
        echo "lock-path=$base/pgbr-lock"
        echo "[bench]"
        echo "pg1-path=$base/pg"
        echo "pg1-socket-path=$base/sock"
        echo "pg1-port=5432"
    } >"$f"
    chown postgres:postgres "$f"
    echo "$f"
}

pgbr() {  # pgbr DEST args...
    local conf=$base/pgbackrest-$1.conf
    shift
    as_pg pgbackrest --config="$conf" --stanza=bench "$@"
}

run_pgbackrest() {  # run_pgbackrest DEST: prints "backup_s restore_s"
    local dest=$1 t0 t1 t2 t3 dir=$base/restore-pgbr-$1
    pgbr_conf "$dest" >/dev/null
    mkdir -p "$base/pgbr-lock" && chown postgres:postgres "$base/pgbr-lock"
    pgbr "$dest" stanza-create >/dev/null
    set_archive "pgbackrest --config=$base/pgbackrest-$dest.conf --stanza=bench archive-push %p"
    pgbr "$dest" check >/dev/null
    t0=$(now)
    pgbr "$dest" backup --type=full >/dev/null
    t1=$(now)
    mkdir -p "$dir" && chown postgres:postgres "$dir" && chmod 0700 "$dir"
    t2=$(now)
    pgbr "$dest" restore --pg1-path="$dir" >/dev/null
    restore_start "$dir" "$base/sock-r"
    t3=$(now)
    restore_verify "$dir" "$base/sock-r"
    echo "$t0 $t1 $t2 $t3"
}

# --- reeve ----------------------------------------------------------------
# reeve-agent backs up the same server with its backup subcommand, from a
# node configuration whose backup destination is set locally
# (`reeve-agent backups config --set`), and restores with `reeve-agent
# restore`.
reeve_agent_conf() {  # reeve_agent_conf DEST
    local d=$base/agent-$1
    mkdir -p "$d/state"
    cat >"$d/agent.yaml" <<EOF
node: bench-0
cluster: bench/db
reconciler: http://127.0.0.1:9
state_dir: $d/state
engine:
  type: postgresql
  bin_dir: $PG_BIN
  data_dir: $base/pg
  socket_dir: $base/sock
  listen_address: $ADDR
  port: 5432
  replication_password: env:BENCH_UNUSED
EOF
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/key"
    if [ "$1" = local ]; then
        mkdir -p "$base/reeve-repo"
        dest="{\"kind\":\"local\",\"path\":\"$base/reeve-repo\"}"
    else
        dest="{\"kind\":\"s3\",\"endpoint\":\"http://127.0.0.1:$S3_PORT\",\"region\":\"us-east-1\",\"bucket\":\"$BUCKET\",\"prefix\":\"reeve\",\"access_key_id\":\"$AK\",\"secret_access_key\":\"$SK\"}"
    fi
    cat >"$d/backup.json" <<EOF
{"cluster":"bench/db","engine":"postgresql","backup":{"full_cron":"0 2 * * *","incremental_cron":null,
 "retention_days":7,"method":"pg_basebackup","program":null,"args":[],"prefer_replica":false,"pitr":true,
 "destination":$dest,"encryption_key":"$(cat "$d/key")","test_restore_cron":"30 3 * * *"},"restore":null,"requests":[]}
EOF
    chown -R postgres:postgres "$d" "$base/reeve-repo" 2>/dev/null || chown -R postgres:postgres "$d"
    as_pg env BENCH_UNUSED=x "$AGENT" backups config -c "$d/agent.yaml" --set "$d/backup.json" >/dev/null
}

run_reeve() {  # run_reeve DEST: prints "t0 t1 t2 t3"
    local dest=$1 t0 t1 t2 t3 dir=$base/restore-reeve-$1 d=$base/agent-$1
    reeve_agent_conf "$dest"
    set_archive "$AGENT wal-push -c $d/agent.yaml %p"
    t0=$(now)
    as_pg env BENCH_UNUSED=x "$AGENT" backup -c "$d/agent.yaml" --json >"$d/backup.out" 2>"$d/backup.err" ||
        die "reeve backup failed: $(tail -3 "$d/backup.err")"
    t1=$(now)
    t2=$(now)
    as_pg env BENCH_UNUSED=x "$AGENT" restore -c "$d/agent.yaml" --to "$dir" --port 5432 --stop \
        >"$d/restore.out" 2>"$d/restore.err" || die "reeve restore failed: $(tail -3 "$d/restore.err")"
    restore_start "$dir" "$base/sock-r"
    t3=$(now)
    restore_verify "$dir" "$base/sock-r"
    echo "$t0 $t1 $t2 $t3"
}

# --- run --------------------------------------------------------------------
case " $DESTS " in *" s3 "*) start_s3 ;; esac
printf '%-11s %-6s %10s %10s %12s %12s\n' system dest backup_s "backup_MB/s" restore_s "restore_MB/s"
results=$base/results.txt
for dest in $DESTS; do
    for sys in $SYSTEMS; do
        read -r t0 t1 t2 t3 < <("run_$sys" "$dest")
        printf '%-11s %-6s %10s %10s %12s %12s\n' "$sys" "$dest" "$(secs "$t0" "$t1")" \
            "$(mbps "$SIZE" "$t0" "$t1")" "$(secs "$t2" "$t3")" "$(mbps "$SIZE" "$t2" "$t3")" | tee -a "$results"
    done
done
echo "bench/backup: database $SIZE bytes, scale $SCALE, zstd level 3, one process each"
