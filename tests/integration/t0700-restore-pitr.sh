#!/usr/bin/env bash
# t0700-restore-pitr: point-in-time recovery through the GitOps loop, on
# real PostgreSQL 15 with the `local` provider (harness: apply.sh).
#
#   1. demo/src (1 instance, encrypted backups to a local directory, PITR)
#      merged: reeve/apply success; the agent got the backup configuration
#   2. a pgbench database and a full backup (`reeve-agent backup` on the
#      node, as an operator would run it); `reeve backups list` shows it
#      succeeded, and `reeve backups verify` checks it
#   3. row 1, then the moment T, then row 2; the WAL segment is switched and
#      archived
#   4. demo/dst merged with bootstrap.fromBackup {cluster: demo/src,
#      pointInTime: T}: reeve/apply success, and the new cluster holds
#      exactly row 1 and the same pgbench data (checksums)
#   5. demo/early with a pointInTime before the first backup: reeve/apply
#      failure that says so
#   6. demo/src deleted (deletionProtection false): a final backup is taken
#      first (a succeeded record asked for by reeve), then the instance goes
#   7. the backup files hold no clear text of the data, and the backup key
#      is in neither reeve's log nor its state database
#
# Needs root and PostgreSQL 15. Bounded: T0700_APPLY seconds per apply
# (default 150), T0700_BUDGET for the whole run (default 500).
. "$(dirname "$0")/lib.sh"
need_env REEVE_SOURCE_DIR REEVE_BUILD_DIR
APPLY=${T0700_APPLY:-150}
PER_CLUSTER=2
BUDGET=${T0700_BUDGET:-500}
KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export REEVE_T0700_KEY=$KEY
REEVE_YAML_EXTRA="backupKeys: {k1: {secretRef: env:REEVE_T0700_KEY}}"
. "$(dirname "$0")/apply.sh"

BK=$T_TMP/backups
mkdir -p "$BK/src" "$BK/dst"
chown -R postgres:postgres "$BK"
chmod 0700 "$BK/src" "$BK/dst"

# spec NAME EXTRA_YAML: write clusters/demo/NAME.yaml (1 instance)
spec() {
    mkdir -p "$W/clusters/demo"
    cat >"$W/clusters/demo/$1.yaml" <<EOF
apiVersion: reeve/v1
kind: DatabaseCluster
metadata: {name: $1, namespace: demo}
spec:
  engine: postgresql
  version: "15"
  provider: local
  region: local
  instances: 1
  resources: {cpu: 1, memoryMiB: 256, storageGiB: 1}
  deletionProtection: false
$2
EOF
}
pgbench_sum() { # NODE: one checksum over the pgbench tables
    psql_on "$1" "SELECT md5(string_agg(x, ';')) FROM (
        SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY aid)) FROM pgbench_accounts t) AS x
        UNION ALL SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY bid)) FROM pgbench_branches t)
        UNION ALL SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY tid)) FROM pgbench_tellers t)) s"
}

say "reeve serve on $R_URL, instances under $ROOT, backups under $BK"
start_reeve || die "reeve serve did not come up: $(tail -n 20 "$T_TMP/reeve.log" | tr '\n' '|')"

# --- 1. the source cluster ----------------------------------------------------
say "1. demo/src with encrypted backups and PITR"
spec src "  backup:
    schedule: {full: \"0 3 * * *\"}
    retention: {days: 7}
    method: pg_basebackup
    destination: {local: {path: $BK/src}}
    encryption: {keyRef: k1}
  pitr: {enabled: true}"
M1=$(commit_push "demo/src")
wait_apply "$M1" "demo/src" || true
SRC_P=$(wait_primary src)
[ -n "$SRC_P" ] || die "demo/src has no healthy primary"
CONF=$(agent_conf_of "$SRC_P")
[ -n "$CONF" ] || die "no agent configuration for $SRC_P"

# --- 2. data and a full backup ------------------------------------------------
say "2. pgbench data and a full backup on $SRC_P"
sock=$(socket_of "$SRC_P")
timeout 120 runuser -u postgres -- pgbench -i -s 2 -q -h "$sock" -p 5432 -U postgres postgres >/dev/null 2>&1 ||
    die "pgbench -i failed on $SRC_P"
SUM=$(pgbench_sum "$SRC_P")
out=""
for ((i = 0; i < 60; i++)); do   # until the agent has stored the configuration
    if out=$(timeout 300 runuser -u postgres -- "$AGENT" backup -c "$CONF" --json 2>"$T_TMP/backup.err"); then break; fi
    out=""
    sleep 1
done
BID=$(jq -r '.backup_id // ""' <<<"$out" 2>/dev/null || true)
if [ -n "$BID" ] && [ "$(jq -r .status <<<"$out")" = succeeded ]; then
    ok "reeve-agent backup: $BID succeeded ($(jq -r .size <<<"$out") bytes stored)"
else
    fail "reeve-agent backup did not succeed: $out $(tail -n 3 "$T_TMP/backup.err")"
fi
got=""
for ((i = 0; i < 60; i++)); do
    got=$("$REEVE" backups list demo/src --server "$R_URL" --json 2>/dev/null |
        jq -r --arg id "$BID" '.backups[]? | select(.backup_id == $id) | .status' || true)
    [ "$got" = succeeded ] && break
    sleep 1
done
assert_eq succeeded "$got" "reeve backups list demo/src shows $BID as succeeded (synced by the agent)"
run "$REEVE" backups verify "$BID" --server "$R_URL"
assert_rc 0 "reeve backups verify $BID"

# --- 3. two rows around the moment T ---------------------------------------------
say "3. row 1, the moment T, row 2"
psql_on "$SRC_P" "CREATE TABLE pitr (v int); INSERT INTO pitr VALUES (1)" >/dev/null
sleep 1.5
T=$(psql_on "$SRC_P" "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
sleep 1.5
psql_on "$SRC_P" "INSERT INTO pitr VALUES (2)" >/dev/null
seg=$(psql_on "$SRC_P" "SELECT pg_walfile_name(pg_switch_wal())")
got=""
for ((i = 0; i < 100; i++)); do
    got=$(psql_on "$SRC_P" "SELECT last_archived_wal >= '$seg' FROM pg_stat_archiver")
    [ "$got" = t ] && break
    sleep 0.2
done
assert_eq t "$got" "the WAL segment $seg holding both rows is archived"
say "T = $T"

# --- 4. point-in-time restore into a new cluster ----------------------------------
say "4. demo/dst from demo/src at T"
spec dst "  bootstrap:
    fromBackup: {cluster: demo/src, pointInTime: \"$T\"}"
M2=$(commit_push "demo/dst: demo/src as of $T")
wait_apply "$M2" "demo/dst restored to T" || true
DST_P=$(wait_primary dst)
if [ -n "$DST_P" ]; then
    assert_eq 1 "$(psql_on "$DST_P" "SELECT string_agg(v::text, ',' ORDER BY v) FROM pitr")" \
        "demo/dst holds exactly the row committed before T"
    assert_eq "$SUM" "$(pgbench_sum "$DST_P")" "demo/dst has the same pgbench data (checksums)"
    assert_eq f "$(psql_on "$DST_P" "SELECT pg_is_in_recovery()")" "demo/dst's primary takes writes"
else
    fail "demo/dst has no healthy primary"
fi

# --- 5. a point in time before the first backup ----------------------------------
say "5. demo/early: a point in time before the first backup"
spec early "  bootstrap:
    fromBackup: {cluster: demo/src, pointInTime: \"2020-01-01T00:00:00Z\"}"
M3=$(commit_push "demo/early: before any backup")
js=$(python3 "$FAKEQ" "$F_URL" wait --sha "$M3" --context reeve/apply --timeout "$APPLY" 2>/dev/null || true)
if [ "$(jq -r .state <<<"$js" 2>/dev/null)" = failure ] &&
    [[ $(jq -r .description <<<"$js") == *"before the first backup"* ]]; then
    ok "demo/early: reeve/apply failure: $(jq -r .description <<<"$js")"
else
    fail "demo/early: expected a failure naming the first backup, got: $js"
fi

# --- 6. delete the source: final backup first ----------------------------------
say "6. delete demo/src: a final backup, then the instance goes"
git -C "$W" rm -q clusters/demo/early.yaml
M4=$(commit_push "demo/early: drop the failed restore")
wait_apply "$M4" "demo/early removed" || true
git -C "$W" rm -q clusters/demo/src.yaml
M5=$(commit_push "demo/src: delete")
wait_apply "$M5" "demo/src deleted" || true
final=$("$REEVE" backups list demo/src --server "$R_URL" --json 2>/dev/null |
    jq -r '[.backups[]? | select((.schedule // "") | startswith("request:final-")) | .status] | first // ""')
assert_eq succeeded "$final" "the final backup of demo/src is recorded as succeeded"
src_dirs=0
for f in "$ROOT"/instances/*/agent.json; do
    [ -f "$f" ] && [ "$(jq -r '.cluster // ""' "$f")" = demo/src ] && src_dirs=$((src_dirs + 1))
done
assert_eq 0 "$src_dirs" "demo/src's instance is gone"

# --- 7. secrets and clear text -----------------------------------------------------
say "7. no clear text in the backups, no key in reeve's files"
if grep -rqa "pgbench_accounts" "$BK/src"; then
    fail "a backup file holds clear text of the database"
else
    ok "the backup files hold no clear text (encrypted)"
fi
if grep -qF "$KEY" "$T_TMP/reeve.log" || grep -qaF "$KEY" "$T_TMP"/data/*.db* 2>/dev/null; then
    fail "the backup key appears in reeve's log or state"
else
    ok "the backup key is in neither reeve's log nor its state"
fi
if stop_reeve TERM; then ok "reeve serve stops on SIGTERM"; else fail "reeve serve needed SIGKILL"; fi
say "total: $((SECONDS - T_START)) s"
t_done
